"""Method recipes: exact trainable counts, small shares on MiniLM, one-line errors, learning, the outline's
model."""

import copy

import pytest
import torch
from torch import nn

from hft_lessons import delta
from hft_lessons.backbone import load_backbone, packaged_minilm_path
from hft_lessons.data import load_samples
from hft_lessons.methods import METHOD_NAMES, get_recipe, prepare_model, train_config
from hft_lessons.outline import AdapterLayer, OutlineAdapterLayerModel
from hft_lessons.profiles import get_profile
from hft_lessons.tasks import get_task
from hft_lessons.training import TrainConfig, train


@pytest.fixture(scope="module")
def tiny():
    tok, bb = load_backbone("tiny-random-bert", verbose=False)
    return tok, bb


def _model(bb: nn.Module, method: str) -> nn.Module:
    torch.manual_seed(0)
    return prepare_model(get_task("sst2").build_model(copy.deepcopy(bb)), method)


def _linear_sizes(bb: nn.Module) -> dict[str, tuple[int, int]]:
    layer = bb.encoder.layer[0]
    mods = {"query": layer.attention.self.query, "key": layer.attention.self.key,
            "value": layer.attention.self.value, "attention_output": layer.attention.output.dense,
            "ffn_up": layer.intermediate.dense, "ffn_down": layer.output.dense}
    return {role: (m.in_features, m.out_features) for role, m in mods.items()}


def _expected_delta(cfg: delta.DeltaConfig, bb: nn.Module) -> int:
    """Trainable parameters a config adds to a BertModel, from its formula."""
    c, layers = bb.config, bb.config.num_hidden_layers
    sizes = _linear_sizes(bb)
    if isinstance(cfg, delta.LoraConfig):
        return layers * sum(cfg.r * (sizes[t][0] + sizes[t][1]) for t in cfg.target_modules)
    if isinstance(cfg, delta.AdapterConfig):
        d, m = c.hidden_size, cfg.size_for(c.hidden_size)
        places = 2 if cfg.variant == "houlsby" else 1
        return layers * places * (2 * d * m + d + m)
    if isinstance(cfg, delta.BitFitConfig):
        return sum(p.numel() for n, p in bb.named_parameters() if n.endswith(".bias"))
    if isinstance(cfg, delta.PrefixConfig):
        d, p, out = c.hidden_size, cfg.num_virtual_tokens, layers * 2 * c.hidden_size
        if not cfg.prefix_projection:
            return p * out
        w = cfg.encoder_hidden_size or d
        return p * d + (d * w + w) + (w * out + out)
    if isinstance(cfg, delta.IA3Config):
        return layers * sum(sizes[t][0] if t in cfg.feedforward_modules else sizes[t][1]
                            for t in cfg.target_modules)
    if isinstance(cfg, delta.UniPELTConfig):  # each gate is Linear(d -> 1): d + 1 parameters
        d, per_layer = c.hidden_size, 0
        if "lora" in cfg.components:
            per_layer += sum(cfg.r * (sizes[t][0] + sizes[t][1]) + sizes[t][0] + 1 for t in cfg.lora_modules)
        if "adapter" in cfg.components:
            per_layer += sum(2 * sizes[t][1] * cfg.bottleneck_for(sizes[t][1]) + sizes[t][1]
                             + cfg.bottleneck_for(sizes[t][1]) + sizes[t][1] + 1 for t in cfg.adapter_modules)
        if "prefix" in cfg.components:
            per_layer += d + 1
        return layers * per_layer + (
            cfg.num_virtual_tokens * layers * 2 * d if "prefix" in cfg.components else 0
        )
    pytest.skip(f"no formula here for {type(cfg).__name__}; its own tests count it exactly")


def expected_trainable(method: str, bb: nn.Module, num_labels: int = 2) -> int:
    """The trainable count ``method`` should give on ``bb`` with an SST-2 head."""
    head = bb.config.hidden_size * num_labels + num_labels
    recipe = get_recipe(method)
    if recipe.train_backbone:
        return sum(p.numel() for p in bb.parameters()) + head
    if recipe.adapter_layer:  # σ(hW + b) of size a, then a head on a units
        a = recipe.adapter_layer
        return bb.config.hidden_size * a + a + a * num_labels + num_labels
    return head + sum(_expected_delta(cfg, bb) for cfg in recipe.configs())


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_trainable_counts_match_the_formula(method: str, tiny) -> None:
    _, bb = tiny
    model = _model(bb, method)
    trainable, total = delta.count_parameters(model)
    assert trainable == expected_trainable(method, bb)
    assert 0 < trainable <= total


