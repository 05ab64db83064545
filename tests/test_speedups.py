"""The opt-in CPU speed-ups: NumPy-drawn dropout masks, clipping inside fused AdamW, fused LoRA, compact
embeddings."""

import contextlib
import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn

from hft_lessons.backbone import load_backbone
from hft_lessons.data import load_samples
from hft_lessons.methods import prepare_model
from hft_lessons.speedups import kernels
from hft_lessons.speedups.kernels import (
    ATTENTION_NAME,
    ROW_MULTIPLE,
    AttentionFunction,
    LoraFunction,
    OneDnnLinearFunction,
    PackedAttentionFunction,
    clip_into_optimizer,
    compact_embeddings,
    cpu_attention,
    dropout_keep_mask,
    follow_optimizer,
    fused_lora,
    numpy_dropout,
    onednn_is_faster,
    onednn_linear,
    packed_layers,
    patched_dropout,
)
from hft_lessons.tasks import get_task
from hft_lessons.training import TrainConfig, own_weights, train


def test_keep_mask_has_the_dropout_rate_and_the_unbiased_scale():
    torch.manual_seed(0)
    keep, scale = dropout_keep_mask((1000, 1000), 0.1)
    assert keep.dtype == torch.bool and keep.shape == (1000, 1000)
    assert abs(keep.float().mean().item() - 0.9) < 0.002
    # P(keep) is quantised to 1/65536; the scale matches it
    assert scale == pytest.approx(65536 / (65536 - 6554))
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\), got 1.0"):
        dropout_keep_mask((3,), 1.0)


def test_numpy_dropout_keeps_the_expectation_and_its_gradient_is_the_mask():
    torch.manual_seed(0)
    x = torch.ones(2000, 500, requires_grad=True)
    y = numpy_dropout(x, 0.1)
    assert abs(y.mean().item() - 1.0) < 0.005
    kept = y != 0
    assert 0.89 < kept.float().mean().item() < 0.91
    assert torch.allclose(y[kept], torch.full_like(y[kept], 65536 / (65536 - 6554)))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(sum)/dx = mask * scale
    assert torch.equal(numpy_dropout(x, 0.1, training=False), x)


def test_numpy_dropout_follows_torch_seed():
    draw = lambda: numpy_dropout(torch.ones(50, 50), 0.5)  # noqa: E731
    torch.manual_seed(3)
    a, b = draw(), draw()
    torch.manual_seed(3)
    assert torch.equal(draw(), a) and not torch.equal(a, b)


def _tiny_model(method="full"):
    task = get_task("sst2")
    _, bb = load_backbone("tiny-random-bert", verbose=False)
    torch.manual_seed(0)
    return task, prepare_model(task.build_model(bb), method)


def test_patched_dropout_swaps_every_dropout_and_puts_them_back():
    _, model = _tiny_model()
    n = sum(type(m) is nn.Dropout and m.p > 0 for m in model.modules())
    ids = torch.randint(5, 100, (4, 12))
    model.eval()
    before = model(ids)
    with patched_dropout(model) as patched:
        assert patched == n > 0
        assert all("forward" in m.__dict__ for m in model.modules() if type(m) is nn.Dropout)
        assert torch.equal(model(ids), before)  # eval mode: no dropout at all
        model.train()
        torch.manual_seed(1)
        ours = model(ids)
    assert not any("forward" in m.__dict__ for m in model.modules())
    torch.manual_seed(1)
    assert not torch.allclose(model(ids), ours)  # torch's own masks again


def test_clipping_inside_fused_adamw_matches_clip_grad_norm():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(32, 128), nn.GELU(), nn.Linear(128, 3))
    b = copy.deepcopy(a)
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-2, fused=True)
    opt_b = torch.optim.AdamW(b.parameters(), lr=1e-2, fused=True)
    for _ in range(4):
        x, y = torch.randn(16, 32), torch.randint(0, 3, (16,))
        nn.functional.cross_entropy(a(x) * 30, y).backward()
        nn.functional.cross_entropy(b(x) * 30, y).backward()
        norm_a = torch.nn.utils.clip_grad_norm_(a.parameters(), 1.0)
        norm_b = clip_into_optimizer(opt_b, b.parameters(), 1.0)
        assert norm_a.item() == pytest.approx(norm_b.item()) and norm_a > 1  # the clip really scales
        opt_a.step()
        opt_b.step()
        opt_b.grad_scale = None
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.allclose(p.grad, q.grad, atol=1e-7)  # the kernel leaves the clipped gradient behind
        opt_a.zero_grad()
        opt_b.zero_grad()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert (p - q).abs().max() < 1e-6


