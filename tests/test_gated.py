"""Unit tests for the gated UniPELT hybrid: gates, identity, counts, save/load, composition, training."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from delta_helpers import TaskModel, train_steps
from torch import nn
from transformers import BertModel

from hft_lessons import delta

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ARCHS = ("hf", "hft")
SMALL = dict(r=4, alpha=8, num_virtual_tokens=3, bottleneck_size=8)


def make_backbone(arch: str, hf_base: BertModel) -> nn.Module:
    """A fresh copy of the tiny backbone: transformers BertModel or the course's BertEncoder."""
    if arch == "hf":
        return copy.deepcopy(hf_base).eval()
    from hft_lessons.transformer import BertEncoder

    return BertEncoder.from_hf(hf_base).eval()


def run(model: nn.Module, batch) -> torch.Tensor:
    ids, mask = batch
    out = model(input_ids=ids, attention_mask=mask)
    return out if isinstance(out, torch.Tensor) else out.last_hidden_state


@pytest.mark.parametrize("arch", ARCHS)
def test_gates_in_open_unit_interval_and_shape(arch: str, hf_base: BertModel, batch) -> None:
    model = make_backbone(arch, hf_base)
    delta.apply(model, delta.UniPELTConfig(**SMALL))
    with pytest.raises(ValueError, match="not run yet"):
        delta.gate_values(model)
    run(model, batch)
    values = delta.gate_values(model)
    assert list(values) == ["lora.query", "lora.value", "adapter.ffn_down", "prefix"]
    n_layers = hf_base.config.num_hidden_layers
    assert all(len(v) == n_layers for v in values.values())
    assert all(0.0 < g < 1.0 for v in values.values() for g in v)
    fig = delta.plot_gates(model)
    assert len(fig.axes) == 2  # the heatmap and its colour bar


def test_gate_values_needs_unipelt(hf_base: BertModel) -> None:
    model = make_backbone("hf", hf_base)
    delta.apply(model, delta.LoraConfig(r=2))
    with pytest.raises(ValueError, match="no unipelt gates"):
        delta.gate_values(model)


@pytest.mark.parametrize("arch", ARCHS)
def test_identity_at_init_without_prefix(arch: str, hf_base: BertModel, batch) -> None:
    """LoRA (B = 0) and adapters (up = 0) start as the identity whatever the gate; prefixes do not."""
    model = make_backbone(arch, hf_base)
    before = run(model, batch)
    both = ("attention_output", "ffn_down")
    delta.apply(model, delta.UniPELTConfig(components=("lora", "adapter"), adapter_modules=both))
    assert torch.equal(run(model, batch), before)


@pytest.mark.parametrize("arch", ARCHS)
def test_trainable_counts_are_exact(arch: str, hf_base: BertModel) -> None:
    cfg = hf_base.config
    h, n = cfg.hidden_size, cfg.num_hidden_layers
    model = TaskModel(make_backbone(arch, hf_base), h)
    delta.apply(model, delta.UniPELTConfig(**SMALL))
    gate = h + 1
    lora = 2 * (4 * (h + h) + gate)  # query and value: r·(in + out) + a gate each
    adapter = h * 8 + 8 + 8 * h + h + gate
    prefix = gate  # per layer; the prefix embeddings are shared: P · layers · 2 · h
    expected = n * (lora + adapter + prefix) + 3 * n * 2 * h
    assert sum(p.numel() for p in delta.delta_parameters(model).values()) == expected
    trainable, total = delta.count_parameters(model)
    assert trainable == expected + h * 3 + 3  # plus the head
    plain = sum(p.numel() for p in make_backbone(arch, hf_base).parameters())
    assert total == plain + expected + h * 3 + 3


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_round_trip_is_bit_exact(arch: str, hf_base: BertModel, batch, tmp_path) -> None:
    torch.manual_seed(0)
    model = TaskModel(make_backbone(arch, hf_base), hf_base.config.hidden_size).eval()
    delta.apply(model, delta.UniPELTConfig(**SMALL, prefix_projection=True, encoder_hidden_size=16))
    with torch.no_grad():
        for _, p in sorted(delta.delta_parameters(model).items()):
            p.add_(0.1 * torch.randn_like(p))
    expected = run(model, batch)
    delta.save(model, tmp_path / "run")
    torch.manual_seed(123)
    fresh = TaskModel(make_backbone(arch, hf_base), hf_base.config.hidden_size).eval()
    delta.load(fresh, tmp_path / "run")
    assert torch.equal(run(fresh, batch), expected)
    assert delta.count_parameters(fresh) == delta.count_parameters(model)
    assert delta.gate_values(fresh) == delta.gate_values(model)


