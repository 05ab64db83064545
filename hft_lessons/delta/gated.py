"""UniPELT (Mao et al., 2022): LoRA, adapters and prefix tuning in every layer, each behind a learned gate.

Every sub-module's contribution is multiplied by its own gate ``g = sigmoid(W x + b)`` (W: hidden → 1),
computed from that sub-module's input, as in the paper:

* LoRA on a projection: ``y = W0 x + g_L(x) · (alpha/r) B A x``, g_L per token from the projection's input;
* an adapter after a projection: ``h + g_A(h) · up(act(down(h)))``, g_A per token from the adapter's input;
* prefix tuning:  the layer's prefix keys and values are multiplied by g_P, the mean over tokens (padding
  included) of ``sigmoid(W_P h_in)``, h_in the attention's input — one gate value per example and layer.

The LoRA and adapter parts reuse :class:`LoraLinear`, :class:`Bottleneck` and :class:`PrefixEncoder`; only the
gate multiplication is new. Identity at init: the LoRA and adapter parts start as the identity (B = 0 and
up = 0, whatever the gate), so with ``components=("lora", "adapter")`` the model starts exactly unchanged; the
prefix part, like plain prefix tuning, adds attention slots and so changes outputs from the start.
``gate_values(model)`` returns the mean gate of every layer and sub-module on the last forward pass and
``plot_gates`` draws them as a heatmap. The gated model is not mergeable (gates depend on the input), and it
brings its own prefix encoder, so it cannot be combined with the plain ``prefix`` method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from .adapter import AdapterConfig, AdapterLinear
from .arch import Architecture, as_roles, check_roles, detect, layers, split_task_model
from .base import (
    DeltaConfig,
    DeltaModule,
    LinearWrapper,
    innermost_linear,
    register,
    wrap_role,
)
from .lora import LoraConfig, LoraLinear
from .prefix import (
    PREFIX_ATTRIBUTE,
    LayerPrefix,
    PrefixConfig,
    PrefixEncoder,
    cache_argument,
    prefix_cache_hook,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "UniPELTConfig",
    "GATED_COMPONENTS",
    "Gate",
    "GatedLoraLinear",
    "GatedAdapterLinear",
    "GatedPrefixEncoder",
    "PrefixGate",
    "gate_values",
    "plot_gates",
]

GATED_COMPONENTS = ("lora", "adapter", "prefix")
PREFIX_GATE_ATTRIBUTE = "unipelt_prefix_gate"  # where each layer's prefix gate lives on its attention module


@register
@dataclass
class UniPELTConfig(DeltaConfig):
    """Gated LoRA (on ``lora_modules``), adapters (after ``adapter_modules``) and prefixes in every layer."""

    components: tuple[str, ...] = GATED_COMPONENTS
    r: int = 8
    alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_modules: tuple[str, ...] = ("query", "value")
    adapter_modules: tuple[str, ...] = ("ffn_down",)  # an adapter after each of these projections
    reduction_factor: float = 16.0
    bottleneck_size: int | None = None  # when given, overrides reduction_factor
    activation: str = "relu"
    num_virtual_tokens: int = 10
    prefix_projection: bool = False
    encoder_hidden_size: int | None = None

    method: ClassVar[str] = "unipelt"

    def __post_init__(self) -> None:
        self.components = as_roles(self.components)
        self.lora_modules = as_roles(self.lora_modules)
        self.adapter_modules = as_roles(self.adapter_modules)
        if not self.components or any(c not in GATED_COMPONENTS for c in self.components):
            raise ValueError(
                f"UniPELTConfig.components must be a non-empty subset of {', '.join(GATED_COMPONENTS)}, "
                f"got {list(self.components)}"
            )
        _ = (self.lora, self.adapter, self.prefix)  # building each part checks it with its config's rules

    @property
    def lora(self) -> LoraConfig:
        """The LoRA part as a :class:`LoraConfig` (building it validates the LoRA fields)."""
        return LoraConfig(r=self.r, alpha=self.alpha, dropout=self.lora_dropout,
                          target_modules=self.lora_modules)

    @property
    def adapter(self) -> AdapterConfig:
        """The adapter part as an :class:`AdapterConfig` (building it validates the adapter fields)."""
        return AdapterConfig(reduction_factor=self.reduction_factor, bottleneck_size=self.bottleneck_size,
                             activation=self.activation)

    @property
    def prefix(self) -> PrefixConfig:
        """The prefix part as a :class:`PrefixConfig` (building it validates the prefix fields)."""
        return PrefixConfig(num_virtual_tokens=self.num_virtual_tokens,
                            prefix_projection=self.prefix_projection,
                            encoder_hidden_size=self.encoder_hidden_size)

    def check(self, backbone: nn.Module, arch: Architecture) -> None:
        """Roles must exist; the prefix part needs a backbone without another prefix encoder."""
        if "lora" in self.components:
            check_roles("UniPELTConfig.lora_modules", self.lora_modules, arch)
        if "adapter" in self.components:
            check_roles("UniPELTConfig.adapter_modules", self.adapter_modules, arch)
        if "prefix" in self.components and hasattr(backbone, PREFIX_ATTRIBUTE):
            raise ValueError(
                "unipelt brings its own prefix tuning and cannot be combined with the 'prefix' method; "
                "drop 'prefix' or use UniPELTConfig(components=('lora', 'adapter'))"
            )

    def bottleneck_for(self, hidden_size: int) -> int:
        """The adapter bottleneck width for a model of ``hidden_size``."""
        return self.adapter.size_for(hidden_size)

    def attach(self, backbone: nn.Module, arch: Architecture) -> None:
        """Wrap the LoRA and adapter projections in gated wrappers; add gated prefixes to every attention."""
        if "lora" in self.components:
            for role in self.lora_modules:
                wrap_role(backbone, arch, role,
                          lambda m: GatedLoraLinear(m, self.r, self.alpha, self.lora_dropout))
        if "adapter" in self.components:
            for role in self.adapter_modules:
                wrap_role(backbone, arch, role, lambda m: GatedAdapterLinear(
                    m, self.bottleneck_for(innermost_linear(m).out_features), self.activation))
        if "prefix" in self.components:
            self._attach_prefix(backbone, arch)

    def _attach_prefix(self, backbone: nn.Module, arch: Architecture) -> None:
        stack = layers(backbone, arch)
        attention = stack[0].get_submodule(arch.attention_path)
        query = innermost_linear(attention.query)
        heads = getattr(attention, "num_heads", None) or attention.num_attention_heads
        factory = {"device": query.weight.device, "dtype": query.weight.dtype}
        encoder = GatedPrefixEncoder(self.num_virtual_tokens, len(stack), heads, query.in_features,
                                     self.prefix_projection, self.encoder_hidden_size).to(**factory)
        setattr(backbone, PREFIX_ATTRIBUTE, encoder)
        if arch.prefix_via == "cache":
            backbone.register_forward_pre_hook(prefix_cache_hook, with_kwargs=True)
        for i, layer in enumerate(stack):
            module = layer.get_submodule(arch.attention_path)
            gate = PrefixGate(query.in_features, i, **factory)
            setattr(module, PREFIX_GATE_ATTRIBUTE, gate)
            module.register_forward_pre_hook(_prefix_gate_hook, with_kwargs=True)
            if arch.prefix_via == "attention":
                module.prefix = GatedLayerPrefix(encoder, i, gate)


class Gate(nn.Module):
    """``sigmoid(W x + b)`` ∈ (0, 1), one value per token; remembers its mean over the last forward pass."""

    def __init__(self, hidden_size: int, **factory: Any):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1, **factory)
        self.last: torch.Tensor | None = None  # mean gate of the last forward pass (detached, not saved)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate values [..., 1] for inputs [..., hidden]."""
        g = torch.sigmoid(self.linear(x))
        self.last = g.detach().float().mean()
        return g