def test_clipping_inside_needs_a_fused_optimizer():
    lin = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="clip_into_optimizer needs a fused Adam or AdamW, got SGD"):
        clip_into_optimizer(torch.optim.SGD(lin.parameters(), lr=0.1), lin.parameters(), 1.0)


@pytest.mark.parametrize(
    "method",
    ["full", pytest.param("lora", marks=pytest.mark.slow), pytest.param("hybrid", marks=pytest.mark.slow)],
)
def test_fast_cpu_training_without_dropout_is_the_default_run_up_to_rounding(method, monkeypatch):
    """With every dropout at 0 the speed-ups (folded clipping, and by method the compact embedding table or
    the fused LoRA projections) change rounding, not the maths."""
    used = {"compact_steps": 0, "fused_calls": 0, "attention_calls": 0, "packed_calls": 0}
    after_step, fused_forward = kernels.CompactEmbedding.after_step, kernels._fused_lora_forward
    attention, packed = kernels.AttentionFunction.forward, kernels.PackedAttentionFunction.forward

    def count_step(self, lr, weight_decay):
        used["compact_steps"] += 1
        after_step(self, lr, weight_decay)

    def count_fused(self, x):
        used["fused_calls"] += 1
        return fused_forward(self, x)

    def count_attention(ctx, *args):
        used["attention_calls"] += 1
        return attention(ctx, *args)

    def count_packed(ctx, *args):
        used["packed_calls"] += 1
        return packed(ctx, *args)

    monkeypatch.setattr(kernels.CompactEmbedding, "after_step", count_step)
    monkeypatch.setattr(kernels, "_fused_lora_forward", count_fused)
    monkeypatch.setattr(kernels.AttentionFunction, "forward", staticmethod(count_attention))
    monkeypatch.setattr(kernels.PackedAttentionFunction, "forward", staticmethod(count_packed))
    task = get_task("sst2")
    tok, _ = load_backbone("tiny-random-bert", verbose=False)
    ds = load_samples("sst2")
    train_f = task.tokenize(ds["train"].select(range(64)), tok, 64)
    eval_f = task.tokenize(ds["validation"], tok, 64, train=False)
    runs = []
    for fast in (False, True):
        _, model = _tiny_model(method)
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0  # attention dropout reads its module's p too
        result = train(
            model,
            task,
            train_f,
            eval_f,
            ds["validation"],
            tok,
            TrainConfig(lr=1e-3, epochs=2, batch_size=16, log_every=1, progress=False, fast_cpu=fast),
        )
        runs.append((model, [h["loss"] for h in result.history if "loss" in h], result.metrics))
    (default, losses, metrics), (fast, fast_losses, fast_metrics) = runs
    assert (used["compact_steps"] == len(losses)) == (method == "full")  # one per optimizer step, full only
    assert (used["fused_calls"] > 0) == (method != "full")
    assert used["packed_calls"] > 0  # padded batches; AttentionFunction takes those without padding
    assert all(m.config._attn_implementation == "sdpa" for m in fast.modules() if hasattr(m, "config"))
    assert fast_losses == pytest.approx(losses, rel=1e-4)
    assert fast_metrics == pytest.approx(metrics, abs=1e-9)  # evaluated (partly) through the compact table
    # all put back
    assert [n for n, _ in default.named_parameters()] == [n for n, _ in fast.named_parameters()]
    assert "forward" not in fast.__dict__ and not any("forward" in m.__dict__ for m in fast.modules())
    for (name, p), q in zip(default.named_parameters(), fast.parameters(), strict=True):
        assert p.requires_grad == q.requires_grad, name
        assert (p - q).abs().max() < 1e-4, name


def _lora_layer(bias_trains: bool = False) -> nn.Module:
    from hft_lessons.delta.lora import LoraLinear

    torch.manual_seed(0)
    layer = LoraLinear(nn.Linear(12, 20), r=4, alpha=8)
    nn.init.normal_(layer.lora_B.weight)  # B = 0 at init would hide half of the gradients
    layer.base.weight.requires_grad_(False)
    layer.base.bias.requires_grad_(bias_trains)
    return layer