@pytest.mark.parametrize("arch", ARCHS)
def test_composition_with_bitfit_and_lora(arch: str, hf_base: BertModel, batch) -> None:
    """BitFit takes only the backbone's own biases (not the gates'); LoRA inside UniPELT stays countable."""
    model = make_backbone(arch, hf_base)
    delta.apply(model, [delta.UniPELTConfig(**SMALL), delta.BitFitConfig(),
                        delta.LoraConfig(r=2, target_modules=("key",))])
    configs = delta.applied_configs(model)
    per_method = {c.method: c.parameters_in(model) for c in configs}
    names = [set(p) for p in per_method.values()]
    assert all(a.isdisjoint(b) for i, a in enumerate(names) for b in names[i + 1:])
    assert not any("gate" in n for n in per_method["bitfit"])
    assert all("key" in n for n in per_method["lora"])
    union = {id(p) for ps in per_method.values() for p in ps.values()}
    assert sum(p.numel() for p in model.parameters() if id(p) in union) == delta.count_parameters(model)[0]
    run(model, batch)  # still runs
    with pytest.raises(ValueError, match="not mergeable|nothing to merge|cannot be merged"):
        fresh = make_backbone(arch, hf_base)
        delta.apply(fresh, delta.UniPELTConfig(**SMALL))
        delta.merge(fresh)


def test_unipelt_after_prefix_is_rejected(hf_base: BertModel) -> None:
    model = make_backbone("hf", hf_base)
    delta.apply(model, delta.PrefixConfig(num_virtual_tokens=2))
    with pytest.raises(ValueError, match="cannot be combined with the 'prefix' method"):
        delta.apply(model, delta.UniPELTConfig(**SMALL))
    delta.apply(model, delta.UniPELTConfig(**SMALL, components=("lora", "adapter")))  # without prefix: fine


@pytest.mark.parametrize("bad", [dict(components=()), dict(components=("lora", "bias")), dict(r=0),
                                 dict(activation="nope"), dict(num_virtual_tokens=0)])
def test_bad_configs_raise_one_line(bad: dict) -> None:
    with pytest.raises(ValueError) as err:
        delta.UniPELTConfig(**bad)
    assert "\n" not in str(err.value)


def test_config_round_trip_and_make_config() -> None:
    cfg = delta.UniPELTConfig(**SMALL, components=("lora", "prefix"))
    assert delta.config_from_dict(cfg.to_dict()) == cfg
    assert isinstance(delta.make_config("unipelt"), delta.UniPELTConfig)


@pytest.mark.parametrize("arch", ARCHS)
def test_training_moves_gates(arch: str, hf_base: BertModel, batch) -> None:
    torch.manual_seed(0)
    model = TaskModel(make_backbone(arch, hf_base), hf_base.config.hidden_size)
    delta.apply(model, delta.UniPELTConfig(**SMALL))
    model = copy.deepcopy(model)  # a copy keeps working (hooks, gates, shared prefix encoder)
    model.eval()
    run(model, batch)
    gates_before = delta.gate_values(model)
    changed = train_steps(model, batch, steps=4, lr=5e-2)
    allowed = set(delta.delta_parameters(model)) | {"head.weight", "head.bias"}
    assert changed <= allowed
    gate_params = {n for n in allowed if ".gate.linear." in n}
    assert gate_params and gate_params <= changed
    model.eval()
    run(model, batch)
    gates_after = delta.gate_values(model)
    assert any(
        abs(a - b) > 1e-4 for k in gates_before for a, b in zip(gates_before[k], gates_after[k], strict=True)
    )


def test_recipe_and_plot_from_values() -> None:
    from hft_lessons.methods import METHOD_NAMES, get_recipe

    assert "unipelt" in METHOD_NAMES
    assert [c.method for c in get_recipe("unipelt").configs()] == ["unipelt"]
    fig = delta.plot_gates({"lora.query": [0.2, 0.7], "prefix": [0.5, 0.9]})
    assert fig.axes[0].get_images()[0].get_array().shape == (2, 2)


def test_unipelt_benchmark_rebuilds_the_old_recipe_and_todays() -> None:
    """benchmarks/unipelt_sst2.py's ``recipe`` variant is the recipe before the study (so its results stay
    reproducible) and its ``all_linears_decay`` variant is today's ``unipelt`` recipe on SST-2."""
    import importlib.util
    from pathlib import Path

    from hft_lessons.methods import get_recipe

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "unipelt_sst2.py"
    spec = importlib.util.spec_from_file_location("unipelt_sst2", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    old = bench.variant_recipe("recipe")
    assert old.configs() == [delta.UniPELTConfig(r=8, alpha=16, lora_modules=("query", "value"),
                                                 num_virtual_tokens=10)]
    assert (old.lr, old.layer_decay) == (1e-3, None)
    new, today = bench.variant_recipe("all_linears_decay"), get_recipe("unipelt", "sst2")
    assert new.configs() == today.configs() and today.configs()[0].lora_modules == delta.ROLES
    rates = (today.lr, today.layer_decay, today.head_lr)
    assert (new.lr, new.layer_decay, new.head_lr) == rates == (2e-3, 0.9, None)
