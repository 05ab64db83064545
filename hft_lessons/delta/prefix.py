"""Prefix tuning: P trainable key/value vectors per layer, prepended to every attention's keys and values."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import BertModel, DynamicCache

from .arch import Architecture, layers
from .base import DeltaConfig, DeltaModule, check_positive, innermost_linear, register

__all__ = [
    "PrefixConfig",
    "PrefixEncoder",
    "LayerPrefix",
    "PREFIX_ATTRIBUTE",
    "cache_argument",
    "prefix_cache_hook",
]

PREFIX_ATTRIBUTE = "prefix_encoder"  # where the shared PrefixEncoder lives on the backbone
_BERT_MODEL_ARGS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")


@register
@dataclass
class PrefixConfig(DeltaConfig):
    """``num_virtual_tokens`` prefixes per layer; ``prefix_projection`` adds peft's
    Embedding→Linear→Tanh→Linear."""

    num_virtual_tokens: int = 20
    prefix_projection: bool = False
    encoder_hidden_size: int | None = None  # width of the projection MLP; default: the model's hidden size

    method: ClassVar[str] = "prefix"

    def __post_init__(self) -> None:
        check_positive("PrefixConfig.num_virtual_tokens", self.num_virtual_tokens)
        if self.encoder_hidden_size is not None:
            check_positive("PrefixConfig.encoder_hidden_size", self.encoder_hidden_size)

    def attach(self, backbone: nn.Module, arch: Architecture) -> None:
        """Add one shared :class:`PrefixEncoder` and route its keys/values into every layer's attention."""
        stack = layers(backbone, arch)
        attention = stack[0].get_submodule(arch.attention_path)
        query = innermost_linear(attention.query)
        heads = getattr(attention, "num_heads", None) or attention.num_attention_heads
        hidden = query.in_features
        device, dtype = query.weight.device, query.weight.dtype
        encoder = PrefixEncoder(
            self.num_virtual_tokens,
            len(stack),
            heads,
            hidden,
            self.prefix_projection,
            self.encoder_hidden_size,
        ).to(device=device, dtype=dtype)
        setattr(backbone, PREFIX_ATTRIBUTE, encoder)
        if arch.prefix_via == "cache":
            backbone.register_forward_pre_hook(prefix_cache_hook, with_kwargs=True)
        else:
            for i, layer in enumerate(stack):
                layer.get_submodule(arch.attention_path).prefix = LayerPrefix(encoder, i)


class PrefixEncoder(DeltaModule):
    """peft's PrefixEncoder: virtual-token embeddings (optionally reparameterised by an MLP) → all layers'
    K/V."""

    method: ClassVar[str] = "prefix"

    def __init__(
        self,
        num_virtual_tokens: int,
        num_layers: int,
        num_heads: int,
        hidden_size: int,
        projection: bool = False,
        encoder_hidden_size: int | None = None,
    ):
        super().__init__()
        self.num_virtual_tokens, self.num_layers, self.num_heads = num_virtual_tokens, num_layers, num_heads
        self.head_dim = hidden_size // num_heads
        out = num_layers * 2 * hidden_size
        if projection:
            self.embedding = nn.Embedding(num_virtual_tokens, hidden_size)
            width = encoder_hidden_size or hidden_size
            self.transform: nn.Module = nn.Sequential(
                nn.Linear(hidden_size, width), nn.Tanh(), nn.Linear(width, out)
            )
        else:
            self.embedding = nn.Embedding(num_virtual_tokens, out)
            self.transform = nn.Identity()
        self.register_buffer("tokens", torch.arange(num_virtual_tokens), persistent=False)

    def forward(self, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, ``(keys, values)`` each [batch, heads, P, head_dim] (peft's layout: K0, V0, K1, V1,
        ...)."""
        flat = self.transform(self.embedding(self.tokens))  # [P, layers * 2 * hidden]
        kv = flat.view(self.num_virtual_tokens, 2 * self.num_layers, self.num_heads, self.head_dim)
        kv = kv.permute(1, 2, 0, 3).unsqueeze(1).expand(-1, batch_size, -1, -1, -1)  # [2L, B, H, P, d]
        return [(kv[2 * i], kv[2 * i + 1]) for i in range(self.num_layers)]


class LayerPrefix(nn.Module):
    """Layer ``index``'s view of a shared PrefixEncoder: the ``MultiHeadAttention.prefix`` protocol."""

    def __init__(self, encoder: PrefixEncoder, index: int):
        super().__init__()
        object.__setattr__(
            self, "encoder", encoder
        )  # not a submodule: its weights live once, on the backbone
        self.index = index

    def forward(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(k_p, v_p)``, each [batch, heads, P, head_dim]."""
        return self.encoder(batch_size)[self.index]


@functools.cache
def cache_argument() -> str:
    """The name of ``BertModel.forward``'s key/value cache: ``cache`` in recent transformers, else
    ``past_key_values``."""
    names = inspect.signature(BertModel.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in names:
            return name
    raise RuntimeError("this transformers' BertModel.forward takes neither 'cache' nor 'past_key_values': "
                       "prefix tuning cannot pass its keys and values; install transformers 5.x")


def prefix_cache_hook(
    model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Before ``BertModel.forward``: pass the prefixes as a KV cache and widen the mask, exactly as peft
    does."""
    kwargs = {**dict(zip(_BERT_MODEL_ARGS, args, strict=False)), **kwargs}
    reference = kwargs.get("input_ids")
    if reference is None:
        reference = kwargs["inputs_embeds"]
    batch = reference.shape[0]
    encoder: PrefixEncoder = getattr(model, PREFIX_ATTRIBUTE)
    kwargs[cache_argument()] = DynamicCache(encoder(batch))
    mask = kwargs.get("attention_mask")
    if mask is not None:
        ones = torch.ones(batch, encoder.num_virtual_tokens, dtype=mask.dtype, device=mask.device)
        kwargs["attention_mask"] = torch.cat([ones, mask], dim=1)
    if kwargs.get("position_ids") is not None:  # the prefix occupies the first P positions (peft, BertModel)
        kwargs["position_ids"] = kwargs["position_ids"] + encoder.num_virtual_tokens
    return (), kwargs