@pytest.mark.parametrize("bias_trains", [False, True])
def test_fused_lora_has_the_plain_outputs_and_gradients(bias_trains):
    layer = _lora_layer(bias_trains)
    x = torch.randn(3, 5, 12, requires_grad=True)
    grads = []
    for fused in (False, True):
        with fused_lora(layer) if fused else contextlib.nullcontext(0) as patched:
            assert patched == int(fused)
            y = layer(x)
            (y * torch.linspace(-1, 1, 20)).sum().backward()
        trained = [p for p in layer.parameters() if p.requires_grad]
        grads.append((y.detach(), x.grad.clone(), [p.grad.clone() for p in trained]))
        x.grad = None
        layer.zero_grad(set_to_none=True)
    (y0, gx0, gp0), (y1, gx1, gp1) = grads
    assert torch.allclose(y0, y1, atol=1e-6) and torch.allclose(gx0, gx1, atol=1e-6)
    assert len(gp0) == len(gp1) == 2 + bias_trains
    for a, b in zip(gp0, gp1, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert "forward" not in layer.__dict__  # put back


def test_lora_function_passes_gradcheck():
    torch.manual_seed(0)
    args = [
        torch.randn(4, 6, dtype=torch.double, requires_grad=True),
        torch.randn(5, 6, dtype=torch.double),
        torch.randn(5, dtype=torch.double, requires_grad=True),
        torch.randn(3, 6, dtype=torch.double, requires_grad=True),
        torch.randn(5, 3, dtype=torch.double, requires_grad=True),
        0.7,
    ]
    assert torch.autograd.gradcheck(LoraFunction.apply, args)


def test_fused_lora_leaves_lora_with_dropout_or_a_training_base_alone():
    from hft_lessons.delta.lora import LoraLinear

    with fused_lora(LoraLinear(nn.Linear(4, 4), r=2, alpha=2, dropout=0.1)) as patched:
        assert patched == 0
    layer = _lora_layer()
    layer.base.weight.requires_grad_(True)
    with fused_lora(layer):
        layer(torch.randn(2, 12)).sum().backward()
    assert layer.base.weight.grad is not None  # the class's own forward ran: the base weight got its gradient


def _embedding_model() -> nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(
        BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    )


def test_compact_embedding_table_trains_like_the_full_one():
    """AdamW with weight decay over the whole table vs over the rows the data reaches: the same table
    after."""
    train_ids = [[1, 5, 7, 9], [2, 5, 11], [7, 3, 4]]  # 0 is padding; 12..49 never seen in training
    batches = [torch.tensor([[1, 5, 7, 9], [2, 5, 11, 0]]), torch.tensor([[7, 3, 4]])] * 3
    unseen = torch.tensor([[12, 5, 30, 0]])
    results = []
    for compacted in (False, True):
        model = _embedding_model()
        with compact_embeddings(model, train_ids) if compacted else contextlib.nullcontext() as compact:
            assert (compact is not None) == compacted
            opt = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.3)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))  # a changing lr
            with follow_optimizer(compact, opt) if compacted else contextlib.nullcontext():
                seen = []
                for ids in batches:
                    model(ids, attention_mask=(ids > 0).long()).last_hidden_state.pow(2).mean().backward()
                    opt.step()
                    sched.step()
                    opt.zero_grad()
                    with torch.no_grad():
                        # rows outside the training data, mid-run
                        seen.append(model(unseen).last_hidden_state)
        results.append((model.get_input_embeddings().weight.detach().clone(), seen))
        assert (
            isinstance(model.get_input_embeddings(), nn.Embedding)
            and model.get_input_embeddings().weight.requires_grad
        )
    (full, seen_full), (compacted_table, seen_compact) = results
    # weight decay moved them
    assert (full[12:] != _embedding_model().get_input_embeddings().weight[12:]).all()
    assert torch.allclose(full, compacted_table, atol=1e-6, rtol=1e-5)
    for a, b in zip(seen_full, seen_compact, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_compact_embeddings_leave_frozen_or_tied_tables_alone():
    model = _embedding_model()
    model.get_input_embeddings().weight.requires_grad_(False)
    with compact_embeddings(model, [[1, 2]]) as compact:
        assert compact is None
    model = _embedding_model()
    tied = nn.ModuleDict({"encoder": model, "decoder": nn.Linear(16, 50, bias=False)})
    tied["decoder"].weight = model.get_input_embeddings().weight
    with compact_embeddings(tied, [[1, 2]]) as compact:
        assert compact is None
    with compact_embeddings(nn.Linear(3, 3), [[1]]) as compact:
        assert compact is None


def test_follow_optimizer_needs_adamw_training_the_compact_table():
    model = _embedding_model()
    with compact_embeddings(model, [[1, 2]]) as compact:
        with pytest.raises(ValueError, match="the optimizer does not train the compact embedding table"):
            with follow_optimizer(compact, torch.optim.AdamW(model.pooler.parameters())):
                pass
        with pytest.raises(ValueError, match="needs AdamW's decoupled weight decay, got SGD"):
            with follow_optimizer(compact, torch.optim.SGD(model.parameters(), lr=0.1)):
                pass


def _heads(b=3, t=5, h=2, d=4, dtype=torch.float32):
    """q, k, v as Hugging Face hands them over: [batch, heads, tokens, head_dim] views of [batch, tokens,
    hidden]."""
    return [torch.randn(b, t, h * d, dtype=dtype, requires_grad=True) for _ in range(3)]


def _split(x, h=2):
    b, t, hd = x.shape
    return x.view(b, t, h, hd // h).transpose(1, 2)


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_attention_function_matches_sdpa_outputs_and_gradients(mask_kind):
    torch.manual_seed(0)
    base = _heads()
    mask = {"none": None, "bool": torch.ones(3, 1, 5, 5, dtype=torch.bool),
            "float": torch.randn(3, 1, 1, 5)}[mask_kind]
    if mask_kind == "bool":
        mask[1, ..., 3:] = False  # two padding tokens in the second sentence
    weights = torch.randn(3, 2, 5, 4)
    results = []
    for mine in (False, True):
        q, k, v = (_split(x) for x in base)
        out = (AttentionFunction.apply(q, k, v, mask, 0.0, 0.3) if mine
               else nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3))
        (out * weights).sum().backward()
        results.append((out.detach(), [x.grad.clone() for x in base]))
        for x in base:
            x.grad = None
    (out0, grads0), (out1, grads1) = results
    assert out1.shape == (3, 2, 5, 4)
    assert torch.allclose(out0, out1, atol=1e-6)
    for g0, g1 in zip(grads0, grads1, strict=True):
        assert torch.allclose(g0, g1, atol=1e-5)


def test_attention_function_dropout_is_the_keep_mask_applied_to_the_probabilities():
    base = _heads()
    torch.manual_seed(3)
    q, k, v = (_split(x) for x in base)
    out = AttentionFunction.apply(q, k, v, None, 0.25, 0.5)
    out.sum().backward()
    mine = out.detach(), [x.grad.clone() for x in base]
    for x in base:
        x.grad = None
    torch.manual_seed(3)  # the same draw, by hand
    keep, scale = dropout_keep_mask((3, 2, 5, 5), 0.25)
    q, k, v = (_split(x) for x in base)
    probs = torch.softmax(q @ k.transpose(-1, -2) * 0.5, -1)
    ref = (probs * keep * scale) @ v
    ref.sum().backward()
    assert 0 < int((~keep).sum()) < keep.numel()
    assert torch.allclose(mine[0], ref, atol=1e-6)
    for g0, x in zip(mine[1], base, strict=True):
        assert torch.allclose(g0, x.grad, atol=1e-5)


def test_attention_function_passes_gradcheck():
    torch.manual_seed(0)
    q, k, v = (_split(x.detach().requires_grad_()) for x in _heads(2, 3, 2, 2, torch.double))
    mask = torch.tensor([True, True, False]).view(1, 1, 1, 3).expand(2, 1, 3, 3)
    assert torch.autograd.gradcheck(
        lambda q, k, v: AttentionFunction.apply(q, k, v, mask, 0.0, 0.6), (q, k, v)
    )


def test_cpu_attention_gives_a_bert_its_sdpa_outputs_and_puts_sdpa_back():
    tok, bert = load_backbone("tiny-random-bert", verbose=False)
    bert.eval()
    batch = tok(["a short one", "a much longer sentence than that one"], padding=True, return_tensors="pt")
    assert int((batch["attention_mask"] == 0).sum()) > 0  # padding, so the mask matters
    with torch.no_grad():
        ref = bert(**batch).last_hidden_state
        with cpu_attention(nn.Sequential(bert)) as switched:
            assert switched == 1 and bert.config._attn_implementation == ATTENTION_NAME
            out = bert(**batch).last_hidden_state
    assert bert.config._attn_implementation == "sdpa"
    assert torch.allclose(ref, out, atol=1e-5)
    bert.config._attn_implementation = "eager"  # other attention is left alone
    with cpu_attention(bert) as switched:
        assert switched == 0 and bert.config._attn_implementation == "eager"


def test_packed_attention_matches_padded_attention_on_the_real_tokens():
    torch.manual_seed(0)
    keep = torch.tensor(
        [[True, True, True, False, False], [True, True, True, True, True], [True, True, False, False, False]]
    )
    base = _heads()
    weights = torch.randn(3, 5, 8)
    index = keep.reshape(-1).nonzero().squeeze(1)
    results = []
    for packed in (False, True):
        if packed:
            out = PackedAttentionFunction.apply(*(x[keep] for x in base), index, keep, 2, 0.0, 0.4)
            loss = (out * weights[keep]).sum()
        else:
            q, k, v = (_split(x) for x in base)
            out = (
                AttentionFunction.apply(q, k, v, keep[:, None, None, :], 0.0, 0.4)
                .transpose(1, 2)
                .reshape(3, 5, 8)
            )
            loss, out = (out * weights)[keep].sum(), out[keep]
        loss.backward()
        results.append((out.detach(), [x.grad.clone() for x in base]))
        for x in base:
            x.grad = None
    (out0, grads0), (out1, grads1) = results
    assert out1.shape == (int(keep.sum()), 8)
    assert torch.allclose(out0, out1, atol=1e-6)
    for g0, g1 in zip(grads0, grads1, strict=True):
        assert torch.allclose(g0, g1, atol=1e-5)
        assert not g1[~keep].any()  # padding gets no gradient


def test_packed_layers_give_the_real_tokens_the_padded_outputs_and_gradients():
    tok, bert = load_backbone("tiny-random-bert", verbose=False)
    for m in bert.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    batch = tok(["a short one", "a much longer sentence than that one", "a middle one here"], padding=True,
                return_tensors="pt")
    keep = batch["attention_mask"].bool()
    assert not keep.all()
    results = []
    for packed in (False, True):
        bert.zero_grad(set_to_none=True)
        with packed_layers(bert) if packed else contextlib.nullcontext(0) as patched:
            assert patched == (bert.config.num_hidden_layers if packed else 0)
            out = bert(**batch).last_hidden_state
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
        (out[keep] * weights[keep]).sum().backward()
        results.append(
            (out.detach(), {n: p.grad.clone() for n, p in bert.named_parameters() if p.grad is not None})
        )
    (out0, grads0), (out1, grads1) = results
    assert torch.allclose(out0[keep], out1[keep], atol=1e-5)
    assert not out1[~keep].any()  # padding positions: zeros
    assert grads0.keys() == grads1.keys() and len(grads0) > 0
    for name, g in grads0.items():
        assert torch.allclose(g, grads1[name], atol=1e-5), name
    assert not any("forward" in m.__dict__ for m in bert.modules())  # put back
    unpadded = tok(["two words", "two more"], return_tensors="pt")  # no padding: the layer's own forward
    with torch.no_grad(), packed_layers(bert):
        assert torch.allclose(bert(**unpadded).last_hidden_state, bert(**unpadded).last_hidden_state)


@pytest.mark.parametrize("method", ["adapter", "ia3", "prefix", "unipelt"])
def test_fast_cpu_leaves_the_other_methods_their_maths(method):
    """Methods that hook or widen attention (prefixes, gates) keep the layer's own forward; all train as by
    default."""
    task = get_task("sst2")
    tok, _ = load_backbone("tiny-random-bert", verbose=False)
    ds = load_samples("sst2")
    train_f = task.tokenize(ds["train"].select(range(32)), tok, 64)
    losses = []
    for fast in (False, True):
        _, model = _tiny_model(method)
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        result = train(
            model,
            task,
            train_f,
            None,
            None,
            tok,
            TrainConfig(lr=1e-3, epochs=1, batch_size=16, log_every=1, progress=False, fast_cpu=fast),
        )
        losses.append([h["loss"] for h in result.history if "loss" in h])
    assert len(losses[0]) == 2 and losses[1] == pytest.approx(losses[0], rel=1e-4)


onednn = pytest.mark.skipif(
    kernels._onednn_op() is None, reason="this torch build has no oneDNN linear operator"
)


@pytest.fixture
def force_onednn(monkeypatch):
    """Make :func:`onednn_linear` switch over whatever this machine measured."""
    monkeypatch.setitem(kernels._ONEDNN_FASTER, torch.get_num_threads(), True)


@onednn
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_onednn_linear_function_matches_linear_outputs_and_gradients(layout):
    torch.manual_seed(0)
    x = torch.randn(3, 70, 96) if layout == "contiguous" else torch.randn(70, 3, 96).transpose(0, 1)
    x.requires_grad_(True)
    w, b = torch.randn(128, 96, requires_grad=True), torch.randn(128, requires_grad=True)
    weights = torch.randn(3, 70, 128)
    results = []
    for fn in (nn.functional.linear, OneDnnLinearFunction.apply):
        y = fn(x, w, b)
        (y * weights).sum().backward()
        results.append((y.detach(), x.grad.clone(), w.grad.clone(), b.grad.clone()))
        x.grad = w.grad = b.grad = None
    for ref, got in zip(*results, strict=True):
        assert ref.shape == got.shape
        assert torch.allclose(ref, got, rtol=1e-5, atol=1e-4)
    frozen = torch.randn(128, 96)  # no weight gradient asked for: none computed
    OneDnnLinearFunction.apply(x, frozen, None).sum().backward()
    assert frozen.grad is None and x.grad is not None


def _linear_stack() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(96, 128), nn.GELU(), nn.Linear(128, 2))  # the 2-way layer is too small


