"""A BERT encoder in Keras 3 layers (TensorFlow backend), LoRA and BitFit in Keras, training with model.fit.

The layer names follow the Hugging Face checkpoint (``query``, ``key``, ``value``, ``attention_output``,
``ffn_up``, ``ffn_down``, as in ``hft_lessons.delta.ROLES``), so ``load_bert_weights`` copies a
``model.safetensors`` file tensor by tensor: a Keras ``Dense`` kernel is ``[in, out]``, torch's transposed.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from safetensors import safe_open

from ..delta import ROLES

__all__ = ["KerasBertEncoder", "LoraDense", "SequenceClassifier", "LayerDecayAdamW", "WarmupLinearDecay",
           "BatchSequence", "apply_hybrid", "from_pretrained", "load_bert_weights", "count_weights",
           "train_hybrid", "KerasRun", "weights_folder"]

tf.config.set_visible_devices([], "GPU")  # the course compares against CPU references; keep TF off any GPU


def _gelu(x):
    return keras.activations.gelu(x, approximate=False)  # BERT's exact erf GELU


class LoraDense(keras.layers.Layer):
    """``base(x) + (x A) B · alpha/r`` around a frozen ``Dense``; B = 0 at first: the output is unchanged."""

    def __init__(self, base: keras.layers.Dense, r: int = 8, alpha: float = 16.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if r < 1:
            raise ValueError(f"LoraDense r must be >= 1, got {r}")
        self.base, self.r, self.scaling = base, r, alpha / r
        self.activation = base.activation  # applied after the sum, as the wrapped Dense would
        base.activation = keras.activations.linear
        d_in, d_out = base.kernel.shape
        bound = 1 / math.sqrt(d_in)  # torch's kaiming_uniform_(a=√5) on A, as peft and hft_lessons.delta do
        self.lora_A = self.add_weight(shape=(d_in, r), name="lora_A",
                                      initializer=keras.initializers.RandomUniform(-bound, bound))
        self.lora_B = self.add_weight(shape=(r, d_out), name="lora_B", initializer="zeros")

    def call(self, x):
        """The frozen projection plus the scaled low-rank update."""
        update = ops.matmul(ops.matmul(x, self.lora_A), self.lora_B) * self.scaling
        return self.activation(self.base(x) + update)


class _Layer(keras.layers.Layer):
    """One BERT layer: self-attention, add & LayerNorm, feed-forward, add & LayerNorm (post-LN)."""

    def __init__(self, cfg: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        d, self.heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
        self.head_dim = d // self.heads
        for role in ("query", "key", "value", "attention_output"):
            setattr(self, role, keras.layers.Dense(d, name=role))
        self.ffn_up = keras.layers.Dense(cfg["intermediate_size"], activation=_gelu, name="ffn_up")
        self.ffn_down = keras.layers.Dense(d, name="ffn_down")
        self.attention_norm = keras.layers.LayerNormalization(epsilon=eps, name="attention_norm")
        self.output_norm = keras.layers.LayerNormalization(epsilon=eps, name="output_norm")
        self.hidden_dropout = keras.layers.Dropout(cfg["hidden_dropout_prob"])
        self.attention_dropout = keras.layers.Dropout(cfg["attention_probs_dropout_prob"])

    def _split(self, x):
        b, s = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (b, s, self.heads, self.head_dim)), (0, 2, 1, 3))

    def call(self, h, mask_bias, training=False):
        """[batch, seq, d] → [batch, seq, d]; ``mask_bias``: 0 on tokens, a large negative on padding."""
        q, k, v = self._split(self.query(h)), self._split(self.key(h)), self._split(self.value(h))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(self.head_dim) + mask_bias
        probs = self.attention_dropout(ops.softmax(scores, axis=-1), training=training)
        ctx = ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3))
        ctx = ops.reshape(ctx, (ops.shape(h)[0], ops.shape(h)[1], -1))
        h = self.attention_norm(h + self.hidden_dropout(self.attention_output(ctx), training=training))
        ffn = self.ffn_down(self.ffn_up(h))
        return self.output_norm(h + self.hidden_dropout(ffn, training=training))


class KerasBertEncoder(keras.layers.Layer):
    """BERT's embeddings and layers: ``call(input_ids, attention_mask, token_type_ids)`` → hidden states."""

    def __init__(self, cfg: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cfg = cfg
        d = cfg["hidden_size"]
        self.word_embeddings = keras.layers.Embedding(cfg["vocab_size"], d, name="word_embeddings")
        self.position_embeddings = keras.layers.Embedding(cfg["max_position_embeddings"], d,
                                                          name="position_embeddings")
        self.token_type_embeddings = keras.layers.Embedding(cfg["type_vocab_size"], d,
                                                            name="token_type_embeddings")
        self.embedding_norm = keras.layers.LayerNormalization(epsilon=cfg["layer_norm_eps"],
                                                              name="embedding_norm")
        self.dropout = keras.layers.Dropout(cfg["hidden_dropout_prob"])
        self.layers = [_Layer(cfg, name=f"layer_{i}") for i in range(cfg["num_hidden_layers"])]

    def call(self, input_ids, attention_mask=None, token_type_ids=None, training=False):
        """Last hidden states [batch, seq, hidden]."""
        if attention_mask is None:
            attention_mask = ops.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = ops.zeros_like(input_ids)
        positions = ops.arange(ops.shape(input_ids)[1])[None, :]
        h = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(token_type_ids))
        h = self.dropout(self.embedding_norm(h), training=training)
        mask_bias = (1.0 - ops.cast(attention_mask, h.dtype))[:, None, None, :] * -1e9
        for layer in self.layers:
            h = layer(h, mask_bias, training=training)
        return h

    def build_all(self) -> KerasBertEncoder:
        """Create every weight by running one short dummy batch."""
        ids = np.zeros((1, 2), dtype="int32")
        self(ids, np.ones_like(ids), ids)
        return self