@pytest.mark.skipif(packaged_minilm_path() is None, reason="the packaged all-MiniLM-L6-v2 is not installed")
@pytest.mark.parametrize("method", ["lora", "adapter", "pfeiffer", "hybrid"])
def test_small_share_trainable_on_minilm(method: str) -> None:
    _, bb = load_backbone(str(packaged_minilm_path()), verbose=False)
    model = _model(bb, method)
    assert delta.count_parameters(model)[0] == expected_trainable(method, bb)
    assert delta.trainable_percent(model) <= 2.0


def test_unknown_method_is_a_one_line_error(tiny) -> None:
    _, bb = tiny
    with pytest.raises(ValueError) as err:
        _model(bb, "qlora")
    message = str(err.value)
    assert "\n" not in message and "'qlora'" in message
    assert all(name in message for name in METHOD_NAMES)


def test_train_config_uses_the_recipe_and_the_profile() -> None:
    settings = get_profile("smoke").task("sst2")
    cfg = train_config("lora", settings, progress=False)
    assert (cfg.lr, cfg.head_lr) == (get_recipe("lora").lr, get_recipe("lora").head_lr)
    assert (cfg.epochs, cfg.batch_size, cfg.progress) == (settings.epochs, settings.batch_size, False)


def test_train_config_applies_the_task_overrides() -> None:
    """Per-task recipe changes reach the config (the notebooks and `finetune` both build it here)."""
    from hft_lessons.methods import TASK_OVERRIDES

    for task, changes in TASK_OVERRIDES.items():
        settings = get_profile("cpu").task(task)
        for method, fields in changes.items():
            cfg = train_config(method, settings, task)
            recipe = get_recipe(method, task)
            assert cfg.lr == recipe.lr == fields.get("lr", get_recipe(method).lr)
            assert cfg.epochs == (recipe.epochs or settings.epochs)


def test_layer_decay_option_reaches_the_config() -> None:
    from hft_lessons.cli import build_parser, make_train_config

    settings = get_profile("cpu").task("sst2")
    args = build_parser().parse_args(["finetune", "--task", "sst2", "--method", "full", "--layer-decay", "1"])
    assert make_train_config(args, "full", "sst2", settings, None).layer_decay == 1.0
    assert train_config("full", settings, "sst2").layer_decay == get_recipe("full", "sst2").layer_decay == 0.8


def test_gpu_profile_fine_tunes_bert_base_with_the_published_recipes() -> None:
    """One learning rate for all of BERT-base, 10% warmup: 2e-5 SST-2, 5e-5 CoNLL-2003, 3e-5 SQuAD."""
    for profile in ("gpu", "full"):
        for task, lr in (("sst2", 2e-5), ("conll2003", 5e-5), ("squad", 3e-5)):
            cfg = train_config("full", get_profile(profile).task(task), task)
            assert (cfg.lr, cfg.head_lr, cfg.warmup_ratio, cfg.layer_decay) == (lr, None, 0.1, None)
            lora = train_config("lora", get_profile(profile).task(task), task)
            assert lora.lr == get_recipe("lora", task).lr
    # the smaller profiles keep the recipes tuned on MiniLM
    assert train_config("full", get_profile("cpu").task("sst2"), "sst2").lr == get_recipe("full", "sst2").lr


def test_the_command_line_builds_the_notebook_config() -> None:
    """`finetune` with no options trains with exactly what `methods.train_config` gives the notebooks."""
    from hft_lessons.cli import build_parser, make_train_config

    for profile in ("cpu", "gpu", "full"):
        for task in ("sst2", "conll2003", "squad"):
            for method in ("full", "lora", "hybrid"):
                args = build_parser().parse_args(
                    ["finetune", "--task", task, "--method", method, "--no-progress"]
                )
                settings = get_profile(profile).task(task)
                assert make_train_config(args, method, task, settings, None) == train_config(
                    method, settings, task, progress=False)


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_a_few_steps_lower_the_loss(method: str, tiny) -> None:
    tok, bb = tiny
    task = get_task("sst2")
    rows = load_samples("sst2")["train"].select(range(32))
    features = task.tokenize(rows, tok, 64)
    model = _model(bb, method)
    batch = task.collator(tok)([features[i] for i in range(len(features))])
    model.eval()  # no dropout: compare the same function before and after
    with torch.no_grad():
        before = task.loss(model(**batch), batch).item()
    train(model, task, features, None, None, tok,
          TrainConfig(lr=get_recipe(method).lr, epochs=8, batch_size=16, warmup_ratio=0.0, progress=False))
    model.eval()
    with torch.no_grad():
        after = task.loss(model(**batch), batch).item()
    assert after < before