@onednn
def test_onednn_linear_switches_the_linear_layers_and_puts_them_back(force_onednn, monkeypatch):
    model, x = _linear_stack(), torch.randn(80, 96)
    ref = model(x)
    calls = []
    forward = OneDnnLinearFunction.forward

    def spy(ctx, x, weight, bias):
        calls.append(tuple(weight.shape))
        return forward(ctx, x, weight, bias)

    monkeypatch.setattr(OneDnnLinearFunction, "forward", staticmethod(spy))
    with onednn_linear(model) as switched:
        assert switched == 2 and kernels._USE_ONEDNN[0]
        out = model(x)
        model(x[:8])  # 8 rows: MKL's
    assert calls == [(128, 96)]  # the 2-way classifier and the 8-row batch stayed with MKL
    assert torch.allclose(ref, out, rtol=1e-5, atol=1e-5)
    assert not kernels._USE_ONEDNN[0] and not any("forward" in m.__dict__ for m in model.modules())


def test_onednn_linear_changes_nothing_where_mkl_is_as_fast(monkeypatch):
    monkeypatch.setitem(kernels._ONEDNN_FASTER, torch.get_num_threads(), False)
    model = _linear_stack()
    with onednn_linear(model) as switched:
        assert switched == 0 and not kernels._USE_ONEDNN[0]
        assert not any("forward" in m.__dict__ for m in model.modules())