# Checkpoint names (Hugging Face BertModel) → encoder attribute paths; {i} is the layer index.
_NAMES = {
    "embeddings.word_embeddings.weight": "word_embeddings.embeddings",
    "embeddings.position_embeddings.weight": "position_embeddings.embeddings",
    "embeddings.token_type_embeddings.weight": "token_type_embeddings.embeddings",
    "embeddings.LayerNorm.weight": "embedding_norm.gamma",
    "embeddings.LayerNorm.bias": "embedding_norm.beta",
}
_LAYER_NAMES = {
    "attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
    "attention.output.dense": "attention_output", "intermediate.dense": "ffn_up", "output.dense": "ffn_down",
}
_LAYER_NORMS = {"attention.output.LayerNorm": "attention_norm", "output.LayerNorm": "output_norm"}


def _target(encoder: KerasBertEncoder, name: str) -> tuple[keras.Variable, bool] | None:
    """The Keras variable for a checkpoint tensor name and whether it needs a transpose; None if unused."""
    name = name.removeprefix("bert.")
    if name in _NAMES:
        layer_name, attr = _NAMES[name].split(".")
        return getattr(getattr(encoder, layer_name), attr), False
    m = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)", name)
    if not m:
        return None  # position_ids buffers, the pooler, a pre-training head
    layer, module, kind = encoder.layers[int(m.group(1))], m.group(2), m.group(3)
    if module in _LAYER_NAMES:
        dense = getattr(layer, _LAYER_NAMES[module])
        dense = dense.base if isinstance(dense, LoraDense) else dense
        return (dense.kernel, True) if kind == "weight" else (dense.bias, False)
    if module in _LAYER_NORMS:
        norm = getattr(layer, _LAYER_NORMS[module])
        return (norm.gamma if kind == "weight" else norm.beta), False
    return None


def load_bert_weights(encoder: KerasBertEncoder, path: str | Path) -> int:
    """Copy a BERT ``model.safetensors`` (a file or its folder) into ``encoder``; return the count copied."""
    path = Path(path)
    file = path / "model.safetensors" if path.is_dir() else path
    if not file.exists():
        raise ValueError(f"no safetensors weights at {file}; pass a model folder or its model.safetensors")
    encoder.build_all()
    copied, expected = 0, len(encoder.weights)
    with safe_open(str(file), framework="np") as f:
        for name in f.keys():
            found = _target(encoder, name)
            if found is None:
                continue
            variable, transpose = found
            value = f.get_tensor(name).astype("float32")
            variable.assign(value.T if transpose else value)
            copied += 1
    if copied != expected:
        raise ValueError(f"{file} filled {copied} of the encoder's {expected} weights; "
                         "is it a BERT checkpoint?")
    return copied


