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
Matrix multiplies are most of a step. PyTorch sends float32 matrix multiplies on the CPU to MKL, whose AMD
kernels use 256-bit AVX2; oneDNN (also inside PyTorch, behind ``torch.ops.mkldnn._linear_pointwise``)
compiles its kernels for the processor it finds, AVX-512 included: on the 2-core AMD Zen 5 machine of the
course's benchmark about twice as fast for BERT's projections. :class:`OneDnnLinearFunction` runs a linear
layer's forward, input gradient and weight gradient there, and :func:`onednn_linear` switches a model's
linear layers over only where :func:`onednn_is_faster` measured oneDNN ahead on this machine. oneDNN
builds a kernel for every new number of rows (about 3 ms), so packed layers pad their rows up to a multiple
of :data:`ROW_MULTIPLE`.
They leave the update unchanged (dropout: its expectation) but change the numbers a run produces, so the
trainer uses them only when asked (``TrainConfig(fast_cpu=True)``, through :class:`~.plugin.FastCpu`).
"""

from __future__ import annotations

import itertools
import math
import types
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import transformers
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from ..delta.lora import LoraLinear
from ..runtime import best_time

__all__ = [
    "dropout_keep_mask",
    "dropout_scale_mask",
    "numpy_dropout",
    "patched_dropout",
    "clip_into_optimizer",
    "fuses_clipping",
    "LoraFunction",
    "fused_lora",
    "AttentionFunction",
    "PackedAttentionFunction",
    "cpu_attention_forward",
    "cpu_attention",
    "packed_layers",
    "CompactEmbedding",
    "compact_embeddings",
    "follow_optimizer",
    "OneDnnLinearFunction",
    "onednn_is_faster",
    "onednn_linear",
    "ROW_MULTIPLE",
]

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


def dropout_scale_mask(
    shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
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
    """Inside the block every ``nn.Dropout`` of ``model`` uses :func:`numpy_dropout`.

    Yields how many were patched. Attention-probability dropout is not an ``nn.Dropout`` call:
    :func:`cpu_attention` draws it with NumPy.
    """
    with _forwards_replaced(
        [m for m in model.modules() if type(m) is nn.Dropout and m.p > 0 and not m.inplace], _dropout_forward
    ) as patched:
        yield patched


def fuses_clipping(optimizer: torch.optim.Optimizer) -> bool:
    """True when ``optimizer`` is a fused Adam/AdamW that can apply the clipping scale inside its kernel."""
    return isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW) and bool(
        optimizer.defaults.get("fused")
    )


@torch.no_grad()
def clip_into_optimizer(optimizer: torch.optim.Optimizer, parameters: Iterable[nn.Parameter],
                        max_norm: float) -> torch.Tensor:
    """Clip the total gradient norm to ``max_norm`` inside the next fused ``optimizer.step()``.

    Returns the norm. ``clip_grad_norm_`` multiplies every gradient by ``min(1, max_norm / norm)`` in a pass
    of its own; the fused kernel divides by ``optimizer.grad_scale`` on its way through, so setting that scale
    to the inverse does the same in the pass the update makes anyway.
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

# packed layers pad their token rows to a multiple of this: few distinct oneDNN kernels per run
ROW_MULTIPLE = 64
_MIN_SIZE = 64  # smaller matrices (a pooler over [CLS] rows, a 2-way classifier) stay with MKL


def _onednn_op() -> Any:
    """PyTorch's oneDNN linear operator, or None where this build has none."""
    try:
        return torch.ops.mkldnn._linear_pointwise if torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):
        return None


def _onednn_mm(a: torch.Tensor, b_t: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b_tᵀ (+ bias)`` by oneDNN; ``a`` and ``b_t`` may be transposed views."""
    return torch.ops.mkldnn._linear_pointwise(a, b_t, bias, "none", [], "")


class OneDnnLinearFunction(torch.autograd.Function):
    """``x Wᵀ + b`` with the forward, input-gradient and weight-gradient products computed by oneDNN."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        ctx.save_for_backward(x2, weight)
        ctx.shape, ctx.has_bias = x.shape, bias is not None
        return _onednn_mm(x2, weight, bias).view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x2, weight = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1]).contiguous()
        gx = _onednn_mm(g, weight.t()).view(ctx.shape) if ctx.needs_input_grad[0] else None
        gw = _onednn_mm(g.t(), x2.t()) if ctx.needs_input_grad[1] else None
        gb = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


