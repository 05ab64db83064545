"""Fixtures shared by several test files."""

import pytest
import torch
from transformers import BertModel

from hft_lessons.backbone import tiny_bert_config


@pytest.fixture(autouse=True)
def _no_user_run_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read or fill the user's run cache (tests/test_run_cache.py points it at a folder)."""
    monkeypatch.setenv("HFT_RUN_CACHE", "off")


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
