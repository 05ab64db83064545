"""The hybrid (LoRA + BitFit) in TensorFlow/Keras 3: Keras layers that load the same BERT weights.

TensorFlow is optional (``pip install -e ".[tf]"``). Importing ``hft_lessons`` or this package never imports
TensorFlow; the names below load it on first use, so ``available()`` can be asked first.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

__all__ = ["INSTALL_HINT", "available", "KerasBertEncoder", "LoraDense", "SequenceClassifier",
           "LayerDecayAdamW", "WarmupLinearDecay", "BatchSequence", "apply_hybrid", "from_pretrained",
           "load_bert_weights", "count_weights", "train_hybrid", "KerasRun", "weights_folder"]

INSTALL_HINT = 'TensorFlow is not installed; the Keras parts skip. Install it with: pip install -e ".[tf]"'


def available() -> bool:
    """True when TensorFlow and Keras 3 can be imported (checked without importing them)."""
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "keras"))


def _quiet_tensorflow() -> None:
    """Keep TensorFlow on the CPU and quiet; call before it is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # set explicitly: TensorFlow then skips its notice


def __getattr__(name: str) -> Any:
    if name in __all__[2:]:
        if not available():
            raise ImportError(INSTALL_HINT)
        _quiet_tensorflow()
        from . import bert

        return getattr(bert, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