def _onednn_fits(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """True for float32 CPU products big enough for oneDNN to win (no autocast, no tiny dimension)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not _cpu_autocast()
        and min(weight.shape) >= _MIN_SIZE
        and x.numel() >= _MIN_SIZE * x.shape[-1]
    )


_ONEDNN_FASTER: dict[int, bool] = {}
PROBE_ROUNDS = 5  # alternating timing rounds in onednn_is_faster


def onednn_is_faster(min_gain: float = 1.15) -> bool:
    """Whether oneDNN multiplies BERT-sized float32 matrices at least ``min_gain`` times as fast as MKL here.

    Timed once per thread count (a fraction of a second): a 512-row forward and weight-gradient product of a
    384 → 1536 projection, both libraries warmed up, then timed in alternating rounds, best of each.
    """
    threads = torch.get_num_threads()
    if threads not in _ONEDNN_FASTER:
        if _onednn_op() is None:
            _ONEDNN_FASTER[threads] = False
            return False
        # a generator of its own: timing must not draw from the global RNG that dropout uses, or the first
        # fast_cpu run of a process would see other dropout masks than every later one
        rng = torch.Generator().manual_seed(0)
        x, w, g = (torch.randn(*shape, generator=rng) for shape in ((512, 384), (1536, 384), (512, 1536)))
        def mkl_products() -> object:
            return x @ w.t(), g.t() @ x

        def dnnl_products() -> object:
            return _onednn_mm(x, w), _onednn_mm(g.t(), x.t())

        try:
            dnnl_products()
        except RuntimeError:  # a build whose operator takes other arguments
            _ONEDNN_FASTER[threads] = False
            return False
        # Alternating rounds: timing one library's tries before the other's gave the first one the process's
        # cold start (MKL measured up to 1.8x slower than a moment later), which switched oneDNN on at random.
        mkl = dnnl = math.inf
        for _ in range(PROBE_ROUNDS):
            mkl = min(mkl, best_time(mkl_products, 1))
            dnnl = min(dnnl, best_time(dnnl_products, 1))
        _ONEDNN_FASTER[threads] = mkl >= min_gain * dnnl
    return _ONEDNN_FASTER[threads]


_USE_ONEDNN = [False]  # set inside onednn_linear(): LoRA's base product follows it too


def _onednn_linear_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    if not _onednn_fits(x, self.weight):
        return nn.functional.linear(x, self.weight, self.bias)
    return OneDnnLinearFunction.apply(x, self.weight, self.bias)


@contextmanager
def onednn_linear(model: nn.Module) -> Iterator[int]:
    """Inside the block the ``nn.Linear`` layers of ``model`` multiply with oneDNN where it is faster.

    Yields how many. Nothing changes (yields 0) where :func:`onednn_is_faster` finds MKL as fast. LoRA's fused
    projections (:func:`fused_lora`) use oneDNN for their frozen product as well.
    """
    if not onednn_is_faster():
        yield 0
        return
    _USE_ONEDNN[0] = True
    try:
        with _forwards_replaced(
            [m for m in model.modules() if type(m) is nn.Linear], _onednn_linear_forward
        ) as n:
            yield n
    finally:
        _USE_ONEDNN[0] = False


class LoraFunction(torch.autograd.Function):
    """``x Wᵀ + b + s·(x Aᵀ) Bᵀ`` with the low-rank term accumulated inside the matrix multiplies (W
    frozen)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        lora_a: torch.Tensor,
        lora_b: torch.Tensor,
        scaling: float,
    ) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        # [tokens, r], computed as a wide [r, tokens] product (faster, see backward)
        u = (lora_a @ x2.t()).t()
        dnnl = _USE_ONEDNN[0] and _onednn_fits(x2, weight)
        if dnnl:
            x2 = x2.contiguous()
            y = _onednn_mm(x2, weight, bias)
        else:
            y = torch.addmm(bias, x2, weight.t()) if bias is not None else x2 @ weight.t()
        y.addmm_(u, lora_b.t(), alpha=scaling)  # y += s·u Bᵀ in the multiply's own pass over y
        ctx.save_for_backward(x2, u, weight, lora_a, lora_b)
        ctx.scaling, ctx.shape, ctx.dnnl = scaling, x.shape, dnnl
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x2, u, weight, lora_a, lora_b = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        # The rank-r products are written as wide [r, n] results and transposed back: MKL computes those
        # 2-4x faster than the same numbers as tall, 8-column ones ([tokens, r] or [out, r]).
        gu_t = (lora_b.t() @ g.t()).mul_(ctx.scaling)  # (dL/du)ᵀ, [r, tokens]
        if ctx.needs_input_grad[0]:
            gx = _onednn_mm(g.contiguous(), weight.t()) if ctx.dnnl else g @ weight
            gx = gx.addmm_(gu_t.t(), lora_a).view(ctx.shape)
        else:
            gx = None
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


