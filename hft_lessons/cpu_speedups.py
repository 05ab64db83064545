"""Opt-in CPU speed-ups for training: the same maths, a different random stream and rounding.

On the CPU this course was measured on (2 AMD cores), torch's dropout drew its masks one number at a time
from its Mersenne twister: 8% of a MiniLM full fine-tuning step at batch 32. NumPy's PCG64 fills the same
mask about four times faster.
Gradient clipping's extra pass over every gradient can ride along inside the fused AdamW kernel, which
already divides each gradient by a scale (the hook mixed precision uses).
LoRA's low-rank product ``s·(x Aᵀ) Bᵀ`` is small in arithmetic but not in memory traffic: unfused it writes a
full-size output, scales it and adds it to the projection's output, and its backward does the same for the
input gradient. :class:`LoraFunction` accumulates it into the projection's own output (and input gradient)
inside the matrix multiply instead.
Full fine-tuning updates all 30,522 rows of BERT's word-embedding table every step, though a training set
reaches only the rows of the tokens it contains (6,602 for 4,000 SST-2 sentences). A row that never gets
a gradient has zero Adam moments, so AdamW only shrinks it by ``1 - lr·weight_decay`` each step.
:class:`CompactEmbedding` trains the reachable rows as a small table and applies that shrinking to the other
rows as one running product: the same update, without the dense 47 MB gradient and its optimizer pass.
With attention dropout, ``scaled_dot_product_attention`` on the CPU runs op by op (copying every input twice
and drawing its mask with ``bernoulli_``); :class:`AttentionFunction` does the same maths with half the copies
and a NumPy-drawn mask, plugged into Hugging Face models as an attention function (:func:`cpu_attention`).
Grouping sentences by length still leaves about 7% padding tokens in SST-2's batches of 32; with
:func:`packed_layers` each BERT layer runs its projections, feed-forward network, dropout and LayerNorms on
the real tokens only and attention through :class:`PackedAttentionFunction`.
All of these leave the update unchanged (dropout: its expectation) but change the numbers a run produces, so
the trainer uses them only when asked (``TrainConfig(fast_cpu=True)``).
"""

from __future__ import annotations

import itertools
import types
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["dropout_keep_mask", "dropout_scale_mask", "numpy_dropout", "patched_dropout", "clip_into_optimizer",
           "fuses_clipping", "LoraFunction", "fused_lora", "AttentionFunction", "PackedAttentionFunction",
           "cpu_attention_forward", "cpu_attention", "packed_layers", "CompactEmbedding", "compact_embeddings",
           "follow_optimizer"]

_LEVELS = 1 << 16  # masks compare 16-bit random integers with a threshold


def dropout_keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> tuple[torch.Tensor, float]:
    """A boolean keep-mask (each entry kept with probability ~1 - p) and the scale 1 / P(keep).

    The generator is seeded from torch's global RNG, so ``torch.manual_seed`` and a checkpoint's RNG state
    fix the masks exactly as they fix torch's own dropout.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
    seed = int(torch.randint(0, 2**62, (1,)))
    numel = int(np.prod(shape)) if len(shape) else 1
    # PCG64's raw 64-bit outputs, each cut into four 16-bit integers (every bit of PCG64 is equally random)
    bits = np.random.PCG64(seed).random_raw(-(-numel // 4)).view(np.int16)[:numel]
    threshold = round(p * _LEVELS)  # drop when the 16-bit integer is below it: P(drop) = threshold / 65536
    keep = torch.from_numpy(bits).view(shape) >= threshold - _LEVELS // 2  # int16 order = uint16 order
    return keep, _LEVELS / (_LEVELS - threshold)


def dropout_scale_mask(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """:func:`dropout_keep_mask` as one factor per entry: 0 where dropped, 1 / P(keep) where kept."""
    keep, scale = dropout_keep_mask(shape, p)
    return keep.to(dtype).mul_(scale)


def numpy_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout with a NumPy-drawn mask on CPU (torch's own dropout elsewhere).

    One multiply each way: the gradient is the upstream gradient times the same factors.
    """
    if not training or p == 0.0 or x.device.type != "cpu":
        return nn.functional.dropout(x, p, training)
    return x * dropout_scale_mask(x.shape, p, x.dtype)