def test_onednn_is_faster_measures_once_per_thread_count(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.delitem(kernels._ONEDNN_FASTER, threads, raising=False)
    answer = onednn_is_faster()
    assert isinstance(answer, bool) and kernels._ONEDNN_FASTER[threads] is answer
    monkeypatch.setitem(kernels._ONEDNN_FASTER, threads, not answer)  # cached: not measured again
    assert onednn_is_faster() is (not answer)


def _fake_best_time(seconds: Callable[[int, str], float]) -> tuple[Callable[..., float], list[str]]:
    """A stand-in for best_time: each call takes ``seconds(call number, which library)``."""
    calls = []

    def fake(fn, repeats=5, device=None):
        calls.append(fn.__name__)
        return seconds(len(calls), "dnnl" if "dnnl" in fn.__name__ else "mkl")

    return fake, calls


def test_onednn_probe_does_not_give_the_first_library_timed_the_cold_start(monkeypatch):
    # equal speeds, but the first timing of the process is ten times slower: oneDNN must stay off
    fake, calls = _fake_best_time(lambda n, lib: 10.0 if n == 1 else 1.0)
    monkeypatch.setattr(kernels, "best_time", fake)
    monkeypatch.delitem(kernels._ONEDNN_FASTER, torch.get_num_threads(), raising=False)
    monkeypatch.setattr(kernels, "_onednn_mm", lambda a, b_t, bias=None: a @ b_t.t())  # any build
    monkeypatch.setattr(kernels, "_onednn_op", lambda: object())
    assert onednn_is_faster() is False
    assert calls[:4] == ["mkl_products", "dnnl_products"] * 2  # alternating rounds


def test_onednn_probe_switches_on_when_onednn_is_clearly_faster(monkeypatch):
    fake, _ = _fake_best_time(lambda n, lib: 1.0 if lib == "dnnl" else 2.0)
    monkeypatch.setattr(kernels, "best_time", fake)
    monkeypatch.delitem(kernels._ONEDNN_FASTER, torch.get_num_threads(), raising=False)
    monkeypatch.setattr(kernels, "_onednn_mm", lambda a, b_t, bias=None: a @ b_t.t())
    monkeypatch.setattr(kernels, "_onednn_op", lambda: object())
    assert onednn_is_faster() is True
    monkeypatch.delitem(kernels._ONEDNN_FASTER, torch.get_num_threads(), raising=False)
    fake, _ = _fake_best_time(lambda n, lib: 1.0 if lib == "dnnl" else 1.1)  # below the 1.15 gain
    monkeypatch.setattr(kernels, "best_time", fake)
    assert onednn_is_faster() is False


def test_onednn_probe_says_no_without_timing_when_the_operator_fails(monkeypatch):
    fake, calls = _fake_best_time(lambda n, lib: 1.0)

    def fails(a, b_t, bias=None):
        raise RuntimeError("a build whose operator takes other arguments")

    monkeypatch.setattr(kernels, "best_time", fake)
    monkeypatch.setattr(kernels, "_onednn_mm", fails)
    monkeypatch.setattr(kernels, "_onednn_op", lambda: object())
    monkeypatch.delitem(kernels._ONEDNN_FASTER, torch.get_num_threads(), raising=False)
    assert onednn_is_faster() is False and calls == []
    assert kernels._ONEDNN_FASTER[torch.get_num_threads()] is False  # cached: not tried again


def test_onednn_timing_leaves_the_global_rng_alone(monkeypatch):
    # else the first fast_cpu run of a process gets other dropout masks than later ones (a resumed run, say)
    monkeypatch.delitem(kernels._ONEDNN_FASTER, torch.get_num_threads(), raising=False)
    before = torch.get_rng_state()
    onednn_is_faster()
    assert torch.equal(torch.get_rng_state(), before)


def _bert64():
    """A random BERT wide enough (hidden 64, FFN 128) for oneDNN's products, with the tiny tokenizer."""
    from transformers import BertConfig, BertModel

    tok, _ = load_backbone("tiny-random-bert", verbose=False)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        attn_implementation="sdpa")
    return tok, BertModel(config)