def _attention_core_backward(
    g: torch.Tensor,
    qs: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    probs: torch.Tensor,
    dropped: torch.Tensor,
    factors: torch.Tensor | None,
    scale: float,
) -> tuple[torch.Tensor, ...]:
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
    """``dropout(softmax(q kᵀ·scale + mask)) v`` with the backward written by hand.

    The inputs are ``[batch, heads, tokens, head_dim]``. With dropout, ``scaled_dot_product_attention`` on the
    CPU falls back to its op-by-op path, which copies each input twice, scales q and k separately and draws
    the mask with ``bernoulli_``. This copies each input once (q with the scale folded in), draws the mask
    with :func:`dropout_scale_mask` and writes the backward as five products and one softmax gradient.
    """

    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        p: float,
        scale: float,
    ) -> torch.Tensor:
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
    anyway) and the output gathered back, so everything around attention can skip the padding. q, k and v
    may carry extra rows after the real tokens (rows padded up for oneDNN): those are ignored, come back as
    zeros in the output and get zero gradients.
    """

    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        index: torch.Tensor,
        keep: torch.Tensor,
        heads: int,
        p: float,
        scale: float,
    ) -> torch.Tensor:
        b, t = keep.shape
        d = q.shape[-1] // heads
        real, rows = index.numel(), q.shape[0]
        padding = (~keep).reshape(-1).nonzero().squeeze(1)

        def unpack(x: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
            # zeros at padding (0 x NaN is NaN), written only there: the real rows are copied in next
            grid = (
                x.new_empty(b * t, x.shape[-1]).index_fill_(0, padding, 0.0).index_copy_(0, index, x[:real])
            )
            heads_first = grid.view(b, t, heads, d).transpose(1, 2)
            return torch.mul(heads_first, factor, out=x.new_empty(heads_first.shape))

        def pack(x: torch.Tensor) -> torch.Tensor:
            flat = x.transpose(1, 2).reshape(b * t, heads * d)
            if rows == real:
                return flat.index_select(0, index)
            out = flat.new_empty(rows, heads * d)
            out[real:].zero_()
            torch.index_select(flat, 0, index, out=out[:real])
            return out

        qs, k4, v4 = unpack(q, scale), unpack(k), unpack(v)
        out, probs, dropped, factors = _attention_core(qs, k4, v4, keep[:, None, None, :], p)
        ctx.save_for_backward(qs, k4, v4, probs, dropped, factors)
        ctx.scale, ctx.unpack, ctx.pack = scale, unpack, pack
        return pack(out)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grads = _attention_core_backward(ctx.unpack(grad), *ctx.saved_tensors, ctx.scale)
        return (*(ctx.pack(g) for g in grads), None, None, None, None, None)


# the name :func:`cpu_attention` registers with Hugging Face's attention interfaces
ATTENTION_NAME = "hft_cpu"


def cpu_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """A Hugging Face attention function: :class:`AttentionFunction` on the CPU, SDPA's function otherwise."""
    plain = (query.device.type == "cpu" and query.dtype == torch.float32 and not _cpu_autocast()
             and query.shape[1] == key.shape[1] and not getattr(module, "is_causal", False)
             and not any(kwargs.get(name) is not None for name in ("position_bias", "softcap", "is_causal")))
    if not plain:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    out = AttentionFunction.apply(query, key, value, attention_mask, dropout, scale)
    return out.transpose(1, 2).contiguous(), None