@contextmanager
def _forwards_replaced(modules: list[nn.Module], forward: Any) -> Iterator[int]:
    """Inside the block each of ``modules`` runs ``forward(module, x)``; yields how many."""
    for m in modules:
        m.forward = types.MethodType(forward, m)
    try:
        yield len(modules)
    finally:
        for m in modules:
            del m.forward  # back to the class's forward


def _dropout_forward(self: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    return numpy_dropout(x, self.p, self.training)


@contextmanager
def patched_dropout(model: nn.Module) -> Iterator[int]:
    """Inside the block every ``nn.Dropout`` of ``model`` uses :func:`numpy_dropout`; yields how many were patched.

    Attention-probability dropout is not an ``nn.Dropout`` call: :func:`cpu_attention` draws it with NumPy.
    """
    with _forwards_replaced([m for m in model.modules() if type(m) is nn.Dropout and m.p > 0 and not m.inplace],
                            _dropout_forward) as patched:
        yield patched


def fuses_clipping(optimizer: torch.optim.Optimizer) -> bool:
    """True when ``optimizer`` is a fused Adam/AdamW that can apply the clipping scale inside its kernel."""
    return isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW) and bool(optimizer.defaults.get("fused"))


@torch.no_grad()
def clip_into_optimizer(optimizer: torch.optim.Optimizer, parameters: Iterable[nn.Parameter],
                        max_norm: float) -> torch.Tensor:
    """Clip the total gradient norm to ``max_norm`` inside the next fused ``optimizer.step()``; return the norm.

    ``clip_grad_norm_`` multiplies every gradient by ``min(1, max_norm / norm)`` in a pass of its own; the
    fused kernel divides by ``optimizer.grad_scale`` on its way through, so setting that scale to the
    inverse does the same in the pass the update makes anyway.
    """
    if not fuses_clipping(optimizer):
        raise ValueError(f"clip_into_optimizer needs a fused Adam or AdamW, got {type(optimizer).__name__}")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)  # as clip_grad_norm_ computes it
    optimizer.grad_scale = (1.0 / coef).to(torch.float32).reshape(())  # type: ignore[attr-defined]
    return norm


