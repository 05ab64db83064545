"""Attach delta methods to a model, freeze the rest, count parameters, merge and unmerge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from .arch import detect, slots, split_task_model
from .base import METHODS, DeltaConfig, LinearWrapper, make_config

__all__ = [
    "apply",
    "applied_configs",
    "delta_parameters",
    "count_parameters",
    "trainable_percent",
    "is_merged",
    "merge",
    "unmerge",
]

_STATE = "_hft_delta"


@dataclass
class _DeltaState:
    """What was applied to a backbone, and which wrappers a merge took out of the forward path."""

    configs: list[DeltaConfig] = field(default_factory=list)
    merged: list[tuple[nn.Module, str, LinearWrapper]] = field(default_factory=list)


def _state(backbone: nn.Module) -> _DeltaState:
    if not isinstance(getattr(backbone, _STATE, None), _DeltaState):
        object.__setattr__(backbone, _STATE, _DeltaState())
    return getattr(backbone, _STATE)


def _as_configs(config: DeltaConfig | str | Sequence[DeltaConfig | str]) -> list[DeltaConfig]:
    items = [config] if isinstance(config, (DeltaConfig, str)) else list(config)
    configs = [make_config(c) if isinstance(c, str) else c for c in items]
    for c in configs:
        if not isinstance(c, DeltaConfig):
            raise ValueError(f"not a delta config: {c!r}; allowed methods: {', '.join(METHODS)}")
    return configs


def check_not_merged(backbone: nn.Module, action: str) -> None:
    if _state(backbone).merged:
        raise ValueError(f"cannot {action} a merged model; call delta.unmerge(model) first")


def apply(model: nn.Module, config: DeltaConfig | str | Sequence[DeltaConfig | str]) -> nn.Module:
    """Attach one or several (different) delta methods; freeze all but their parameters and the head."""
    backbone, head = split_task_model(model)
    arch = detect(backbone)
    state = _state(backbone)
    check_not_merged(backbone, "apply a method to")
    configs = _as_configs(config)
    seen = [c.method for c in state.configs]
    for c in configs:
        if c.method in seen:
            raise ValueError(
                f"method {c.method!r} is applied twice; each method can be applied once per model "
                f"(already applied: {', '.join(x.method for x in state.configs) or 'none'})"
            )
        seen.append(c.method)
        c.check(backbone, arch)
    for c in configs:
        c.attach(backbone, arch)
        state.configs.append(c)
    backbone.requires_grad_(False)
    for p in delta_parameters(backbone).values():
        p.requires_grad_(True)
    if head is not None:
        head.requires_grad_(True)
    return model


def applied_configs(model: nn.Module) -> list[DeltaConfig]:
    """The configs applied to ``model`` (or to its backbone), in order."""
    return list(_state(split_task_model(model)[0]).configs)


def delta_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every applied method's trainable parameters, named as in ``model.named_parameters()`` (no head)."""
    backbone, head = split_task_model(model)
    prefix = "backbone." if head is not None else ""
    found: dict[str, nn.Parameter] = {}
    for c in _state(backbone).configs:
        found.update({prefix + n: p for n, p in c.parameters_in(backbone).items()})
    return found


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (shared parameters counted once)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def trainable_percent(model: nn.Module) -> float:
    """The share of parameters that train, in percent."""
    trainable, total = count_parameters(model)
    return 100.0 * trainable / total if total else 0.0


def is_merged(model: nn.Module) -> bool:
    """True between :func:`merge` and :func:`unmerge`."""
    return bool(_state(split_task_model(model)[0]).merged)


def _merge_slot(
    parent: nn.Module, attribute: str, merged: list[tuple[nn.Module, str, LinearWrapper]]
) -> None:
    """Merge mergeable wrappers at ``parent.attribute``, innermost first, out of the forward path."""
    module = getattr(parent, attribute)
    if not isinstance(module, LinearWrapper):
        return
    _merge_slot(module, "base", merged)
    if module.mergeable and type(module.base) is nn.Linear:
        module.merge_into(module.base)
        setattr(parent, attribute, module.base)
        merged.append((parent, attribute, module))


def merge(model: nn.Module) -> nn.Module:
    """Fold LoRA and (IA)³ into the frozen weights: same outputs, plain nn.Linear in the forward path."""
    backbone, _ = split_task_model(model)
    state = _state(backbone)
    check_not_merged(backbone, "merge")
    mergeable = [name for name, cls in METHODS.items() if cls.mergeable]
    if not any(c.mergeable for c in state.configs):
        applied = ", ".join(c.method for c in state.configs) or "none"
        raise ValueError(
            f"nothing to merge: applied methods ({applied}) cannot be merged; "
            f"mergeable: {', '.join(mergeable)}"
        )
    arch = detect(backbone)
    for role in arch.roles:
        for parent, attribute in slots(backbone, arch, role):
            _merge_slot(parent, attribute, state.merged)
    return model


def unmerge(model: nn.Module) -> nn.Module:
    """Undo :func:`merge`: subtract the deltas again and put the wrappers back."""
    backbone, _ = split_task_model(model)
    state = _state(backbone)
    if not state.merged:
        raise ValueError("the model is not merged; call delta.merge(model) first")
    for parent, attribute, wrapper in reversed(state.merged):
        wrapper.unmerge_from(getattr(parent, attribute))
        setattr(parent, attribute, wrapper)
    state.merged.clear()
    return model