@onednn
def test_packed_layers_with_onednn_pad_the_rows_and_keep_the_padded_results(force_onednn, monkeypatch):
    tok, bert = _bert64()
    words = "the film was a quiet , moving and funny story about two brothers who never met".split()
    batch = tok([" ".join(words[: 3 + 2 * i]) for i in range(8)], padding=True, return_tensors="pt")
    keep = batch["attention_mask"].bool()
    assert int(keep.sum()) % ROW_MULTIPLE != 0 and int(keep.sum()) >= 64  # rows to pad, enough for oneDNN
    rows = []
    forward = OneDnnLinearFunction.forward

    def spy(ctx, x, weight, bias):
        rows.append(x.reshape(-1, x.shape[-1]).shape[0])
        return forward(ctx, x, weight, bias)

    monkeypatch.setattr(OneDnnLinearFunction, "forward", staticmethod(spy))
    results = []
    for fast in (False, True):
        bert.zero_grad(set_to_none=True)
        with contextlib.ExitStack() as stack:
            if fast:
                assert stack.enter_context(packed_layers(bert)) == 2
                assert stack.enter_context(onednn_linear(bert)) > 0
            out = bert(**batch).last_hidden_state
            weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
            (out[keep] * weights[keep]).sum().backward()
        results.append(
            (out.detach(), {n: p.grad.clone() for n, p in bert.named_parameters() if p.grad is not None})
        )
    assert rows and all(r % ROW_MULTIPLE == 0 for r in rows)  # every product in the layers ran on padded rows
    (out0, grads0), (out1, grads1) = results
    assert torch.allclose(out0[keep], out1[keep], atol=1e-5)
    assert not out1[~keep].any()
    assert grads0.keys() == grads1.keys()
    for name, g in grads0.items():
        assert torch.allclose(g, grads1[name], rtol=1e-4, atol=1e-5), name