def weights_folder(name: str | None = None) -> Path:
    """A local folder with config.json and model.safetensors for ``name`` (default: the profile's backbone).

    The packaged MiniLM or any local folder as is; the smoke profile's tiny random BERT written to a temporary
    folder; a Hub model downloaded (config and safetensors only).
    """
    import tempfile

    import torch

    from ..backbone import load_backbone, resolve_backbone
    from ..profiles import TINY

    path = resolve_backbone(name, verbose=False)
    if Path(path).is_dir():
        return Path(path)
    if path == TINY:
        folder = Path(tempfile.mkdtemp(prefix="tiny_bert_"))
        with torch.random.fork_rng():
            load_backbone(TINY, verbose=False)[1].save_pretrained(folder)
        return folder
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(path, allow_patterns=["config.json", "model.safetensors"]))


def from_pretrained(path: str | Path) -> KerasBertEncoder:
    """A Keras BERT encoder from a Hugging Face model folder (config.json, model.safetensors)."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise ValueError(f"{path} has no config.json; pass a Hugging Face BERT model folder")
    cfg = json.loads((path / "config.json").read_text())
    if cfg.get("model_type") != "bert":
        raise ValueError(f"{path} holds a {cfg.get('model_type')!r} model; "
                         "the Keras encoder needs model_type 'bert'")
    encoder = KerasBertEncoder(cfg, name="bert")
    load_bert_weights(encoder, path)
    return encoder


class SequenceClassifier(keras.Model):
    """Encoder, masked mean pooling, dropout and one Dense layer: the course's SST-2 model in Keras."""

    def __init__(self, encoder: KerasBertEncoder, num_labels: int = 2, dropout: float = 0.1,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.encoder = encoder
        self.head_dropout = keras.layers.Dropout(dropout)
        self.classifier = keras.layers.Dense(num_labels, name="classifier")

    def call(self, inputs, training=False):
        """Class logits [batch, num_labels] from a dict of input_ids, attention_mask, token_type_ids."""
        mask = inputs["attention_mask"]
        h = self.encoder(inputs["input_ids"], mask, inputs.get("token_type_ids"), training=training)
        m = ops.cast(mask, h.dtype)[:, :, None]
        pooled = ops.sum(h * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)
        return self.classifier(self.head_dropout(pooled, training=training))


def apply_hybrid(encoder: KerasBertEncoder, r: int = 8, alpha: float = 16.0,
                 target_modules: Sequence[str] = ROLES) -> KerasBertEncoder:
    """LoRA on ``target_modules`` of every layer + BitFit: kernels, embeddings, LayerNorm scales frozen."""
    unknown = set(target_modules) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown target modules {sorted(unknown)}; allowed: {', '.join(ROLES)}")
    encoder.build_all()
    for v in encoder.weights:  # BitFit: only biases (Dense bias, LayerNorm beta) keep training
        v.trainable = v.name in ("bias", "beta")
    for layer in encoder.layers:
        for role in target_modules:
            dense = getattr(layer, role)
            if isinstance(dense, LoraDense):
                raise ValueError(f"LoRA is already applied to {role}; apply the hybrid once")
            layer._tracker.unlock()  # a built layer takes new sub-layers only unlocked (as Dense.enable_lora)
            # the name carries the layer, so that layer-wise learning-rate decay can find it in the path
            setattr(layer, role, LoraDense(dense, r, alpha, name=f"{layer.name}_{role}_lora"))
            layer._tracker.lock()
    return encoder


def count_weights(model: keras.layers.Layer) -> tuple[int, int]:
    """(trainable, total) scalar weights."""
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    return trainable, trainable + sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``lr`` over ``warmup`` steps, then linear decay to 0 at ``total``."""

    def __init__(self, lr: float, warmup: int, total: int) -> None:
        self.lr, self.warmup, self.total = lr, warmup, total

    def __call__(self, step):
        step = ops.cast(step, "float32")
        up = step / max(1, self.warmup)
        down = ops.maximum(0.0, (self.total - step) / max(1, self.total - self.warmup))
        return self.lr * ops.where(step < self.warmup, up, down)

    def get_config(self) -> dict:
        return {"lr": self.lr, "warmup": self.warmup, "total": self.total}


class LayerDecayAdamW(keras.optimizers.AdamW):
    """AdamW whose step for a variable is scaled by ``factor(variable.path)`` (layer-wise lr decay)."""

    def __init__(self, factor: Callable[[str], float], **kwargs) -> None:
        super().__init__(**kwargs)
        self._factor_of = factor

    def build(self, variables) -> None:
        super().build(variables)
        self._factors = [self._factor_of(v.path) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factors[self._get_variable_index(variable)]
        return super().update_step(gradient, variable, learning_rate * factor)


def layer_decay_factor(num_layers: int, decay: float | None) -> Callable[[str], float]:
    """decay ** depth: layer k of n gets decay^(n-1-k), the embeddings decay^n, the head 1."""
    def factor(path: str) -> float:
        if decay is None:
            return 1.0
        m = re.search(r"layer_(\d+)[/_]", path)  # bert/layer_3/query/bias, layer_3_query_lora/lora_A
        if m:
            return decay ** (num_layers - 1 - int(m.group(1)))
        return decay ** num_layers if "embedding" in path else 1.0
    return factor


class BatchSequence(keras.utils.PyDataset):
    """Batches for ``model.fit``: the given lists of example indices, each padded to its longest example."""

    def __init__(self, features, batches: Callable[[], list[list[int]]], pad_id: int = 0) -> None:
        super().__init__()
        self.ids, self.labels = features["input_ids"], np.asarray(features["labels"])
        self.types = features["token_type_ids"] if "token_type_ids" in features.column_names else None
        self.make_batches, self.pad_id = batches, pad_id
        self.batches = batches()

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        rows = self.batches[i]
        width = max(len(self.ids[j]) for j in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype="int32")
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for n, j in enumerate(rows):
            ids[n, : len(self.ids[j])] = self.ids[j]
            mask[n, : len(self.ids[j])] = 1
            if self.types is not None:
                types[n, : len(self.types[j])] = self.types[j]
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}, self.labels[rows]

    def on_epoch_end(self) -> None:
        self.batches = self.make_batches()


@dataclass
class KerasRun:
    """What a Keras training run produced: accuracy per epoch, its time, examples per second, its steps."""

    accuracy: float
    history: dict[str, list[float]] = field(default_factory=dict)
    train_seconds: float = 0.0
    train_examples_per_second: float = 0.0
    steps: int = 0


def train_hybrid(model: SequenceClassifier, train_features, eval_features, sampler, lr: float = 2e-3,
                 epochs: int = 2, warmup_ratio: float = 0.06, weight_decay: float = 0.01,
                 layer_decay: float | None = None, max_grad_norm: float = 1.0, verbose: int = 0) -> KerasRun:
    """``model.fit`` with the course trainer's recipe: AdamW, linear warm-up and decay, clipping, layer decay.

    ``sampler`` is the course's ``LengthGroupedBatchSampler`` (``task.batch_sampler``), so Keras sees the same
    batches in the same order as the PyTorch run; biases and LayerNorm parameters get no weight decay.
    """
    epoch = {"n": 0}

    def batches() -> list[list[int]]:
        sampler.set_epoch(epoch["n"])
        epoch["n"] += 1
        return sampler.batches()

    data = BatchSequence(train_features, batches)
    eval_order = sorted(range(len(eval_features)), key=lambda i: len(eval_features[i]["input_ids"]))
    evals = BatchSequence(eval_features,
                          lambda: [eval_order[i : i + 128] for i in range(0, len(eval_order), 128)])
    total = epochs * len(data)
    optimizer = LayerDecayAdamW(
        layer_decay_factor(len(model.encoder.layers), layer_decay),
        learning_rate=WarmupLinearDecay(lr, int(warmup_ratio * total), total), weight_decay=weight_decay,
        beta_1=0.9, beta_2=0.999, epsilon=1e-8, global_clipnorm=max_grad_norm)
    optimizer.exclude_from_weight_decay(var_names=["bias", "beta", "gamma"])
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
    start = time.perf_counter()
    fit = model.fit(data, validation_data=evals, epochs=epochs, verbose=verbose)
    seconds = time.perf_counter() - start
    return KerasRun(accuracy=float(fit.history["val_accuracy"][-1]), history=fit.history,
                    train_seconds=seconds, steps=total,
                    train_examples_per_second=epochs * len(train_features) / seconds)
