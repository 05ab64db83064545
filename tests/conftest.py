"""Fixtures shared by several test files."""

import pytest
import torch
from transformers import BertModel

from hft_lessons.backbone import tiny_bert_config


@pytest.fixture(scope="module")
def hf_base() -> BertModel:
    torch.manual_seed(0)
    return BertModel(tiny_bert_config(1000)).eval()