@onednn
def test_fused_lora_with_onednn_has_the_plain_outputs_and_gradients(force_onednn):
    from hft_lessons.delta.lora import LoraLinear

    torch.manual_seed(0)
    layer = LoraLinear(nn.Linear(96, 128), r=4, alpha=8)
    nn.init.normal_(layer.lora_B.weight)
    layer.base.weight.requires_grad_(False)
    x = torch.randn(2, 40, 96, requires_grad=True)
    results = []
    for fast in (False, True):
        with contextlib.ExitStack() as stack:
            if fast:
                stack.enter_context(onednn_linear(layer))
                assert stack.enter_context(fused_lora(layer)) == 1
            (layer(x) * torch.linspace(-1, 1, 128)).sum().backward()
        results.append((x.grad.clone(), layer.lora_A.weight.grad.clone(), layer.lora_B.weight.grad.clone(),
                        layer.base.bias.grad.clone()))
        x.grad = None
        layer.zero_grad(set_to_none=True)
    for ref, got in zip(*results, strict=True):
        assert torch.allclose(ref, got, rtol=1e-5, atol=1e-4)


def test_own_weights_copies_trainable_weights_and_keeps_parameters_and_ties():
    emb, head, frozen = nn.Embedding(10, 4), nn.Linear(4, 10), nn.Linear(4, 4)
    head.weight = emb.weight  # tied
    frozen.requires_grad_(False)
    model = nn.ModuleList([emb, head, frozen])
    before = {
        n: (p, p.data_ptr(), p.detach().clone()) for n, p in model.named_parameters(remove_duplicate=False)
    }
    copied = own_weights(model)
    assert copied == 4 * (40 + 10)  # the tied table once, the head's bias; not the frozen layer
    for name, (param, ptr, value) in before.items():
        current = dict(model.named_parameters(remove_duplicate=False))[name]
        assert current is param and torch.equal(current, value)
        assert (current.data_ptr() != ptr) == param.requires_grad, name
    assert head.weight is emb.weight


