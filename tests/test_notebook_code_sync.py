"""The classes and functions built in notebooks 01-06 compute what hft_lessons' do, so they cannot drift."""

import ast
import copy
import math
import time
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig

from hft_lessons import mlm, transformer
from hft_lessons.backbone import load_backbone
from hft_lessons.data import load_samples
from hft_lessons.methods import prepare_model
from hft_lessons.tasks import get_task
from hft_lessons.training import TrainConfig, train

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)


def _definitions(name: str) -> dict:
    """Exec only the code cells of notebook ``name`` that define a class or a function."""
    path = NOTEBOOKS / name
    assert path.exists(), f"notebook {name} is missing: the definitions it should hold cannot be checked"
    nb = nbformat.read(path, as_version=4)
    # the modules the chapters import in cells without a definition (such cells are not run here)
    namespace = {"torch": torch, "nn": nn, "F": F, "math": math, "copy": copy, "time": time,
                 "__name__": "notebook"}
    for cell in nb.cells:
        source = cell.source
        if cell.cell_type == "code" and any(
            line.startswith(("class ", "def ")) for line in source.splitlines()
        ):
            # keep the cell's imports and definitions; skip demo code that needs the notebook's state
            tree = ast.parse(source)
            tree.body = [node for node in tree.body if isinstance(node, KEEP) or _is_constant(node)]
            exec(compile(tree, f"{name}:cell", "exec"), namespace)
    return namespace


def _is_constant(node: ast.AST) -> bool:
    """An assignment of a literal (a table such as ``LORA_TARGETS``), which definitions may read."""
    if not isinstance(node, ast.Assign):
        return False
    try:
        ast.literal_eval(node.value)
    except ValueError:
        return False
    return True


def _config(vocab: int = 100) -> BertConfig:
    return BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=32)  # fmt: skip


@pytest.fixture(scope="module")
def nb01():
    return _definitions("01_self_attention.ipynb")


@pytest.fixture(scope="module")
def nb02():
    return _definitions("02_multihead_attention_and_ffn.ipynb")


@pytest.fixture(scope="module")
def nb03():
    return _definitions("03_pretraining.ipynb")


@pytest.fixture(scope="module")
def nb04():
    return _definitions("04_finetuning.ipynb")


def test_a_missing_notebook_fails_not_skips():
    with pytest.raises(AssertionError, match="notebook 99_missing.ipynb is missing"):
        _definitions("99_missing.ipynb")


def test_notebook_04_loop_trains_exactly_like_train(nb04):
    """Chapter 4's hand-written loop and `train()`: the same loss every step (same batches, dropout off)."""
    task = get_task("sst2")
    tok, bb = load_backbone("tiny-random-bert", verbose=False)
    features = task.tokenize(load_samples("sst2")["train"].select(range(64)), tok, 64)
    torch.manual_seed(0)
    start = nb04["without_dropout"](prepare_model(task.build_model(bb), "full"))
    ours = nb04["fine_tune"](copy.deepcopy(start), features, task.collator(tok), epochs=2, batch_size=16,
                             lr=1e-3, head_lr=1e-2, warmup_ratio=0.25, seed=3)
    config = TrainConfig(lr=1e-3, head_lr=1e-2, epochs=2, batch_size=16, warmup_ratio=0.25,
                         group_by_length=False, mixed_precision="no", log_every=1, progress=False, seed=3)
    theirs = [h["loss"] for h in train(copy.deepcopy(start), task, features, None, None, tok, config).history]
    assert len(ours) == len(theirs) == 8
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) <= 1e-6
    assert ours[-1] != ours[0]  # it trained


def test_notebook_04_schedule_equals_transformers(nb04):
    from transformers import get_linear_schedule_with_warmup

    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = get_linear_schedule_with_warmup(opt, num_warmup_steps=3, num_training_steps=20)
    for t in range(20):
        assert nb04["linear_warmup_decay"](t, 3, 20) == pytest.approx(reference.get_last_lr()[0], abs=1e-12)
        opt.step()
        reference.step()


def test_notebook_01_attention_equals_package(nb01):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 8, generator=g) for _ in range(3))
    mask = torch.rand(2, 1, 1, 6, generator=g) > 0.3
    mask[..., 0] = True
    for m in (None, mask):
        ours = nb01["scaled_dot_product_attention"](q, k, v, m, return_weights=True)
        ref = transformer.scaled_dot_product_attention(q, k, v, m, return_weights=True)
        assert all(torch.equal(a, b) for a, b in zip(ours, ref, strict=True))


def _same_outputs(nb_module, pkg_module, *inputs):
    nb_module.load_state_dict(pkg_module.state_dict(), strict=True)  # same names, same shapes
    nb_module.eval(), pkg_module.eval()
    with torch.no_grad():
        return (nb_module(*inputs) - pkg_module(*inputs)).abs().max().item()


