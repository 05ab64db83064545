"""A BERT-style Transformer encoder from scratch: attention, multi-head attention, FFN, layers, real
weights."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from transformers import BertConfig, BertModel

__all__ = [
    "scaled_dot_product_attention",
    "attention_mask_4d",
    "activation",
    "MultiHeadAttention",
    "FeedForward",
    "EncoderLayer",
    "Embeddings",
    "BertEncoder",
]


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(QKᵀ/√d_k)V; ``mask`` is boolean (True = may attend) or additive, broadcastable to the
    scores."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + mask
    weights = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v
    return (out, weights) if return_weights else out


def attention_mask_4d(mask: torch.Tensor | None, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """Turn a padding mask [batch, keys] (1/True = real token) into a boolean [batch, 1, 1, keys] mask.

    A 3-D mask gets a head axis; a 4-D mask is returned as it is (boolean = may attend, float = additive).
    """
    if mask is None:
        return None
    if mask.dim() == 2:
        return (mask != 0)[:, None, None, :]
    if mask.dim() == 3:
        mask = mask[:, None]
    if mask.dim() != 4:
        raise ValueError(f"attention mask must have 2, 3 or 4 dimensions, got shape {tuple(mask.shape)}")
    return mask if mask.dtype == torch.bool else mask.to(dtype)


def _prepend_visible(mask: torch.Tensor, n: int) -> torch.Tensor:
    """Extend a 4-D mask by ``n`` always-visible key positions at the front (for prefix tuning)."""
    shape = (*mask.shape[:-1], n)
    if mask.dtype == torch.bool:
        visible = torch.ones(shape, dtype=torch.bool, device=mask.device)
    else:
        visible = torch.zeros(shape, dtype=mask.dtype, device=mask.device)
    return torch.cat([visible, mask], dim=-1)


def activation(name: str) -> nn.Module:
    """The activation module for a config's ``hidden_act`` (gelu, gelu_new, relu, ...)."""
    acts = {
        "gelu": lambda: nn.GELU(),
        "gelu_new": lambda: nn.GELU(approximate="tanh"),
        "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),
        "relu": lambda: nn.ReLU(),
        "silu": lambda: nn.SiLU(),
    }
    if name not in acts:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(acts)}")
    return acts[name]()


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention: project, split into heads, attend per head, concatenate, project with
    W^O."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0, use_fused: bool = True):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout
        self.use_fused = use_fused  # False: the explicit softmax(QKᵀ/√d)V taught in chapter 1
        self.prefix: nn.Module | None = None  # prefix tuning: prefix(batch) -> (k_p, v_p) [b, h, P, d]

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, seq, hidden] -> [batch, heads, seq, head_dim]."""
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention over ``x`` [batch, seq, hidden]; ``mask`` as in :func:`attention_mask_4d`."""
        b, n, hidden = x.shape
        q, k, v = (
            self.split_heads(self.query(x)),
            self.split_heads(self.key(x)),
            self.split_heads(self.value(x)),
        )
        mask = attention_mask_4d(mask, q.dtype)
        if self.prefix is not None:
            k_p, v_p = self.prefix(b)
            k = torch.cat([k_p.to(k.dtype), k], dim=2)
            v = torch.cat([v_p.to(v.dtype), v], dim=2)
            if mask is not None:
                mask = _prepend_visible(mask, k_p.size(2))
        p = self.dropout if self.training else 0.0
        if self.use_fused:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            ctx = scaled_dot_product_attention(q, k, v, mask, dropout_p=p)
        return self.out(ctx.transpose(1, 2).reshape(b, n, hidden))