def _ids(batch: int = 3, seq: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    return ids, mask


def test_outline_adapter_layer_is_relu_of_affine() -> None:
    torch.manual_seed(0)
    layer = AdapterLayer(16, 4)
    h = torch.randn(5, 16)
    assert torch.allclose(layer(h), torch.relu(h @ layer.linear.weight.T + layer.linear.bias))
    assert layer(h).shape == (5, 4) and (layer(h) >= 0).all()


@pytest.mark.parametrize("pooling", ["pooler", "mean", "cls"])
def test_outline_model_shapes_and_frozen_backbone(pooling: str, tiny) -> None:
    _, bb = tiny
    torch.manual_seed(0)
    model = OutlineAdapterLayerModel(copy.deepcopy(bb), adapter_size=8, num_labels=3, pooling=pooling)
    ids, mask = _ids()
    logits = model(ids, mask)
    assert logits.shape == (3, 3)
    assert (logits >= 0).all()  # the outline's ReLU on the logits
    assert model.adapter(torch.randn(3, bb.config.hidden_size)).shape == (3, 8)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == (bb.config.hidden_size * 8 + 8) + (8 * 3 + 3)


def test_fixed_outline_model_has_no_activation_on_logits(tiny) -> None:
    _, bb = tiny
    torch.manual_seed(0)
    fixed = OutlineAdapterLayerModel(copy.deepcopy(bb), adapter_size=8, logit_activation=False).eval()
    assert isinstance(fixed.logit_activation, nn.Identity)
    ids, mask = _ids()
    with torch.no_grad():
        pooled = fixed.pooled(ids, mask)
        logits = fixed(ids, mask)
    assert torch.equal(logits, fixed.classifier(fixed.adapter(pooled)))
    torch.manual_seed(1)
    many = fixed.classify(torch.randn(256, bb.config.hidden_size))
    assert (many < 0).any()  # raw logits may be negative: nothing clips them
    outline = OutlineAdapterLayerModel(copy.deepcopy(bb), adapter_size=8, logit_activation=True)
    assert isinstance(outline.logit_activation, nn.ReLU)


def test_outline_bad_pooling_is_one_line(tiny) -> None:
    _, bb = tiny
    with pytest.raises(ValueError, match="unknown pooling 'max'; allowed: pooler, mean, cls"):
        OutlineAdapterLayerModel(bb, pooling="max")


@pytest.mark.parametrize("task_name", ["sst2", "conll2003", "squad"])
def test_adapter_layer_sits_between_the_frozen_backbone_and_the_head(task_name: str, tiny) -> None:
    """The outline's task adapter layer works for every task: only σ(hW + b) and the head train."""
    tok, bb = tiny
    task = get_task(task_name)
    torch.manual_seed(0)
    model = prepare_model(task.build_model(copy.deepcopy(bb)), "adapter_layer", task_name)
    size = get_recipe("adapter_layer").adapter_layer
    assert isinstance(model.adapter, AdapterLayer) and model.adapter.linear.out_features == size
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("adapter.", "head.")) for n in trained)
    rows = load_samples(task_name)["train"].select(range(4))
    batch = task.collator(tok)([dict(r) for r in task.tokenize(rows, tok, 64)])
    loss = task.loss(model(**batch), batch)
    loss.backward()
    assert torch.isfinite(loss) and model.adapter.linear.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())


def test_adapter_layer_refuses_a_multitask_model(tiny) -> None:
    with pytest.raises(ValueError, match="needs a single-task TaskModel"):
        prepare_model(nn.Linear(2, 2), "adapter_layer")  # type: ignore[arg-type]