def test_notebook_02_multihead_attention_and_ffn_equal_package(nb02):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 32)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()[:, None, None, :]
    pkg = transformer.MultiHeadAttention(32, 4)
    assert _same_outputs(nb02["MultiHeadAttention"](32, 4), pkg, x, mask) <= 1e-6
    for act in ("gelu", "relu"):
        assert (
            _same_outputs(nb02["FeedForward"](32, 64, act), transformer.FeedForward(32, 64, act), x) <= 1e-6
        )
    layer = transformer.EncoderLayer(32, 4, 64)
    assert _same_outputs(nb02["EncoderLayer"](32, 4, 64), layer, x, mask) <= 1e-5


def test_notebook_02_encoder_and_weight_loading_equal_package(nb02):
    from transformers import BertModel

    torch.manual_seed(0)
    config = _config()
    ids = torch.randint(0, 100, (2, 7))
    attn = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    types = torch.tensor([[0] * 4 + [1] * 3] * 2)
    pkg = transformer.BertEncoder.from_config(config)
    assert _same_outputs(nb02["BertEncoder"](config), pkg, ids, attn, types) <= 1e-5
    hf = BertModel(config).eval()
    ours = nb02["load_hf_weights"](nb02["BertEncoder"](config), hf.state_dict())
    ref = transformer.BertEncoder.from_hf(hf)
    assert _same_outputs(ours, ref, ids, attn, types) <= 1e-5


def test_notebook_03_masking_loss_and_head_equal_package(nb03):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 500, (8, 20), generator=g)
    ids[:, 0], ids[4:, 15:] = 2, 0
    specials = [0, 1, 2, 3, 4]
    ours = nb03["mask_tokens"](ids, 4, 500, specials, generator=torch.Generator().manual_seed(1))
    ref = mlm.mask_tokens(ids, 4, 500, specials, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(ours, ref, strict=True))
    logits = torch.randn(8, 20, 500, generator=g)
    assert torch.allclose(nb03["mlm_loss"](logits, ref[1]), mlm.mlm_loss(logits, ref[1]))
    torch.manual_seed(0)
    config = _config(500)
    embeddings = nn.Embedding(500, 32)
    nb_head, pkg_head = nb03["MLMHead"](config, embeddings), mlm.MLMHead(config, embeddings)
    assert nb_head.decoder.weight is embeddings.weight
    assert _same_outputs(nb_head, pkg_head, torch.randn(3, 32)) <= 1e-6


@pytest.fixture(scope="module")
def nb05():
    return _definitions("05_task_adapters.ipynb")


@pytest.fixture(scope="module")
def nb06():
    return _definitions("06_delta_tuning.ipynb")


def _tiny_bert():
    _, bb = load_backbone("tiny-random-bert", verbose=False)
    return bb.eval()


def _batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _same_with_random_deltas(ours: nn.Module, lib: nn.Module) -> None:
    """The same trainable tensors by name; given the same random values, the same outputs."""
    mine, theirs = dict(ours.named_parameters()), dict(lib.named_parameters())
    trainable = {n for n, p in mine.items() if p.requires_grad}
    assert trainable == {n for n, p in theirs.items() if p.requires_grad}
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name in sorted(trainable):
            mine[name].add_(0.1 * torch.randn(mine[name].shape, generator=g))
            theirs[name].copy_(mine[name])
        a, b = ours(**_batch()).last_hidden_state, lib(**_batch()).last_hidden_state
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert not torch.allclose(a, _tiny_bert()(**_batch()).last_hidden_state, atol=1e-4)  # the deltas act


def test_notebook_05_outline_model_equals_package(nb05):
    from hft_lessons import outline

    torch.manual_seed(0)
    ours = nb05["OutlineAdapterLayerModel"](_tiny_bert(), adapter_size=8).eval()
    package = outline.OutlineAdapterLayerModel(_tiny_bert(), adapter_size=8).eval()
    package.load_state_dict(ours.state_dict(), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(ours(**_batch()), package(**_batch()), rtol=0, atol=1e-6)


@pytest.mark.parametrize("variant", ["houlsby", "pfeiffer"])
def test_notebook_05_bottleneck_adapters_equal_package(nb05, variant):
    from hft_lessons import delta

    ours = nb05["add_adapters"](_tiny_bert(), 4, houlsby=variant == "houlsby")
    lib = delta.apply(_tiny_bert(), delta.AdapterConfig(variant=variant, bottleneck_size=4))
    _same_with_random_deltas(ours, lib)


def test_notebook_06_lora_bitfit_and_ia3_equal_package(nb06):
    from hft_lessons import delta

    torch.manual_seed(0)
    lora = delta.LoraConfig(r=4, alpha=8, target_modules=tuple(nb06["LORA_TARGETS"]))
    _same_with_random_deltas(nb06["add_lora"](_tiny_bert()), delta.apply(_tiny_bert(), lora))
    _same_with_random_deltas(nb06["add_ia3"](_tiny_bert()), delta.apply(_tiny_bert(), delta.IA3Config()))
    _same_with_random_deltas(nb06["bitfit"](_tiny_bert()), delta.apply(_tiny_bert(), delta.BitFitConfig()))
