"""Plotting helpers return matplotlib Figures for a small fake history."""

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from hft_lessons.plotting import format_table, plot_comparison, plot_histories, plot_history  # noqa: E402

HISTORY = [
    {"step": 20, "epoch": 0.5, "loss": 0.69, "lr": 1e-3},
    {"step": 40, "epoch": 1.0, "loss": 0.55, "lr": 8e-4},
    {"step": 40, "epoch": 1, "eval_accuracy": 0.71},
    {"step": 60, "epoch": 1.5, "loss": 0.41, "lr": 4e-4},
    {"step": 80, "epoch": 2, "eval_accuracy": 0.78},
]
ROWS = [
    {"method": "full", "trainable": 22_713_986, "trainable_pct": 100.0, "accuracy": 0.85},
    {"method": "lora", "trainable": 326_402, "trainable_pct": 1.42, "accuracy": 0.84},
]


def test_plot_history_returns_a_figure_with_two_axes():
    fig = plot_history(HISTORY, title="lora")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss_line, metric_line = fig.axes[0].lines[0], fig.axes[1].lines[0]
    assert list(loss_line.get_ydata()) == [0.69, 0.55, 0.41]
    assert list(metric_line.get_ydata()) == [0.71, 0.78]


def test_plot_histories_draws_one_line_per_run():
    fig = plot_histories({"a": HISTORY, "b": HISTORY})
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 2


def test_plot_comparison_and_table():
    fig = plot_comparison(ROWS)
    assert isinstance(fig, Figure)
    text = format_table(ROWS)
    lines = text.splitlines()
    assert lines[0].split(" | ")[0].strip() == "method" and len(lines) == 4
    assert "22,713,986" in text and "1.42" in text
    assert format_table([]) == ""
