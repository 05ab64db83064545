"""Tiny SST-2 features from the shipped samples, shared by the training and run-cache tests."""


def tiny_sst2(n_train: int, n_eval: int | None = None):
    """(task, tokenizer, train features, eval features, eval rows) from the shipped SST-2 samples."""
    from hft_lessons.backbone import load_backbone
    from hft_lessons.data import load_samples
    from hft_lessons.tasks import get_task

    task = get_task("sst2")
    tok, _ = load_backbone("tiny-random-bert", verbose=False)
    ds = load_samples("sst2")
    eval_raw = ds["validation"] if n_eval is None else ds["validation"].select(range(n_eval))
    train_f = task.tokenize(ds["train"].select(range(n_train)), tok, 64)
    return task, tok, train_f, task.tokenize(eval_raw, tok, 64, train=False), eval_raw