@contextmanager
def cpu_attention(model: nn.Module) -> Iterator[int]:
    """Inside the block the SDPA-attention Hugging Face models in ``model`` use :func:`cpu_attention_forward`.

    Yields how many model configurations were switched (an SDPA model reads its attention function and its
    mask format from ``config._attn_implementation``); models with other attention are left alone.
    """
    try:
        # imported here: older transformers lack pluggable attention, and then SDPA stays as it is
        from transformers import AttentionInterface, AttentionMaskInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    except ImportError:
        yield 0
        return
    AttentionInterface.register(ATTENTION_NAME, cpu_attention_forward)
    # the same boolean masks
    AttentionMaskInterface.register(ATTENTION_NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
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
    """The ``[batch, length]`` real-token mask behind a padding-only attention mask, or None if there is
    none."""
    if (
        hidden.device.type != "cpu"
        or hidden.dtype != torch.float32
        or _cpu_autocast()
        or mask is None
        or mask.dtype != torch.bool
        or mask.shape != (hidden.shape[0], 1, hidden.shape[1], hidden.shape[1])
    ):
        return None
    # what the first token may attend to: the real tokens, if the mask is padding only
    keep = mask[:, 0, 0, :]
    if bool(keep.all()) or not torch.equal(mask, keep[:, None, None, :].expand_as(mask)):
        return None
    return keep


def _packed_layer_forward(
    self: nn.Module,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    encoder_hidden_states: torch.Tensor | None = None,
    *args: Any,
    **kwargs: Any,
) -> torch.Tensor:
    keep = _padding_keep(hidden_states, attention_mask)
    if (
        keep is None
        or encoder_hidden_states is not None
        or args
        or kwargs.get("output_attentions")
        or any(
            kwargs.get(name) is not None for name in ("encoder_attention_mask", "cache", "past_key_values")
        )
    ):
        return type(self).forward(self, hidden_states, attention_mask, encoder_hidden_states, *args, **kwargs)
    b, t, hidden = hidden_states.shape
    flat_keep = keep.reshape(-1)
    index, padding = flat_keep.nonzero().squeeze(1), (~flat_keep).nonzero().squeeze(1)
    real = index.numel()
    # for oneDNN: extra rows repeat the first token, outputs dropped
    multiple = ROW_MULTIPLE if _USE_ONEDNN[0] else 1
    rows = -(-real // multiple) * multiple
    gather = torch.cat([index, index[:1].expand(rows - real)]) if rows > real else index
    x = hidden_states.reshape(b * t, hidden).index_select(0, gather).unsqueeze(0)  # [1, rows, hidden]
    attn = self.attention.self
    context = PackedAttentionFunction.apply(
        attn.query(x)[0],
        attn.key(x)[0],
        attn.value(x)[0],
        index,
        keep,
        attn.num_attention_heads,
        attn.dropout.p if attn.training else 0.0,
        attn.scaling,
    )
    out = self.feed_forward_chunk(self.attention.output(context.unsqueeze(0), x))[0]
    grid = hidden_states.new_empty(b * t, hidden).index_fill_(0, padding, 0.0)  # zeros at padding only
    return grid.index_copy(0, index, out[:real]).view(b, t, hidden)


def _packable(layer: nn.Module) -> bool:
    """A Hugging Face BERT layer (transformers >= 5) whose forward, attention and hooks nothing has replaced
    or added."""
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
    positions come out as zeros (the course's heads and losses never read them). Inside :func:`onednn_linear`
    the block is padded to a multiple of :data:`ROW_MULTIPLE` rows (copies of the first token whose outputs
    are dropped and whose gradients are zero), so oneDNN sees few distinct shapes.
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
        if callable(getattr(m, "get_input_embeddings", None)) and callable(
            getattr(m, "set_input_embeddings", None)
        ):
            try:
                if isinstance(m.get_input_embeddings(), nn.Embedding):
                    return m
            except NotImplementedError:
                continue
    return None


@contextmanager
def compact_embeddings(
    model: nn.Module, input_ids: Sequence[Sequence[int]]
) -> Iterator[CompactEmbedding | None]:
    """Inside the block the word-embedding table trains only the rows of the tokens in ``input_ids``.

    Yields the :class:`CompactEmbedding` (call its ``after_step`` after every optimizer step, or use
    :func:`follow_optimizer`), or None where it does not apply: no trainable ``nn.Embedding`` table, one
    shared with another module (tied weights), or one with ``max_norm``, ``scale_grad_by_freq`` or sparse
    gradients. On leaving, the table holds the trained values.
    """
    owner = _input_embedding_owner(model)
    table = owner.get_input_embeddings() if owner is not None else None
    if (
        table is None
        or not table.weight.requires_grad
        or table.max_norm is not None
        or table.scale_grad_by_freq
        or table.sparse
        or sum(p is table.weight for m in model.modules() for p in m.parameters(False)) != 1
    ):
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
    """Inside the block each real ``optimizer.step()`` records its weight decay on ``compact``'s other
    rows."""
    group = next((g for g in optimizer.param_groups if any(p is compact.weight for p in g["params"])), None)
    if group is None:
        raise ValueError("the optimizer does not train the compact embedding table")
    if not isinstance(optimizer, torch.optim.AdamW):
        raise ValueError(
            f"a compact embedding table needs AdamW's decoupled weight decay, got {type(optimizer).__name__}"
        )
    handle = optimizer.register_step_post_hook(
        lambda *_: compact.after_step(float(group["lr"]), group["weight_decay"])
    )
    try:
        yield
    finally:
        handle.remove()
