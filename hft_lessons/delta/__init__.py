"""Delta tuning, written once for every BERT-family encoder.

The methods: LoRA, adapters, BitFit, prefix tuning, (IA)³, UniPELT.

``delta.apply(model, config)`` attaches a method (or a list of different ones) to a
``transformers.BertModel``, an ``hft_lessons.transformer.BertEncoder``, or a task model with ``.backbone`` and
``.head``; only the delta parameters and the head train. ``merge``/``unmerge`` fold LoRA and (IA)³ into the
weights; ``save``/``load`` store only what was trained.
"""

from .adapter import AdapterConfig, AdapterLinear, Bottleneck
from .arch import ARCHITECTURES, ROLES, Architecture, detect, split_task_model
from .base import METHODS, DeltaConfig, DeltaModule, LinearWrapper, config_from_dict, make_config
from .bitfit import BitFitConfig
from .core import (
    applied_configs,
    apply,
    count_parameters,
    delta_parameters,
    is_merged,
    merge,
    trainable_percent,
    unmerge,
)
from .gated import (
    GatedAdapterLinear,
    GatedLoraLinear,
    PrefixGate,
    UniPELTConfig,
    gate_values,
    plot_gates,
)
from .ia3 import IA3Config, IA3Linear
from .lora import LoraConfig, LoraLinear
from .prefix import LayerPrefix, PrefixConfig, PrefixEncoder
from .storage import CONFIG_FILE, WEIGHTS_FILE, load, save

__all__ = [
    "LoraConfig",
    "AdapterConfig",
    "BitFitConfig",
    "PrefixConfig",
    "IA3Config",
    "UniPELTConfig",
    "gate_values",
    "plot_gates",
    "GatedLoraLinear",
    "GatedAdapterLinear",
    "PrefixGate",
    "DeltaConfig",
    "METHODS",
    "make_config",
    "config_from_dict",
    "apply",
    "applied_configs",
    "delta_parameters",
    "count_parameters",
    "trainable_percent",
    "merge",
    "unmerge",
    "is_merged",
    "save",
    "load",
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "ROLES",
    "ARCHITECTURES",
    "Architecture",
    "detect",
    "split_task_model",
    "DeltaModule",
    "LinearWrapper",
    "LoraLinear",
    "IA3Linear",
    "AdapterLinear",
    "Bottleneck",
    "PrefixEncoder",
    "LayerPrefix",
]