class LoraFunction(torch.autograd.Function):
    """``x Wᵀ + b + s·(x Aᵀ) Bᵀ`` with the low-rank term accumulated inside the matrix multiplies (W frozen)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, lora_a: torch.Tensor,
                lora_b: torch.Tensor, scaling: float) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        u = (lora_a @ x2.t()).t()  # [tokens, r], computed as a wide [r, tokens] product (faster, see backward)
        y = torch.addmm(bias, x2, weight.t()) if bias is not None else x2 @ weight.t()
        y.addmm_(u, lora_b.t(), alpha=scaling)  # y += s·u Bᵀ in the multiply's own pass over y
        ctx.save_for_backward(x2, u, weight, lora_a, lora_b)
        ctx.scaling, ctx.shape = scaling, x.shape
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x2, u, weight, lora_a, lora_b = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        # The rank-r products are written as wide [r, n] results and transposed back: MKL computes those
        # 2-4x faster than the same numbers as tall, 8-column ones ([tokens, r] or [out, r]).
        gu_t = (lora_b.t() @ g.t()).mul_(ctx.scaling)  # (dL/du)ᵀ, [r, tokens]
        gx = (g @ weight).addmm_(gu_t.t(), lora_a).view(ctx.shape) if ctx.needs_input_grad[0] else None
        gbias = g.sum(0) if ctx.needs_input_grad[2] else None
        ga = gu_t @ x2 if ctx.needs_input_grad[3] else None
        gb = (u.t() @ g).mul_(ctx.scaling).t() if ctx.needs_input_grad[4] else None
        return gx, None, gbias, ga, gb, None


def _attention_core(qs: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                    p: float) -> tuple[torch.Tensor, ...]:
    """Attention over contiguous ``[batch, heads, tokens, head_dim]`` tensors, q already scaled.

    Returns the output and what the backward needs: the probabilities, the dropped-out probabilities and the
    dropout factors (None without dropout).
    """
    b, h, t, d = qs.shape
    s = k.shape[2]
    scores = torch.bmm(qs.view(b * h, t, d), k.view(b * h, s, d).transpose(1, 2)).view(b, h, t, s)
    if mask is not None and mask.dtype == torch.bool:  # True = attend, as SDPA reads it
        scores.masked_fill_(~mask, float("-inf"))
    elif mask is not None:
        scores.add_(mask)
    probs = torch.softmax(scores, -1)
    factors = dropout_scale_mask(probs.shape, p, probs.dtype) if p > 0 else None
    dropped = probs * factors if factors is not None else probs
    out = torch.bmm(dropped.view(b * h, t, s), v.view(b * h, s, d)).view(b, h, t, d)
    return out, probs, dropped, factors


def _attention_core_backward(g: torch.Tensor, qs: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: torch.Tensor,
                             dropped: torch.Tensor, factors: torch.Tensor | None, scale: float) -> tuple[torch.Tensor, ...]:
    """Gradients of :func:`_attention_core` for q (unscaled), k and v; ``g`` is contiguous like the output."""
    b, h, t, d = qs.shape
    s = k.shape[2]
    g = g.view(b * h, t, d)
    gv = torch.bmm(dropped.view(b * h, t, s).transpose(1, 2), g)
    gp = torch.bmm(g, v.view(b * h, s, d).transpose(1, 2)).view(b, h, t, s)
    if factors is not None:
        gp.mul_(factors)
    gs = torch._softmax_backward_data(gp, probs, -1, probs.dtype).view(b * h, t, s)
    gq = torch.bmm(gs, k.view(b * h, s, d)).mul_(scale)
    gk = torch.bmm(gs.transpose(1, 2), qs.view(b * h, t, d))
    return gq.view(b, h, t, d), gk.view(b, h, s, d), gv.view(b, h, s, d)


class AttentionFunction(torch.autograd.Function):
    """``dropout(softmax(q kᵀ·scale + mask)) v`` for ``[batch, heads, tokens, head_dim]`` inputs, backward by hand.

    With dropout, ``scaled_dot_product_attention`` on the CPU falls back to its op-by-op path, which copies
    each input twice, scales q and k separately and draws the mask with ``bernoulli_``. This copies each
    input once (q with the scale folded in), draws the mask with :func:`dropout_scale_mask` and writes
    the backward as five products and one softmax gradient.
    """

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, p: float,
                scale: float) -> torch.Tensor:
        qs = torch.mul(q, scale, out=torch.empty(q.shape, dtype=q.dtype, device=q.device))
        k, v = k.contiguous(), v.contiguous()
        out, probs, dropped, factors = _attention_core(qs, k, v, mask, p)
        ctx.save_for_backward(qs, k, v, probs, dropped, factors)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return (*_attention_core_backward(grad.contiguous(), *ctx.saved_tensors, ctx.scale), None, None, None)


class PackedAttentionFunction(torch.autograd.Function):
    """:class:`AttentionFunction` for q, k, v given as ``[tokens, hidden]``: only the real tokens, no padding.

    ``keep`` marks the real tokens in the ``[batch, length]`` grid and ``index`` gives each token's place in
    that grid, flattened. The tokens are scattered into the padded per-head layout (the copy attention needs
    anyway) and the output gathered back, so everything around attention can skip the padding.
    """

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: torch.Tensor, keep: torch.Tensor,
                heads: int, p: float, scale: float) -> torch.Tensor:
        b, t = keep.shape
        d = q.shape[-1] // heads

        def unpack(x: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
            grid = x.new_zeros(b * t, x.shape[-1]).index_copy_(0, index, x)  # zeros at padding: 0 x NaN is NaN
            heads_first = grid.view(b, t, heads, d).transpose(1, 2)
            return torch.mul(heads_first, factor, out=x.new_empty(heads_first.shape))

        def pack(x: torch.Tensor) -> torch.Tensor:
            return x.transpose(1, 2).reshape(b * t, heads * d).index_select(0, index)

        qs, k4, v4 = unpack(q, scale), unpack(k), unpack(v)
        out, probs, dropped, factors = _attention_core(qs, k4, v4, keep[:, None, None, :], p)
        ctx.save_for_backward(qs, k4, v4, probs, dropped, factors)
        ctx.scale, ctx.unpack, ctx.pack = scale, unpack, pack
        return pack(out)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grads = _attention_core_backward(ctx.unpack(grad), *ctx.saved_tensors, ctx.scale)
        return (*(ctx.pack(g) for g in grads), None, None, None, None, None)


ATTENTION_NAME = "hft_cpu"  # the name :func:`cpu_attention` registers with Hugging Face's attention interfaces


def cpu_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                          **kwargs: Any) -> tuple[torch.Tensor, None]:
    """A Hugging Face attention function: :class:`AttentionFunction` on the CPU, SDPA's function otherwise."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = (query.device.type == "cpu" and query.dtype == torch.float32 and not _cpu_autocast()
             and query.shape[1] == key.shape[1] and not getattr(module, "is_causal", False)
             and not any(kwargs.get(name) is not None for name in ("position_bias", "softcap", "is_causal")))
    if not plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    out = AttentionFunction.apply(query, key, value, attention_mask, dropout, scale)
    return out.transpose(1, 2).contiguous(), None


