"""What every delta method shares: the config base class and registry, and the wrapper module base class."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from torch import nn

from .arch import Architecture, check_roles, slots

__all__ = [
    "DeltaConfig",
    "DeltaModule",
    "LinearWrapper",
    "METHODS",
    "register",
    "make_config",
    "config_from_dict",
    "innermost_linear",
    "wrap_role",
    "check_positive",
]

METHODS: dict[str, type[DeltaConfig]] = {}


@dataclass
class DeltaConfig:
    """Base class of the per-method configs; ``method`` names it in the registry and in saved files."""

    method: ClassVar[str] = ""
    mergeable: ClassVar[bool] = False

    def check(self, backbone: nn.Module, arch: Architecture) -> None:
        """Raise a one-line ValueError if this config cannot be applied (e.g. a target module that is
        missing)."""
        targets = getattr(self, "target_modules", None)
        if targets is not None:
            check_roles(f"{type(self).__name__}.target_modules", targets, arch)

    def attach(self, backbone: nn.Module, arch: Architecture) -> None:
        """Insert this method's modules into ``backbone`` (checked first with :meth:`check`)."""
        raise NotImplementedError

    def parameters_in(self, backbone: nn.Module) -> dict[str, nn.Parameter]:
        """This method's trainable parameters in ``backbone``, by name relative to it."""
        return {
            f"{path}.{name}": p
            for path, module in backbone.named_modules()
            if isinstance(module, DeltaModule) and module.method == self.method
            for name, p in module.own_parameters()
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"method": ..., **fields}``."""
        return {"method": self.method, **asdict(self)}


def check_positive(owner: str, value: object, integer: bool = True) -> None:
    """Raise a one-line ValueError unless ``value`` is a positive integer (or, with ``integer=False``,
    number)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        raise ValueError(f"{owner} must be a positive {'integer' if integer else 'number'}, got {value!r}")


def register(cls: type[DeltaConfig]) -> type[DeltaConfig]:
    """Class decorator: make a config class known by its ``method`` name."""
    METHODS[cls.method] = cls
    return cls


def _config_class(method: str) -> type[DeltaConfig]:
    if method not in METHODS:
        raise ValueError(f"unknown delta method {method!r}; allowed: {', '.join(METHODS)}")
    return METHODS[method]


def make_config(method: str, **options: Any) -> DeltaConfig:
    """The config of the method named ``method`` (lora, adapter, bitfit, prefix, ia3) with ``options``."""
    return _config_class(method)(**options)


def config_from_dict(data: dict[str, Any]) -> DeltaConfig:
    """Rebuild a config from :meth:`DeltaConfig.to_dict` output."""
    data = dict(data)
    cls = _config_class(str(data.pop("method", None)))
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )
    return cls(**data)


class DeltaModule(nn.Module):
    """A module a delta method added; its own parameters (never those under ``base``) are the trainable
    ones."""

    method: ClassVar[str] = ""

    def own_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """``(name, parameter)`` pairs that belong to the method, not to the wrapped ``base`` module."""
        return ((n, p) for n, p in self.named_parameters() if not n.startswith("base."))


def innermost_linear(module: nn.Module) -> nn.Linear:
    """The nn.Linear at the bottom of a chain of wrappers."""
    while isinstance(module, LinearWrapper):
        module = module.base
    if not isinstance(module, nn.Linear):
        raise ValueError(f"delta methods wrap nn.Linear projections, found {type(module).__name__}")
    return module


class LinearWrapper(DeltaModule):
    """Wraps a projection (an nn.Linear, or another wrapper around one); ``mergeable`` ones fold into the
    weight."""

    mergeable: ClassVar[bool] = False

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base
        linear = innermost_linear(base)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.factory = {"device": linear.weight.device, "dtype": linear.weight.dtype}

    def merge_into(self, linear: nn.Linear) -> None:
        """Fold this delta into ``linear``'s weight and bias, in place."""
        raise NotImplementedError

    def unmerge_from(self, linear: nn.Linear) -> None:
        """Undo :meth:`merge_into` on ``linear``, in place."""
        raise NotImplementedError


def wrap_role(
    backbone: nn.Module, arch: Architecture, role: str, make: Callable[[nn.Module], nn.Module]
) -> None:
    """Replace the module at ``role`` in every layer by ``make(module)``."""
    for parent, attribute in slots(backbone, arch, role):
        setattr(parent, attribute, make(getattr(parent, attribute)))
