"""Where each BERT-family architecture keeps its projections, so every method is written once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from torch import nn

__all__ = [
    "Architecture",
    "ARCHITECTURES",
    "ROLES",
    "detect",
    "split_task_model",
    "layers",
    "slots",
    "as_roles",
    "check_roles",
]

ROLES = ("query", "key", "value", "attention_output", "ffn_up", "ffn_down")


@dataclass(frozen=True)
class Architecture:
    """An encoder family: its layer list, each role's path inside a layer, its prefix hook and its
    embeddings."""

    name: str
    layers_path: str
    roles: Mapping[str, str]
    attention_path: str
    prefix_via: str  # "cache": a DynamicCache passed to forward (Hugging Face); "attention": attention.prefix
    embeddings_path: str = "embeddings"  # the token, position and segment embeddings (below layer 0)


HF_BERT = Architecture(
    name="transformers.BertModel",
    layers_path="encoder.layer",
    roles={
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attention_output": "attention.output.dense",
        "ffn_up": "intermediate.dense",
        "ffn_down": "output.dense",
    },
    attention_path="attention.self",
    prefix_via="cache",
)

HFT_BERT = Architecture(
    name="hft_lessons.transformer.BertEncoder",
    layers_path="layers",
    roles={
        "query": "attention.query",
        "key": "attention.key",
        "value": "attention.value",
        "attention_output": "attention.out",
        "ffn_up": "ffn.up",
        "ffn_down": "ffn.down",
    },
    attention_path="attention",
    prefix_via="attention",
)

ARCHITECTURES = (HF_BERT, HFT_BERT)


def split_task_model(model: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """``(backbone, head)`` of a task model (attributes ``.backbone`` and ``.head``), else ``(model,
    None)``."""
    backbone, head = getattr(model, "backbone", None), getattr(model, "head", None)
    if isinstance(backbone, nn.Module) and isinstance(head, nn.Module):
        return backbone, head
    return model, None


def _resolves(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
    except AttributeError:
        return False
    return True


def detect(backbone: nn.Module) -> Architecture:
    """The architecture whose layer list and role paths all exist in ``backbone``."""
    for arch in ARCHITECTURES:
        if _resolves(backbone, arch.layers_path):
            stack = backbone.get_submodule(arch.layers_path)
            if len(stack) and all(_resolves(stack[0], p) for p in arch.roles.values()):
                return arch
    names = ", ".join(a.name for a in ARCHITECTURES)
    raise ValueError(f"unsupported model {type(backbone).__name__}; delta methods support: {names}")


def layers(backbone: nn.Module, arch: Architecture) -> list[nn.Module]:
    """The encoder's layers, first to last."""
    return list(backbone.get_submodule(arch.layers_path))


def slots(backbone: nn.Module, arch: Architecture, role: str) -> Iterator[tuple[nn.Module, str]]:
    """``(parent, attribute)`` of ``role`` in every layer: ``getattr(parent, attribute)`` is the module
    there."""
    parent_path, _, attribute = arch.roles[role].rpartition(".")
    for layer in layers(backbone, arch):
        yield layer.get_submodule(parent_path), attribute


def as_roles(value: str | Sequence[str]) -> tuple[str, ...]:
    """A role name or a sequence of them, as a tuple (configs accept ``"query"`` or ``("query",
    "value")``)."""
    return (value,) if isinstance(value, str) else tuple(value)


def check_roles(owner: str, roles: Sequence[str], arch: Architecture) -> None:
    """Raise a one-line ValueError when ``roles`` is empty or names a module the architecture lacks."""
    if not roles:
        raise ValueError(f"{owner} is empty; choose from: {', '.join(arch.roles)}")
    for role in roles:
        if role not in arch.roles:
            raise ValueError(f"{owner}: no module {role!r} in a {arch.name}; it has: {', '.join(arch.roles)}")