@contextmanager
def cpu_attention(model: nn.Module) -> Iterator[int]:
    """Inside the block the Hugging Face models in ``model`` that use SDPA attention use :func:`cpu_attention_forward`.

    Yields how many model configurations were switched (an SDPA model reads its attention function and its
    mask format from ``config._attn_implementation``); models with other attention are left alone.
    """
    try:
        from transformers import AttentionInterface, AttentionMaskInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    except ImportError:  # transformers without pluggable attention: SDPA as it is
        yield 0
        return
    AttentionInterface.register(ATTENTION_NAME, cpu_attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])  # the same boolean masks
    configs = {id(c): c for m in model.modules() if (c := getattr(m, "config", None)) is not None
               and getattr(c, "_attn_implementation", None) == "sdpa"}
    for config in configs.values():
        config._attn_implementation = ATTENTION_NAME
    try:
        yield len(configs)
    finally:
        for config in configs.values():
            config._attn_implementation = "sdpa"


def _padding_keep(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
    """The ``[batch, length]`` real-token mask behind a padding-only attention mask, or None if there is none."""
    if (hidden.device.type != "cpu" or hidden.dtype != torch.float32 or _cpu_autocast() or mask is None
            or mask.dtype != torch.bool or mask.shape != (hidden.shape[0], 1, hidden.shape[1], hidden.shape[1])):
        return None
    keep = mask[:, 0, 0, :]  # what the first token may attend to: the real tokens, if the mask is padding only
    if bool(keep.all()) or not torch.equal(mask, keep[:, None, None, :].expand_as(mask)):
        return None
    return keep


def _packed_layer_forward(self: nn.Module, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          encoder_hidden_states: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> torch.Tensor:
    keep = _padding_keep(hidden_states, attention_mask)
    if (keep is None or encoder_hidden_states is not None or args or kwargs.get("output_attentions")
            or any(kwargs.get(name) is not None for name in ("encoder_attention_mask", "cache", "past_key_values"))):
        return type(self).forward(self, hidden_states, attention_mask, encoder_hidden_states, *args, **kwargs)
    b, t, hidden = hidden_states.shape
    index = keep.reshape(-1).nonzero().squeeze(1)
    x = hidden_states.reshape(b * t, hidden).index_select(0, index).unsqueeze(0)  # [1, real tokens, hidden]
    attn = self.attention.self
    context = PackedAttentionFunction.apply(attn.query(x)[0], attn.key(x)[0], attn.value(x)[0], index, keep,
                                            attn.num_attention_heads, attn.dropout.p if attn.training else 0.0,
                                            attn.scaling)
    out = self.feed_forward_chunk(self.attention.output(context.unsqueeze(0), x))[0]
    return hidden_states.new_zeros(b * t, hidden).index_copy(0, index, out).view(b, t, hidden)


def _packable(layer: nn.Module) -> bool:
    """A Hugging Face BERT layer (transformers >= 5) whose forward, attention and hooks nothing has replaced or added."""
    import transformers

    if type(layer).__name__ != "BertLayer" or int(transformers.__version__.split(".")[0]) < 5:
        return False
    attention = getattr(layer, "attention", None)
    attn = getattr(attention, "self", None)
    return (type(attention).__name__ == "BertAttention" and type(attn).__name__ == "BertSelfAttention"
            and not layer.is_decoder and not layer.chunk_size_feed_forward and hasattr(attn, "scaling")
            and getattr(attn.config, "_attn_implementation", None) in ("sdpa", ATTENTION_NAME)
            and not any("forward" in m.__dict__ or m._forward_hooks or m._forward_pre_hooks
                        for m in (layer, attention, attn)))


@contextmanager
def packed_layers(model: nn.Module) -> Iterator[int]:
    """Inside the block the BERT layers of ``model`` skip padding on the CPU; yields how many.

    Each layer gathers its batch's real tokens into one ``[tokens, hidden]`` block, runs the projections,
    feed-forward network, dropout and LayerNorms on those only, and attention through
    :class:`PackedAttentionFunction`. Real tokens get what the padded layer computes, up to rounding; padding
    positions come out as zeros (the course's heads and losses never read them).
    """
    with _forwards_replaced([m for m in model.modules() if _packable(m)], _packed_layer_forward) as patched:
        yield patched


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _fused_lora_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if self.base.weight.requires_grad or x.device.type != "cpu" or _cpu_autocast():
        return type(self).forward(self, x)
    return LoraFunction.apply(x, self.base.weight, self.base.bias, self.lora_A.weight, self.lora_B.weight,
                              self.scaling)


@contextmanager
def fused_lora(model: nn.Module) -> Iterator[int]:
    """Inside the block every plain LoRA projection of ``model`` runs :class:`LoraFunction`; yields how many.

    Plain means: it wraps an ``nn.Linear`` directly, without LoRA dropout. Others keep their own forward,
    as does any whose base weight trains or that runs under autocast.
    """
    from .delta.lora import LoraLinear

    with _forwards_replaced([m for m in model.modules() if type(m) is LoraLinear and type(m.base) is nn.Linear
                             and isinstance(m.lora_dropout, nn.Identity)], _fused_lora_forward) as patched:
        yield patched


class CompactEmbedding(nn.Module):
    """Stands in for a word-embedding table while it trains: only ``rows`` are parameters.

    The other rows get no gradient, so AdamW's only change to them is its weight decay; ``decay`` keeps the
    running product of those factors (:meth:`after_step`) and serves them scaled by it.
    """

    def __init__(self, table: nn.Embedding, rows: torch.Tensor) -> None:
        super().__init__()
        self.table = table
        self.rows = rows
        self.weight = nn.Parameter(table.weight.detach()[rows].clone())
        slot = torch.full((table.num_embeddings,), -1, dtype=torch.long, device=rows.device)
        slot[rows] = torch.arange(len(rows), device=rows.device)
        self.register_buffer("slot", slot, persistent=False)
        self.register_buffer("decay", torch.ones((), dtype=torch.float64, device=rows.device))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The embeddings of ``input_ids``: trained rows from the small table, the others decayed."""
        slot = self.slot[input_ids]
        inside = slot >= 0
        out = nn.functional.embedding(slot.clamp(min=0), self.weight)
        if bool(inside.all()):
            return out
        rest = self.table.weight.detach()[input_ids] * self.decay.to(self.weight.dtype)
        return torch.where(inside.unsqueeze(-1), out, rest)

    @torch.no_grad()
    def after_step(self, lr: float, weight_decay: float) -> None:
        """Record one AdamW step's decoupled weight decay on the rows outside."""
        self.decay *= 1.0 - lr * weight_decay

    @torch.no_grad()
    def write_back(self) -> None:
        """Put the trained rows and the decayed other rows into the original table."""
        weight = self.table.weight
        outside = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
        outside[self.rows] = False
        weight[outside] *= self.decay.to(weight.dtype)
        weight[self.rows] = self.weight.detach().to(weight.dtype)


def _input_embedding_owner(model: nn.Module) -> nn.Module | None:
    """The first submodule that hands out its word-embedding table (a Hugging Face model), or None."""
    for m in model.modules():
        if callable(getattr(m, "get_input_embeddings", None)) and callable(getattr(m, "set_input_embeddings", None)):
            try:
                if isinstance(m.get_input_embeddings(), nn.Embedding):
                    return m
            except NotImplementedError:
                continue
    return None


@contextmanager
def compact_embeddings(model: nn.Module, input_ids: Sequence[Sequence[int]]) -> Iterator[CompactEmbedding | None]:
    """Inside the block the word-embedding table trains only the rows of the tokens in ``input_ids``.

    Yields the :class:`CompactEmbedding` (call its ``after_step`` after every optimizer step, or use
    :func:`follow_optimizer`), or None where it does not apply: no trainable ``nn.Embedding`` table, one
    shared with another module (tied weights), or one with ``max_norm``, ``scale_grad_by_freq`` or sparse
    gradients. On leaving, the table holds the trained values.
    """
    owner = _input_embedding_owner(model)
    table = owner.get_input_embeddings() if owner is not None else None
    if (table is None or not table.weight.requires_grad or table.max_norm is not None or table.scale_grad_by_freq
            or table.sparse or sum(p is table.weight for m in model.modules() for p in m.parameters(False)) != 1):
        yield None
        return
    ids = np.unique(np.fromiter(itertools.chain.from_iterable(input_ids), dtype=np.int64))
    if table.padding_idx is not None:  # its row never gets a gradient: it only decays, like the rows outside
        ids = ids[ids != table.padding_idx]
    compact = CompactEmbedding(table, torch.from_numpy(ids).to(table.weight.device))
    table.weight.requires_grad_(False)
    owner.set_input_embeddings(compact)
    try:
        yield compact
    finally:
        compact.write_back()
        owner.set_input_embeddings(table)
        table.weight.requires_grad_(True)


@contextmanager
def follow_optimizer(compact: CompactEmbedding, optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Inside the block each real ``optimizer.step()`` records its weight decay on ``compact``'s other rows."""
    group = next((g for g in optimizer.param_groups if any(p is compact.weight for p in g["params"])), None)
    if group is None:
        raise ValueError("the optimizer does not train the compact embedding table")
    if not isinstance(optimizer, torch.optim.AdamW):
        raise ValueError(f"a compact embedding table needs AdamW's decoupled weight decay, got {type(optimizer).__name__}")
    handle = optimizer.register_step_post_hook(lambda *_: compact.after_step(float(group["lr"]), group["weight_decay"]))
    try:
        yield
    finally:
        handle.remove()