class FeedForward(nn.Module):
    """The position-wise FFN: down(act(up(x))), with GELU in BERT (ReLU in the original Transformer)."""

    def __init__(self, hidden_size: int, intermediate_size: int, act: str = "gelu"):
        super().__init__()
        self.up = nn.Linear(hidden_size, intermediate_size)
        self.act = activation(act)
        self.down = nn.Linear(intermediate_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the same two-layer MLP to every position."""
        return self.down(self.act(self.up(x)))


class EncoderLayer(nn.Module):
    """One post-LN BERT layer: x = LN(x + Drop(MHA(x))); x = LN(x + Drop(FFN(x)))."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        act: str = "gelu",
        layer_norm_eps: float = 1e-12,
        use_fused: bool = True,
    ):
        super().__init__()
        self.attention = MultiHeadAttention(hidden_size, num_heads, attention_dropout, use_fused)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.ffn = FeedForward(hidden_size, intermediate_size, act)
        self.ffn_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    @classmethod
    def from_config(cls, config: BertConfig, use_fused: bool = True) -> EncoderLayer:
        """A layer sized like ``config`` (a transformers BertConfig)."""
        return cls(
            config.hidden_size,
            config.num_attention_heads,
            config.intermediate_size,
            config.hidden_dropout_prob,
            config.attention_probs_dropout_prob,
            config.hidden_act,
            config.layer_norm_eps,
            use_fused,
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention sublayer, then feed-forward sublayer, each with a residual and LayerNorm after it."""
        x = self.attention_norm(x + self.dropout(self.attention(x, mask)))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))


class Embeddings(nn.Module):
    """Token + position + segment embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Embed ``input_ids`` [batch, seq] into [batch, seq, hidden]."""
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)  # HF's order of sums
        x = x + self.position_embeddings(positions)
        return self.dropout(self.norm(x))


def _check_config(config: BertConfig) -> None:
    model_type = getattr(config, "model_type", None)
    if model_type != "bert":
        raise ValueError(f"BertEncoder needs a BERT-family config (model_type 'bert'), got {model_type!r}")
    kind = getattr(config, "position_embedding_type", "absolute")
    if kind != "absolute":
        raise ValueError(f"BertEncoder supports position_embedding_type 'absolute' only, got {kind!r}")


class BertEncoder(nn.Module):
    """A BERT-style encoder (embeddings + N post-LN layers) that loads real Hugging Face BERT weights."""

    def __init__(self, config: BertConfig, use_fused: bool = True):
        super().__init__()
        _check_config(config)
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(
            [EncoderLayer.from_config(config, use_fused) for _ in range(config.num_hidden_layers)]
        )
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """BERT's initialisation: N(0, 0.02) weights, zero biases, identity LayerNorms."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @classmethod
    def from_config(cls, config: BertConfig, use_fused: bool = True) -> BertEncoder:
        """A randomly initialised encoder shaped like ``config`` (a transformers BertConfig)."""
        return cls(config, use_fused)

    @classmethod
    def from_hf(cls, model: BertModel, use_fused: bool = True) -> BertEncoder:
        """An encoder holding a copy of the weights of a ``transformers.BertModel``."""
        encoder = cls(model.config, use_fused)
        encoder.load_hf_state_dict(model.state_dict())
        return encoder.to(next(model.parameters()).device)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | None = None, use_fused: bool = True, verbose: bool = True
    ) -> BertEncoder:
        """Load a BERT-family checkpoint (Hub id or local folder; offline-aware) into a BertEncoder."""
        from transformers import BertModel

        from .backbone import check_bert_family, resolve_backbone, tiny_random_bert
        from .profiles import TINY

        path = resolve_backbone(name_or_path, verbose=verbose)
        if path == TINY:  # the same seeded tiny random BERT that load_backbone builds
            model = tiny_random_bert()
        else:
            check_bert_family(path)
            model = BertModel.from_pretrained(path)
        encoder = cls.from_hf(model, use_fused)
        encoder.eval()
        return encoder

    def load_hf_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Copy a Hugging Face BERT state dict (``bert.`` prefix optional) into this encoder's names."""
        state = {k.removeprefix("bert."): v for k, v in state.items()}
        mine = {}
        for hf, ours in (("word_embeddings", "word_embeddings"),
                         ("position_embeddings", "position_embeddings"),
                         ("token_type_embeddings", "token_type_embeddings")):  # fmt: skip
            mine[f"embeddings.{ours}.weight"] = state[f"embeddings.{hf}.weight"]
        for p in ("weight", "bias"):
            mine[f"embeddings.norm.{p}"] = state[f"embeddings.LayerNorm.{p}"]
        names = {
            "attention.query": "attention.self.query",
            "attention.key": "attention.self.key",
            "attention.value": "attention.self.value",
            "attention.out": "attention.output.dense",
            "attention_norm": "attention.output.LayerNorm",
            "ffn.up": "intermediate.dense",
            "ffn.down": "output.dense",
            "ffn_norm": "output.LayerNorm",
        }
        for i in range(len(self.layers)):
            for ours, hf in names.items():
                for p in ("weight", "bias"):
                    mine[f"layers.{i}.{ours}.{p}"] = state[f"encoder.layer.{i}.{hf}.{p}"]
        self.load_state_dict(mine, strict=True)

    def set_fused(self, use_fused: bool) -> None:
        """Switch every layer between the fused SDPA kernel and the explicit softmax(QKᵀ/√d)V."""
        for layer in self.layers:
            layer.attention.use_fused = use_fused

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The last hidden state [batch, seq, hidden]; ``attention_mask`` is 1 for tokens, 0 for padding."""
        x = self.embeddings(input_ids, token_type_ids)
        mask = attention_mask_4d(attention_mask, x.dtype)
        for layer in self.layers:
            x = layer(x, mask)
        return x
