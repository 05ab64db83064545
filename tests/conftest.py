"""Fixtures shared by several test files."""

import pytest
import torch
from transformers import BertModel

from hft_lessons.backbone import tiny_bert_config


@pytest.fixture(scope="module")
def hf_base() -> BertModel:
    torch.manual_seed(0)
    return BertModel(tiny_bert_config(1000)).eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Three rows of random ids; rows 1 and 2 end in padding."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 1000, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 4:] = 0
    return ids, mask


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
