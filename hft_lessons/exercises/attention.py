"""Checkers for the attention chapters: a causal mask (chapter 1) and a pre-LN layer (chapter 2)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..transformer import EncoderLayer
from .base import attempt, close_to, verdict


def _causal_problem(fn: Callable, atol: float) -> str | None:
    """What differs between ``fn(q, k, v)`` and PyTorch's causal attention; None if nothing."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 8, generator=g) for _ in range(3))
    out, problem = attempt(fn, q.clone(), k.clone(), v.clone())
    if problem is not None:
        return problem
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    problem = close_to("the output", out, ref, atol)
    if problem is None or out.shape != ref.shape:
        return problem
    if close_to("", out, F.scaled_dot_product_attention(q, k, v), atol) is None:
        return problem + "; it equals attention with no mask at all: is the mask applied?"
    rows = (out - ref).abs().amax(dim=(0, 1, 3)) > atol  # which query positions differ
    first = int(rows.nonzero()[0])
    hint = (f"; query position {first} is the first that differs (positions count from 0, and "
            f"query i may see keys 0..i, itself included)")
    return problem + hint


def check_causal_attention(fn: Callable, atol: float = 1e-5) -> bool:
    """Check ``fn(q, k, v)`` against ``F.scaled_dot_product_attention(q, k, v, is_causal=True)``."""
    return verdict(_causal_problem(fn, atol))


def _pre_ln_reference(layer: EncoderLayer, eps: float) -> nn.TransformerEncoderLayer:
    """PyTorch's own pre-LN layer (``norm_first=True``) holding ``layer``'s weights."""
    hidden, heads = layer.attention.query.in_features, layer.attention.num_heads
    ref = nn.TransformerEncoderLayer(hidden, heads, layer.ffn.up.out_features, dropout=0.0,
                                     activation="gelu", layer_norm_eps=eps, batch_first=True,
                                     norm_first=True)
    a = layer.attention
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([a.query.weight, a.key.weight, a.value.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([a.query.bias, a.key.bias, a.value.bias]))
        ref.self_attn.out_proj.load_state_dict(a.out.state_dict())
        ref.linear1.load_state_dict(layer.ffn.up.state_dict())
        ref.linear2.load_state_dict(layer.ffn.down.state_dict())
        ref.norm1.load_state_dict(layer.attention_norm.state_dict())
        ref.norm2.load_state_dict(layer.ffn_norm.state_dict())
    return ref.eval()


def _pre_ln_problem(fn: Callable, atol: float) -> str | None:
    """What differs between ``fn(layer, x, mask)`` and ``nn.TransformerEncoderLayer(norm_first=True)``."""
    torch.manual_seed(0)
    eps = 1e-12
    layer = EncoderLayer(32, 4, 64, dropout=0.0, attention_dropout=0.0, layer_norm_eps=eps).eval()
    with torch.no_grad():  # LayerNorms that are not the identity, so that a missed norm shows
        for norm in (layer.attention_norm, layer.ffn_norm):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 32, generator=g) * 3 + 1
    real = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()
    with torch.no_grad():
        out, problem = attempt(fn, layer, x.clone(), real[:, None, None, :])
        if problem is not None:
            return problem
        ref = _pre_ln_reference(layer, eps)(x, src_key_padding_mask=~real)
        post_ln = layer(x, real[:, None, None, :])
    if not torch.is_tensor(out) or out.shape != x.shape:
        return close_to("the output", out, x, atol)
    problem = close_to("the output (real tokens)", out[real], ref[real], atol)
    if problem is not None and close_to("", out[real], post_ln[real], atol) is None:
        return problem + "; it equals the post-LN layer: normalise each sub-layer's input, not the sum"
    return problem


def check_pre_ln_layer(fn: Callable, atol: float = 1e-5) -> bool:
    """Check ``fn(layer, x, mask)`` against PyTorch's ``nn.TransformerEncoderLayer(norm_first=True)``."""
    return verdict(_pre_ln_problem(fn, atol))
