"""The training loop: learning happens, schedules, length grouping, checkpoints and exact resume."""

import math
import time

import pytest
import torch
from sst2_helpers import tiny_sst2

from hft_lessons.backbone import load_backbone
from hft_lessons.methods import prepare_model
from hft_lessons.training import LengthGroupedBatchSampler, TrainConfig, param_groups, train
from hft_lessons.transformer import BertEncoder


@pytest.fixture(scope="module")
def sst2():
    return tiny_sst2(96)


def _model(task, method="lora"):
    _, bb = load_backbone("tiny-random-bert", verbose=False)
    torch.manual_seed(0)
    return prepare_model(task.build_model(bb), method)


def test_training_lowers_the_loss(sst2):
    task, tok, train_f, eval_f, eval_raw = sst2
    model = _model(task, "full")
    result = train(model, task, train_f, eval_f, eval_raw, tok,
                   TrainConfig(lr=1e-3, epochs=4, batch_size=16, log_every=1, progress=False))
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    assert result.steps == 4 * math.ceil(96 / 16)
    assert result.train_examples_per_second > 0 and result.peak_memory_mb > 0
    assert [h["epoch"] for h in result.history if "eval_accuracy" in h] == [1, 2, 3, 4]


def test_length_grouped_batches_cover_every_example_once_and_repeat():
    lengths = [int(x) for x in torch.randint(3, 60, (203,))]
    sampler = LengthGroupedBatchSampler(lengths, 16, seed=3)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(203))
    assert len(batches) == len(sampler) == 13
    assert batches == LengthGroupedBatchSampler(lengths, 16, seed=3).batches()
    sampler.set_epoch(1)
    assert sampler.batches() != batches
    # grouping cuts padding: the padded token count is well below random batching's
    padded = lambda bs: sum(len(b) * max(lengths[i] for i in b) for b in bs)  # noqa: E731
    random_batches = LengthGroupedBatchSampler(lengths, 16, seed=3, group=False).batches()
    assert padded(batches) < 0.8 * padded(random_batches)


def test_gradient_accumulation_and_cosine_schedule_run(sst2):
    task, tok, train_f, eval_f, eval_raw = sst2
    result = train(_model(task), task, train_f, None, None, tok,
                   TrainConfig(lr=1e-3, epochs=1, batch_size=8, grad_accum=3, schedule="cosine",
                               log_every=1, progress=False))
    assert result.steps == math.ceil(12 / 3)
    assert result.metrics == {}


# 6 steps per epoch: resume inside the first epoch, then inside the second; and with the CPU speed-ups on
@pytest.mark.parametrize(
    "stop, fast",
    [
        pytest.param(3, False, marks=pytest.mark.slow),
        pytest.param(8, False, marks=pytest.mark.slow),
        (8, True),
    ],
)
def test_resume_gives_the_uninterrupted_run_exactly(sst2, tmp_path, stop, fast):
    task, tok, train_f, eval_f, eval_raw = sst2
    cfg = dict(
        lr=1e-3, epochs=2, batch_size=16, log_every=1, progress=False, checkpoint_every=1, fast_cpu=fast
    )
    full_model, resumed_model = _model(task), _model(task)
    full = train(
        full_model, task, train_f, eval_f, eval_raw, tok, TrainConfig(output_dir=str(tmp_path / "a"), **cfg)
    )
    stopped = train(_model(task), task, train_f, eval_f, eval_raw, tok,
                    TrainConfig(output_dir=str(tmp_path / "b"), stop_after_steps=stop, **cfg))
    assert stopped.steps == stop and stopped.metrics == {}
    assert not list((tmp_path / "b" / "checkpoint").glob("*.tmp*")), "no temporary files left behind"
    resumed = train(resumed_model, task, train_f, eval_f, eval_raw, tok,
                    TrainConfig(output_dir=str(tmp_path / "b"), resume=True, **cfg))
    assert resumed.steps == full.steps
    assert resumed.metrics == full.metrics
    loss = lambda r: [h["loss"] for h in r.history if "loss" in h]  # noqa: E731
    assert loss(resumed) == loss(full)  # the same batches in the same order, the same dropout masks
    for (name, p), q in zip(full_model.named_parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_early_stopping_keeps_the_best_epoch(sst2):
    task, tok, train_f, eval_f, eval_raw = sst2
    result = train(_model(task), task, train_f, eval_f, eval_raw, tok,
                   TrainConfig(lr=1e-2, epochs=6, batch_size=32, early_stopping_patience=0, progress=False))
    evals = [h["eval_accuracy"] for h in result.history if "eval_accuracy" in h]
    assert result.metrics["accuracy"] == max(evals)
    if result.stopped_early:
        assert len(evals) < 6


@pytest.mark.parametrize("bad, message", [
    (dict(schedule="step"), "unknown schedule 'step'; allowed: linear, cosine, constant"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(lr=0), "lr must be > 0"),
    (dict(resume=True), "need an output_dir"),
    (dict(mixed_precision="fp8"), "allowed: auto, no, fp16, bf16"),
    (dict(layer_decay=1.5), "layer_decay must be in (0, 1] or None, got 1.5"),
])
def test_bad_config_is_one_clear_line(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        TrainConfig(**bad)


def test_peak_memory_is_per_run(monkeypatch):
    """A spike inside one measured block is caught by the sampler and does not leak into the next block.

    The resident set is faked: whether a real 64 MiB tensor raises it depends on what the allocator
    already holds (after a long test session, freed pages are often reused without growing it).
    """
    from hft_lessons import training

    rss = {"now": 500 * 2**20}
    monkeypatch.setattr(training, "_rss_bytes", lambda: rss["now"])
    with training.PeakMemory(torch.device("cpu"), interval=0.01) as first:
        rss["now"] = 900 * 2**20  # the spike lasts only while the sampler runs
        time.sleep(0.2)
        rss["now"] = 500 * 2**20
    with training.PeakMemory(torch.device("cpu"), interval=0.01) as second:
        time.sleep(0.05)
    assert first.mb == 900 and second.mb == 500


@pytest.mark.parametrize("encoder", ["BertModel", "BertEncoder"])
def test_layer_decay_scales_each_layer_below_the_top(sst2, encoder):
    """The layers are found from the model's structure, so both encoders get one learning rate per layer."""
    task = sst2[0]
    _, bb = load_backbone("tiny-random-bert", verbose=False)  # tiny BERT: 2 layers
    layer = "backbone.encoder.layer.{}.attention.self.query.weight"
    if encoder == "BertEncoder":
        bb, layer = BertEncoder.from_hf(bb), "backbone.layers.{}.attention.query.weight"
    torch.manual_seed(0)
    model = task.build_model(bb)
    groups = param_groups(model, TrainConfig(lr=1e-3, head_lr=1e-2, layer_decay=0.5))
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["head.classifier.weight"])] == pytest.approx(1e-2)
    assert lr_of[id(named[layer.format(1)])] == pytest.approx(1e-3)
    assert lr_of[id(named[layer.format(0)])] == pytest.approx(5e-4)
    assert lr_of[id(named["backbone.embeddings.word_embeddings.weight"])] == pytest.approx(2.5e-4)
    assert sorted({round(g["lr"], 12) for g in groups}) == [2.5e-4, 5e-4, 1e-3, 1e-2]
    # off by default: one learning rate for the backbone, another for the head
    assert {g["lr"] for g in param_groups(model, TrainConfig(lr=1e-3, head_lr=1e-2))} == {1e-3, 1e-2}


