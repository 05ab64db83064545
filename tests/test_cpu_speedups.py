"""The opt-in CPU speed-ups: NumPy-drawn dropout masks and clipping inside fused AdamW."""

import copy

import pytest
import torch
from torch import nn

from hft_lessons.backbone import load_backbone
from hft_lessons.cpu_speedups import clip_into_optimizer, dropout_keep_mask, numpy_dropout, patched_dropout
from hft_lessons.data import load_samples
from hft_lessons.methods import prepare_model
from hft_lessons.tasks import get_task
from hft_lessons.training import TrainConfig, train


def test_keep_mask_has_the_dropout_rate_and_the_unbiased_scale():
    torch.manual_seed(0)
    keep, scale = dropout_keep_mask((1000, 1000), 0.1)
    assert keep.dtype == torch.bool and keep.shape == (1000, 1000)
    assert abs(keep.float().mean().item() - 0.9) < 0.002
    assert scale == pytest.approx(65536 / (65536 - 6554))  # P(keep) is quantised to 1/65536; the scale matches it
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


def test_fast_cpu_training_without_dropout_is_the_default_run_up_to_rounding():
    """With every dropout at 0 only the folded clipping differs, and it changes rounding, not the maths."""
    task = get_task("sst2")
    tok, _ = load_backbone("tiny-random-bert", verbose=False)
    ds = load_samples("sst2")
    train_f = task.tokenize(ds["train"].select(range(64)), tok, 64)
    runs = []
    for fast in (False, True):
        _, model = _tiny_model()
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0  # attention dropout reads its module's p too
        result = train(model, task, train_f, None, None, tok,
                       TrainConfig(lr=1e-3, epochs=2, batch_size=16, log_every=1, progress=False, fast_cpu=fast))
        runs.append((model, [h["loss"] for h in result.history]))
    (default, losses), (fast, fast_losses) = runs
    assert fast_losses == pytest.approx(losses, rel=1e-4)
    for (name, p), q in zip(default.named_parameters(), fast.parameters(), strict=True):
        assert (p - q).abs().max() < 1e-4, name
