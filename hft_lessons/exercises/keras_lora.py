"""Checker for chapter 8's exercise: a ``peft`` LoRA layer's weights laid out for the Keras ``LoraDense``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from .base import attempt, verdict

KEYS = ("kernel", "bias", "lora_A", "lora_B")


class _Probe(nn.Module):
    """One linear projection, the module that peft wraps."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def peft_probe(d_in: int = 12, d_out: int = 10, r: int = 4, alpha: float = 8.0, seed: int = 0) -> nn.Module:
    """A peft LoRA model around one ``nn.Linear`` (``.base_model.model.proj``), with a nonzero ``B``."""
    torch.manual_seed(seed)
    model = get_peft_model(_Probe(d_in, d_out), LoraConfig(r=r, lora_alpha=alpha, target_modules=["proj"]))
    with torch.no_grad():  # B starts at 0; a random B makes the update visible
        model.base_model.model.proj.lora_B["default"].weight.normal_()
    return model.eval()


def keras_lora_output(x: np.ndarray, weights: Mapping[str, np.ndarray], r: int, alpha: float) -> np.ndarray:
    """What ``hft_lessons.keras.LoraDense`` computes: ``x kernel + bias + (x lora_A) lora_B * alpha / r``."""
    return x @ weights["kernel"] + weights["bias"] + (x @ weights["lora_A"]) @ weights["lora_B"] * (alpha / r)


def _port_problem(fn: Callable, d_in: int, d_out: int, r: int, alpha: float) -> str | None:
    """What differs between peft's layer and the Keras layer built from ``fn``'s arrays; None if nothing."""
    model = peft_probe(d_in, d_out, r, alpha)
    layer = model.base_model.model.proj
    out, problem = attempt(fn, layer)
    if problem is not None:
        return problem
    if not isinstance(out, Mapping) or set(out) != set(KEYS):
        got = sorted(out) if isinstance(out, Mapping) else type(out).__name__
        return f"return a dict with the keys {', '.join(KEYS)}; got {got}"
    weights = {k: np.asarray(out[k].detach() if torch.is_tensor(out[k]) else out[k], dtype=np.float32)
               for k in KEYS}
    shapes = {"kernel": (d_in, d_out), "bias": (d_out,), "lora_A": (d_in, r), "lora_B": (r, d_out)}
    for key, shape in shapes.items():
        if weights[key].shape != shape:
            return (f"{key} should have Keras's shape {shape}, got {weights[key].shape} "
                    f"(a Keras Dense kernel is [in, out]; torch stores [out, in])")
    x = np.random.default_rng(1).normal(size=(5, d_in)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
        base = layer.base_layer(torch.from_numpy(x)).numpy()
    frozen = x @ weights["kernel"] + weights["bias"]
    d_base = float(np.abs(frozen - base).max())
    if d_base > 1e-5:
        return (f"the frozen part x kernel + bias differs from peft's base layer by up to {d_base:.1e} "
                f"(a reshape is not a transpose)")
    d = float(np.abs(keras_lora_output(x, weights, r, alpha) - ref).max())
    if d > 1e-5:
        return (f"the frozen part matches, but the LoRA update differs from peft's by up to {d:.1e}: "
                f"check which factor is A and which is B, their layout, and that LoraDense applies alpha / r")
    return None


def check_peft_to_keras(fn: Callable, d_in: int = 12, d_out: int = 10, r: int = 4,
                        alpha: float = 8.0) -> bool:
    """Check ``fn(peft_lora_linear) -> {kernel, bias, lora_A, lora_B}`` (Keras layout) against peft."""
    return verdict(_port_problem(fn, d_in, d_out, r, alpha))
