"""The from-scratch encoder: attention equals PyTorch's, the encoder equals transformers.BertModel."""

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import BertModel, GPT2Config

from hft_lessons.backbone import packaged_minilm_path, tiny_bert_config
from hft_lessons.transformer import (
    BertEncoder,
    EncoderLayer,
    MultiHeadAttention,
    scaled_dot_product_attention,
)


def _qkv(seed=0, b=2, h=3, n=5, d=8):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g) for _ in range(3)]


def test_attention_matches_torch_without_mask():
    q, k, v = _qkv()
    ours = scaled_dot_product_attention(q, k, v)
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v), atol=1e-6)


def test_attention_matches_torch_with_boolean_and_additive_masks():
    q, k, v = _qkv(1)
    keep = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()[:, None, None, :]
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    assert torch.allclose(scaled_dot_product_attention(q, k, v, keep), ref, atol=1e-6)
    additive = torch.zeros(keep.shape).masked_fill(~keep, float("-inf"))
    assert torch.allclose(scaled_dot_product_attention(q, k, v, additive), ref, atol=1e-6)


def test_masked_keys_get_zero_weight():
    q, k, v = _qkv(2)
    keep = torch.tensor([True, True, False, True, False])
    _, weights = scaled_dot_product_attention(q, k, v, keep, return_weights=True)
    assert weights[..., ~keep].abs().max() == 0
    assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]))


def test_fused_and_explicit_multihead_attention_agree_with_padding():
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4).eval()
    x = torch.randn(2, 6, 32)
    pad = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    fused = mha(x, pad)
    mha.use_fused = False
    assert torch.allclose(fused, mha(x, pad), atol=1e-6)


def test_prefix_keys_and_values_are_prepended_and_always_visible():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2).eval()
    x, pad = torch.randn(2, 4, 16), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    k_p, v_p = torch.randn(1, 2, 3, 8).expand(2, -1, -1, -1), torch.randn(1, 2, 3, 8).expand(2, -1, -1, -1)

    class Prefix(torch.nn.Module):
        def forward(self, batch_size):
            return k_p[:batch_size], v_p[:batch_size]

    mha.prefix = Prefix()
    q, k, v = (mha.split_heads(lin(x)) for lin in (mha.query, mha.key, mha.value))
    keep = torch.cat([torch.ones(2, 3, dtype=torch.bool), pad.bool()], 1)[:, None, None, :]
    ctx = F.scaled_dot_product_attention(q, torch.cat([k_p, k], 2), torch.cat([v_p, v], 2), attn_mask=keep)
    expected = mha.out(ctx.transpose(1, 2).reshape(2, 4, 16))
    for fused in (True, False):
        mha.use_fused = fused
        assert torch.allclose(mha(x, pad), expected, atol=1e-6)
        assert torch.allclose(mha(x), mha(x, torch.ones(2, 4)), atol=1e-6)


def test_interface_names():
    enc = BertEncoder.from_config(tiny_bert_config(vocab_size=100))
    emb = enc.embeddings
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings", "norm"):
        assert hasattr(emb, name)
    assert isinstance(enc.layers, torch.nn.ModuleList) and all(
        isinstance(x, EncoderLayer) for x in enc.layers
    )
    layer = enc.layers[0]
    for name in ("query", "key", "value", "out"):
        assert isinstance(getattr(layer.attention, name), torch.nn.Linear)
    assert layer.attention.prefix is None
    assert isinstance(layer.ffn.up, torch.nn.Linear) and isinstance(layer.ffn.down, torch.nn.Linear)
    assert isinstance(layer.attention_norm, torch.nn.LayerNorm) and isinstance(
        layer.ffn_norm, torch.nn.LayerNorm
    )
    assert enc.config.model_type == "bert"


@pytest.mark.parametrize("fused", [True, False])
def test_encoder_equals_bertmodel_on_tiny_random_config(fused):
    torch.manual_seed(0)
    hf = BertModel(tiny_bert_config(vocab_size=200)).eval()
    ours = BertEncoder.from_hf(hf, use_fused=fused).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 200, (3, 9), generator=g)
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1] * 2 + [0] * 7])
    types = torch.tensor([[0] * 5 + [1] * 4] * 3)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        got = ours(ids, mask, types)
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() <= 1e-5


def test_tiny_profile_backbone_matches_load_backbone():
    from hft_lessons.backbone import load_backbone

    tok, hf = load_backbone("tiny-random-bert", verbose=False)
    ours = BertEncoder.from_pretrained("tiny-random-bert", verbose=False)
    batch = tok(["a short one", "and a somewhat longer sentence here"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert (ours(**batch) - hf(**batch).last_hidden_state).abs().max().item() <= 1e-5


@pytest.mark.skipif(packaged_minilm_path() is None, reason="packaged all-MiniLM-L6-v2 not installed")
def test_encoder_equals_bertmodel_on_packaged_minilm(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from hft_lessons.backbone import load_backbone

    tok, hf = load_backbone("sentence-transformers/all-MiniLM-L6-v2", verbose=False)
    ours = BertEncoder.from_pretrained(str(packaged_minilm_path()), verbose=False)
    sentences = ["It's a charming and often affecting journey.", "Unflinchingly bleak.",
                 "The film is strictly routine, with a plot that never quite comes together."]  # fmt: skip
    batch = tok(sentences, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any(), "the batch must contain padding"
    with torch.no_grad():
        d = (ours(**batch) - hf(**batch).last_hidden_state).abs().max().item()
    assert d <= 1e-5


def test_non_bert_checkpoint_raises_one_line_value_error(tmp_path):
    folder = tmp_path / "gpt2ish"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(GPT2Config(n_layer=1, n_embd=8, n_head=2).to_dict()))
    with pytest.raises(ValueError) as err:
        BertEncoder.from_pretrained(str(folder), verbose=False)
    assert "gpt2" in str(err.value) and "\n" not in str(err.value)


def test_from_config_rejects_non_bert_config():
    with pytest.raises(ValueError, match="BERT-family"):
        BertEncoder.from_config(GPT2Config())


def test_gradients_flow_through_encoder():
    enc = BertEncoder.from_config(tiny_bert_config(vocab_size=50)).train()
    out = enc(torch.randint(0, 50, (2, 7)), torch.ones(2, 7))
    out.pow(2).mean().backward()
    assert enc.layers[0].attention.query.weight.grad is not None