def test_layer_decay_needs_an_encoder_it_knows():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="layer_decay needs a BERT-family encoder; got Sequential"):
        param_groups(model, TrainConfig(layer_decay=0.5))


def test_same_batches_without_dropout_train_exactly_like_hugging_face_trainer(sst2, tmp_path, monkeypatch):
    """Given the same batches and no dropout, the course loop and `Trainer` (as the benchmark wraps the model
    for it) are the same computation."""
    from torch import nn
    from torch.utils.data import Sampler
    from transformers import Trainer, TrainingArguments

    import hft_lessons.training as training

    task, tok, train_f, _, _ = sst2
    g = torch.Generator().manual_seed(7)
    orders = [torch.randperm(len(train_f), generator=g).tolist() for _ in range(2)]  # one order per epoch
    models = [_model(task, "full"), _model(task, "full")]
    for m in models[0].modules(), models[1].modules():
        for module in m:
            if isinstance(module, nn.Dropout):
                module.p = 0.0
    losses: dict[str, list[float]] = {"course": [], "trainer": []}
    current = ["course"]
    plain_loss = task.loss
    monkeypatch.setattr(
        task, "loss", lambda logits, batch: _record(plain_loss(logits, batch), losses[current[0]])
    )

    monkeypatch.setattr(training.LengthGroupedBatchSampler, "batches",
                        lambda self: [orders[self.epoch][i:i + 16] for i in range(0, len(train_f), 16)])
    train(
        models[0],
        task,
        train_f,
        None,
        None,
        tok,
        TrainConfig(
            lr=1e-3, epochs=2, batch_size=16, warmup_ratio=0.25, progress=False, group_by_length=False
        ),
    )

    class Fixed(Sampler):
        def __init__(self):
            self.epoch = 0

        def __len__(self):
            return len(train_f)

        def __iter__(self):
            self.epoch += 1
            return iter(orders[self.epoch - 1])

    current[0] = "trainer"
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=16, num_train_epochs=2,
                             learning_rate=1e-3, weight_decay=0.01, warmup_steps=3, max_grad_norm=1.0,
                             save_strategy="no", eval_strategy="no", report_to=[], disable_tqdm=True,
                             use_cpu=True, dataloader_num_workers=0, seed=0)
    trainer = Trainer(model=_benchmark().with_loss(models[1], task), args=args, train_dataset=train_f,
                      data_collator=task.collator(tok))
    fixed = Fixed()
    monkeypatch.setattr(trainer, "_get_train_sampler", lambda *a, **k: fixed)
    trainer.train()
    assert len(losses["course"]) == len(losses["trainer"]) == 12
    torch.testing.assert_close(
        torch.tensor(losses["course"]), torch.tensor(losses["trainer"]), rtol=1e-6, atol=0
    )
    for (name, p), q in zip(models[0].named_parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7, msg=name)


def _benchmark():
    """benchmarks/trainer_speed.py as a module (it is a script, not part of the package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "trainer_speed.py"
    spec = importlib.util.spec_from_file_location("trainer_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(loss: torch.Tensor, into: list[float]) -> torch.Tensor:
    if torch.is_grad_enabled():
        into.append(loss.item())
    return loss


@pytest.mark.parametrize("switch", ["", "off"])
def test_progress_bars_show_unless_the_environment_turns_them_off(sst2, monkeypatch, capsys, switch):
    # chapters executed for the book set HFT_PROGRESS=off: their stored outputs hold results, not bars
    monkeypatch.setenv("HFT_PROGRESS", switch)
    task, tok, train_f, _, _ = sst2
    train(_model(task), task, train_f.select(range(32)), None, None, tok,
          TrainConfig(lr=1e-3, epochs=1, batch_size=16, progress=True))
    out = capsys.readouterr().out
    assert ("epoch 1/1" in out) is (switch == "")
