"""Small matplotlib helpers for the chapters: training curves from a TrainResult's history, method
comparisons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["plot_history", "plot_histories", "plot_comparison", "format_table"]


def _series(history: Sequence[Mapping[str, float]], key: str) -> tuple[list[float], list[float]]:
    rows = [h for h in history if key in h]
    return [h.get("epoch", h.get("step", i)) for i, h in enumerate(rows)], [h[key] for h in rows]


def plot_history(history: Sequence[Mapping[str, float]], metric: str = "accuracy", title: str = "") -> Figure:
    """Training loss (left) and the evaluation ``metric`` per epoch (right) from ``TrainResult.history``."""
    return plot_histories({title or "run": history}, metric)


def plot_histories(
    histories: Mapping[str, Sequence[Mapping[str, float]]], metric: str = "accuracy"
) -> Figure:
    """Loss and evaluation curves of several runs, one line per run, against epochs."""
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
    plt.close(fig)  # returned, not auto-shown: a notebook displays it once, as the cell's value
    for label, history in histories.items():
        x, y = _series(history, "loss")
        loss_ax.plot(x, y, label=label)
        x, y = _series(history, f"eval_{metric}")
        metric_ax.plot(x, y, marker="o", label=label)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="training loss")
    metric_ax.set(xlabel="epoch", ylabel=metric, title=f"validation {metric}")
    for ax in (loss_ax, metric_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_comparison(rows: Sequence[Mapping[str, Any]], x: str = "trainable_pct", y: str = "accuracy",
                    label: str = "method", logx: bool = True) -> Figure:
    """A labelled scatter of ``y`` against ``x`` (default: accuracy vs % trainable), one point per row."""
    fig, ax = plt.subplots(figsize=(6, 4))
    plt.close(fig)  # returned, not auto-shown
    for row in rows:
        ax.scatter(row[x], row[y])
        ax.annotate(str(row[label]), (row[x], row[y]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=x.replace("_", " "), ylabel=y.replace("_", " "))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                 floatfmt: str = ".4g") -> str:
    """A plain-text table of ``rows`` (dicts), columns aligned; floats formatted with ``floatfmt``."""
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())

    def cell(v: Any) -> str:
        return format(v, floatfmt) if isinstance(v, float) else (f"{v:,}" if isinstance(v, int) else str(v))

    cells = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