class GatedLoraLinear(LoraLinear):
    """``base(x) + g(x) · lora_B(lora_A(x)) · alpha/r``: LoRA with its update scaled by a per-token gate."""

    method: ClassVar[str] = "unipelt"
    mergeable: ClassVar[bool] = False  # the gate depends on the input, so ΔW is not a constant

    def __init__(self, base: nn.Module, r: int, alpha: float, dropout: float = 0.0):
        super().__init__(base, r, alpha, dropout)
        self.gate = Gate(self.in_features, **self.factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen projection plus the gated low-rank update."""
        return self.base(x) + self.gate(x) * self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling


class GatedAdapterLinear(AdapterLinear):
    """``h + g(h) · up(act(down(h)))`` with ``h = base(x)``: an adapter scaled by a per-token gate."""

    method: ClassVar[str] = "unipelt"

    def __init__(self, base: nn.Module, bottleneck_size: int, activation: str = "relu"):
        super().__init__(base, bottleneck_size, activation)
        self.gate = Gate(self.out_features, **self.factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project, then add the gated adapter branch."""
        h, a = self.base(x), self.adapter
        return h + self.gate(h) * a.up(a.act(a.down(h)))


class GatedPrefixEncoder(PrefixEncoder):
    """The shared prefix encoder of a UniPELT model (a PrefixEncoder counted as ``unipelt``'s)."""

    method: ClassVar[str] = "unipelt"


class PrefixGate(DeltaModule):
    """Layer ``index``'s prefix gate: the mean over tokens of ``sigmoid(W h)``, one value per example."""

    method: ClassVar[str] = "unipelt"

    def __init__(self, hidden_size: int, index: int, **factory: Any):
        super().__init__()
        self.gate = Gate(hidden_size, **factory)
        self.index = index
        self.current: torch.Tensor | None = None  # set before an attention call, taken by GatedLayerPrefix

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Gate values [batch, 1, 1, 1] (broadcast over heads, positions, head_dim) from hidden states."""
        return self.gate(hidden).mean(dim=1).view(-1, 1, 1, 1)


class GatedLayerPrefix(LayerPrefix):
    """Layer ``index``'s gated view of the shared prefix encoder (the course encoder's prefix protocol)."""

    def __init__(self, encoder: PrefixEncoder, index: int, gate: PrefixGate):
        super().__init__(encoder, index)
        object.__setattr__(self, "gate", gate)  # not a submodule: it lives on the attention module

    def forward(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(g·k_p, g·v_p)``, each [batch, heads, P, head_dim], with the gate of the current call."""
        k, v = super().forward(batch_size)
        g, self.gate.current = self.gate.current, None  # taken, so no graph stays behind on the module
        if g is None:
            raise ValueError("a gated prefix was called without its gate; call the attention module itself")
        g = g.to(k.dtype)
        return g * k, g * v


