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