def test_own_weights_moves_pretrained_weights_out_of_the_file_mapping():
    import sys
    from pathlib import Path

    from hft_lessons.backbone import packaged_minilm_path

    if packaged_minilm_path() is None or not sys.platform.startswith("linux"):
        pytest.skip("needs the packaged MiniLM and Linux's /proc/self/maps")
    _, bert = load_backbone(str(packaged_minilm_path()), verbose=False)

    def mapped() -> int:
        spans = [
            tuple(int(a, 16) for a in line.split()[0].split("-"))
            for line in Path("/proc/self/maps").read_text().splitlines()
            if line.endswith(".safetensors")
        ]
        return sum(any(lo <= p.data_ptr() < hi for lo, hi in spans) for p in bert.parameters())

    if mapped() == 0:
        pytest.skip("this transformers release copies the weights while loading")
    assert own_weights(bert) > 0
    assert mapped() == 0


@onednn
@pytest.mark.parametrize("method", ["full", "lora"])
def test_fast_cpu_training_with_onednn_follows_the_default_run(method, force_onednn, monkeypatch):
    """A BERT wide enough for oneDNN, dropout 0: fast_cpu (oneDNN products, padded packed rows) trains as by
    default."""
    rows = []
    multiply = kernels._onednn_mm

    def spy(a, b_t, bias=None):
        if a.is_contiguous():  # forward and input-gradient products (weight gradients take transposed views)
            rows.append(a.shape[0])
        return multiply(a, b_t, bias)

    monkeypatch.setattr(kernels, "_onednn_mm", spy)
    task = get_task("sst2")
    ds = load_samples("sst2")
    losses = []
    for fast in (False, True):
        tok, bert = _bert64()
        model = prepare_model(task.build_model(bert), method)
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        train_f = task.tokenize(ds["train"].select(range(64)), tok, 64)
        result = train(
            model,
            task,
            train_f,
            None,
            None,
            tok,
            TrainConfig(lr=1e-3, epochs=1, batch_size=16, log_every=1, progress=False, fast_cpu=fast),
        )
        losses.append([h["loss"] for h in result.history if "loss" in h])
    assert len(losses[0]) == 4 and losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert rows and all(r % ROW_MULTIPLE == 0 for r in rows)  # LoRA's projections included
    assert not kernels._USE_ONEDNN[0]