def _prefix_gate_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Before an attention call: compute its prefix gate from the input; scale a Hugging Face prefix cache."""
    hidden = args[0] if args else kwargs["hidden_states"]
    gate: PrefixGate = getattr(module, PREFIX_GATE_ATTRIBUTE)
    g = gate(hidden)
    cache = kwargs.get(cache_argument())
    if cache is None:  # the course encoder: GatedLayerPrefix takes gate.current
        gate.current = g
        return None
    cache = getattr(cache, "self_attention_cache", cache)
    layer = cache.layers[gate.index]
    layer.keys, layer.values = layer.keys * g.to(layer.keys.dtype), layer.values * g.to(layer.values.dtype)
    return None


def _gated_modules(backbone: nn.Module, arch: Architecture) -> list[dict[str, Gate]]:
    """Per layer, the UniPELT gates by sub-module name (``lora.query``, ``adapter.ffn_down``, ``prefix``)."""
    found: list[dict[str, Gate]] = []
    for layer in layers(backbone, arch):
        gates: dict[str, Gate] = {}
        for kind, cls in (("lora", GatedLoraLinear), ("adapter", GatedAdapterLinear)):
            for role, path in arch.roles.items():
                module = layer.get_submodule(path)
                while isinstance(module, LinearWrapper):
                    if isinstance(module, cls):
                        gates[f"{kind}.{role}"] = module.gate
                    module = module.base
        prefix = getattr(layer.get_submodule(arch.attention_path), PREFIX_GATE_ATTRIBUTE, None)
        if isinstance(prefix, PrefixGate):
            gates["prefix"] = prefix.gate
        found.append(gates)
    return found


def gate_values(model: nn.Module) -> dict[str, list[float]]:
    """Mean gate activation on the last forward pass: ``{sub-module: [layer 0, layer 1, ...]}``."""
    backbone, _ = split_task_model(model)
    per_layer = _gated_modules(backbone, detect(backbone))
    if not any(per_layer):
        raise ValueError("no unipelt gates in this model; apply delta.UniPELTConfig() first")
    values: dict[str, list[float]] = {name: [] for name in per_layer[0]}
    for gates in per_layer:
        for name, gate in gates.items():
            if gate.last is None:
                raise ValueError("the gates have not run yet; call the model on a batch first")
            values[name].append(float(gate.last))
    return values


def plot_gates(values: nn.Module | Mapping[str, Sequence[float]], title: str = "UniPELT gates") -> Figure:
    """A heatmap of mean gates, layers (rows) × sub-modules (columns), from a model or ``gate_values``."""
    import matplotlib.pyplot as plt  # imported here: only plotting needs it, and it loads slowly

    table = gate_values(values) if isinstance(values, nn.Module) else dict(values)
    names = list(table)
    n_layers = len(next(iter(table.values()))) if table else 0
    grid = [[table[name][i] for name in names] for i in range(n_layers)]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 0.45 * n_layers + 1.5))
    plt.close(fig)  # returned, not auto-shown: a notebook displays it once, as the cell's value
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            colour = "white" if v < 0.6 else "black"
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color=colour, fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(n_layers), [f"layer {i}" for i in range(n_layers)])
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="mean gate")
    fig.tight_layout()
    return fig
