"""The course's diagrams of structure, drawn with matplotlib so that they stay consistent and editable.

Each ``draw_<name>(ax=None)`` returns the figure; in a notebook ``draw_<name>();`` shows it. The figures
are at most 7 inches wide (the book's column) with text of at least 9 points; ``tools/make_figures.py``
writes them to ``book/figures/<name>.svg``. Coordinates are in inches, so sizes on the page are sizes
in the code.
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle
from matplotlib.text import Text

from .multitask import sampling_probabilities
from .tasks.question_answering import decode_spans

__all__ = [
    "FIGURES",
    "FONT_SIZE",
    "MAX_WIDTH_IN",
    "draw_encoder_layer",
    "draw_lora",
    "draw_multihead",
    "draw_multitask",
    "draw_pipeline",
    "draw_qa_windows",
    "text_problems",
]

FONT_SIZE = 9  # points: the smallest text in any figure
MAX_WIDTH_IN = 7.0  # inches: the book's column
INK = "#222222"
FROZEN = "#dde4ec"  # pretrained weights that do not change
TRAINED = "#fde7b0"  # what fine-tuning trains
NEUTRAL = "#f2f2f2"
METHOD_COLOURS = {
    "adapter": "#c8553d",
    "lora": "#1b7f79",
    "prefix": "#7a4fb0",
    "bitfit": "#a0642a",
    "ia3": "#2f6db5",
}
HEADS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2"]  # one colour per attention head


def _canvas(ax: Axes | None, width: float, height: float) -> Axes:
    """A blank axes whose data units are inches of a ``width`` x ``height`` figure (new unless ``ax``)."""
    if ax is None:
        fig = plt.figure(figsize=(width, height))
        ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return ax


def _text(ax: Axes, x: float, y: float, text: str, size: float = FONT_SIZE, **kwargs) -> None:
    kwargs.setdefault("ha", "center")
    kwargs.setdefault("va", "center")
    kwargs.setdefault("color", INK)
    ax.text(x, y, text, fontsize=size, **kwargs)


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str = "", face: str = NEUTRAL,
         edge: str = INK, dashed: bool = False, size: float = FONT_SIZE, lw: float = 1.0, **kwargs) -> None:
    """A rounded box with ``text`` centred in it."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.05", facecolor=face,
                                edgecolor=edge, linewidth=lw, linestyle="--" if dashed else "-"))
    if text:
        _text(ax, x + w / 2, y + h / 2, text, size=size, **kwargs)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], color: str = INK,
           lw: float = 1.0, style: str = "-|>", connection: str = "arc3") -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(
        arrowstyle=style, color=color, lw=lw, shrinkA=0, shrinkB=0, mutation_scale=9,
        connectionstyle=connection))


def _note(ax: Axes, target: tuple[float, float], where: tuple[float, float], text: str, method: str) -> None:
    """A method's note at ``where`` (left-aligned), with a line in the method's colour to ``target``."""
    colour = METHOD_COLOURS[method]
    ax.annotate(text, xy=target, xytext=where, fontsize=FONT_SIZE, color=colour, ha="left", va="center",
                arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.0, shrinkA=2, shrinkB=0,
                                mutation_scale=8))


def draw_encoder_layer(ax: Axes | None = None) -> Figure:
    """One post-LN Transformer encoder layer (BERT's) and where each delta method attaches to it."""
    ax = _canvas(ax, 7.0, 6.9)
    x0, w, h, mid = 2.0, 2.5, 0.42, 3.25
    rows = {  # name: (bottom y, text, face, dashed)
        "qkv": (0.55, "$W_q, W_k, W_v$ (+ biases)", FROZEN, False),
        "attn": (1.3, r"softmax$(QK^\top/\sqrt{d_h})\,V$, $h$ heads", FROZEN, False),
        "wo": (2.05, "$W_o$ (+ bias)", FROZEN, False),
        "ad1": (2.75, "adapter", TRAINED, True),
        "ln1": (3.45, "Add & LayerNorm", FROZEN, False),
        "w1": (4.2, "$W_1$ ($d \\to 4d$), GELU", FROZEN, False),
        "w2": (4.95, "$W_2$ ($4d \\to d$)", FROZEN, False),
        "ad2": (5.65, "adapter", TRAINED, True),
        "ln2": (6.35, "Add & LayerNorm", FROZEN, False),
    }
    for y, text, face, dashed in rows.values():
        edge = METHOD_COLOURS["adapter"] if dashed else INK
        _box(ax, x0, y, w, h, text, face=face, edge=edge, dashed=dashed)
    names = list(rows)
    for lower, upper in zip(names, names[1:], strict=False):
        _arrow(ax, (mid, rows[lower][0] + h), (mid, rows[upper][0]))
    _text(ax, mid, 0.18, r"input $x$: $B \times T \times d$")
    _arrow(ax, (mid, 0.3), (mid, 0.55))
    # residual connections, on the left
    for start_y, add in ((0.42, "ln1"), (4.02, "ln2")):
        end_y = rows[add][0] + h / 2
        ax.plot([mid, 1.55, 1.55], [start_y, start_y, end_y], color=INK, lw=1.0)
        _arrow(ax, (1.55, end_y), (x0, end_y))
        _text(ax, 1.38, (start_y + end_y) / 2, "residual", rotation=90)
    # the methods, on the right
    right, edge = 4.75, x0 + w
    _note(ax, (edge, 0.76), (right, 0.56), "LoRA: $W + \\frac{\\alpha}{r}BA$ beside\n$W_q$ and $W_v$", "lora")
    _note(ax, (edge, 1.62), (right, 1.95), "(IA)³: $l_k \\odot K$, $l_v \\odot V$", "ia3")
    _note(ax, (edge, 1.42), (right, 1.3), "prefix: learned $P_k, P_v$\nprepended to $K$, $V$", "prefix")
    _note(ax, (edge, 2.96), (right, 2.67), "adapter (Houlsby only):\nafter the attention", "adapter")
    _note(ax, (edge, 4.34), (right, 4.3), "(IA)³: $l_{ff} \\odot \\mathrm{GELU}(\\cdot)$, into $W_2$", "ia3")
    _note(ax, (edge, 5.86), (right, 5.55), "adapter (Houlsby and\nPfeiffer): after the FFN", "adapter")
    _note(ax, (x0, 2.26), (0.05, 2.9), "BitFit: every bias\n(projections and\nLayerNorm $\\beta$)", "bitfit")
    _note(ax, (x0, 5.16), (0.05, 5.05), "BitFit", "bitfit")
    _box(ax, 0.05, 6.2, 0.3, 0.2, face=FROZEN)
    _text(ax, 0.45, 6.3, "frozen", ha="left")
    _box(ax, 0.05, 6.55, 0.3, 0.2, face=TRAINED, edge=METHOD_COLOURS["adapter"], dashed=True)
    _text(ax, 0.45, 6.65, "added, trained", ha="left")
    return ax.figure


def _stripes(ax: Axes, x: float, y: float, w: float, h: float, colours: list[str]) -> None:
    """A tensor as a T x d block whose columns are split into one coloured stripe per head."""
    step = w / len(colours)
    for i, colour in enumerate(colours):
        ax.add_patch(Rectangle((x + i * step, y), step, h, facecolor=colour, edgecolor="white", lw=1.0,
                               alpha=0.85))
    ax.add_patch(Rectangle((x, y), w, h, facecolor="none", edgecolor=INK, lw=1.0))


def _cards(ax: Axes, x: float, y: float, w: float, h: float, colours: list[str], dx: float = 0.18,
           dy: float = 0.14) -> tuple[float, float]:
    """One T x d_h card per head, stacked with an offset; returns the top-right corner of the stack."""
    for i, colour in reversed(list(enumerate(colours))):
        ax.add_patch(Rectangle((x + i * dx, y + i * dy), w, h, facecolor=colour, edgecolor=INK, lw=0.8,
                               alpha=0.9))
    n = len(colours) - 1
    return x + n * dx + w, y + n * dy + h


def draw_multihead(ax: Axes | None = None) -> Figure:
    """Multi-head attention's split (B×T×d → B×h×T×d_h) and merge (→ B×T×d), for h = 4 heads."""
    ax = _canvas(ax, 7.0, 4.3)
    top, h = 2.55, 1.0
    _stripes(ax, 0.25, top, 1.0, h, HEADS)
    _text(ax, 0.75, top - 0.22, r"$x$: $B \times T \times d$")
    _text(ax, 0.75, top + h + 0.18, r"$d = h \cdot d_h$")
    _text(ax, 0.12, top + h / 2, "$T$", rotation=90)
    _arrow(ax, (1.4, top + 0.5), (2.45, top + 0.5))
    _text(ax, 1.92, top + 1.05, "$W_q, W_k, W_v$\nthen view as\n$(B, T, h, d_h)$,\ntranspose(1, 2)",
          size=FONT_SIZE)
    _cards(ax, 2.6, top, 0.3, h, HEADS)
    _text(ax, 3.22, top - 0.22, r"$Q, K, V$: $B \times h \times T \times d_h$")
    _arrow(ax, (3.95, top + 0.5), (5.0, top + 0.5))
    _text(ax, 4.47, top + 1.05, "each head\nattends on\nits own",
          size=FONT_SIZE)
    _text(ax, 4.47, top + 0.2, r"softmax$\left(\frac{QK^\top}{\sqrt{d_h}}\right)V$")
    _cards(ax, 5.15, top, 0.3, h, HEADS)
    _text(ax, 5.77, top - 0.22, r"heads: $B \times h \times T \times d_h$")
    # merge: back down and to the left
    bottom = 0.55
    ax.plot([5.95, 5.95], [top - 0.4, bottom + 1.25], color=INK, lw=1.0)
    _arrow(ax, (5.95, bottom + 1.25), (5.95, bottom + 1.1))
    _text(ax, 5.85, 1.9, "transpose(1, 2),\nreshape $(B, T, d)$", ha="right", size=FONT_SIZE)
    _stripes(ax, 5.45, bottom, 1.0, h, HEADS)
    _text(ax, 5.95, bottom - 0.22, r"concatenated: $B \times T \times d$")
    _arrow(ax, (5.3, bottom + 0.5), (4.25, bottom + 0.5))
    _text(ax, 4.77, bottom + 0.72, "$W_o$ mixes\nthe heads")
    _stripes(ax, 3.1, bottom, 1.0, h, ["#8a8a8a"] * 4)
    _text(ax, 3.6, bottom - 0.22, r"output: $B \times T \times d$")
    _text(ax, 1.45, bottom + 0.5, "Reshaping moves no numbers:\nhead $i$ owns columns\n"
          r"$i\,d_h$ to $(i+1)\,d_h - 1$ of $Q$, $K$, $V$", size=FONT_SIZE)
    return ax.figure


def draw_lora(ax: Axes | None = None) -> Figure:
    """LoRA's update: the frozen W plus (alpha/r)·B·A, with the shapes and what trains."""
    ax = _canvas(ax, 7.0, 3.6)
    y0, s, r = 1.2, 1.6, 0.28  # bottom of the matrices, d_out = d_in drawn as s, the rank drawn as r
    ax.add_patch(Rectangle((0.3, y0), s, s, facecolor=FROZEN, edgecolor=INK))
    _text(ax, 0.3 + s / 2, y0 + s / 2, "$W$\nfrozen")
    _text(ax, 0.3 + s / 2, y0 - 0.25, r"$d_{out} \times d_{in}$")
    _text(ax, 2.2, y0 + s / 2, "+", size=14)
    _text(ax, 2.75, y0 + s / 2, r"$\dfrac{\alpha}{r}$", size=12)
    bx = 3.25
    ax.add_patch(Rectangle((bx, y0), r, s, facecolor=TRAINED, edgecolor=METHOD_COLOURS["lora"], lw=1.5))
    _text(ax, bx + r / 2, y0 + s / 2, "$B$")
    _text(ax, bx + r / 2, y0 - 0.25, r"$d_{out} \times r$")
    _text(ax, bx + r / 2, y0 - 0.55, "zeros at init")
    _text(ax, bx + r + 0.2, y0 + s / 2, r"$\cdot$", size=14)
    ax_ = bx + r + 0.4
    ax.add_patch(Rectangle((ax_, y0 + s - r), s, r, facecolor=TRAINED, edgecolor=METHOD_COLOURS["lora"],
                           lw=1.5))
    _text(ax, ax_ + s / 2, y0 + s - r / 2, "$A$")
    _text(ax, ax_ + s / 2, y0 + s - r - 0.25, r"$r \times d_{in}$")
    _text(ax, ax_ + s / 2, y0 + s - r - 0.55, "random at init")
    _text(ax, 3.5, y0 + s + 0.5, r"$W' = W + \frac{\alpha}{r}\,B A$  ($r \ll d_{in}, d_{out}$)", size=11)
    _text(ax, 0.3, 0.32, r"forward: $h = W x + \frac{\alpha}{r}\,B (A x)$;  trains $r\,(d_{in} + d_{out})$"
          r" numbers instead of $d_{in}\,d_{out}$", ha="left")
    _text(ax, 0.3, 0.05, "$B = 0$ at init, so training starts from the pretrained model; afterwards "
          "$W'$ can be merged (no extra cost)", ha="left", va="bottom")
    return ax.figure


def draw_pipeline(ax: Axes | None = None) -> Figure:
    """The three stages: pre-train on raw text, fine-tune on a labelled task, infer on new inputs."""
    ax = _canvas(ax, 7.0, 2.5)
    w, h, y = 1.8, 1.75, 0.2
    stages = [
        (0.1, "1. pre-train", "raw text, no labels\nmasked-language\nmodelling\nall weights train", FROZEN),
        (2.6, "2. fine-tune",
         "a labelled task\nfull: all weights\ndelta: a small $\\delta$,\nbackbone frozen", TRAINED),
        (5.1, "3. infer", "new inputs\n$\\theta_0 + \\delta$ + head\n(LoRA merged)\nno gradients", NEUTRAL),
    ]
    for x, title, body, face in stages:
        _box(ax, x, y, w, h, face=face)
        _text(ax, x + w / 2, y + h - 0.2, title, size=10, weight="bold")
        _text(ax, x + w / 2, y + h / 2 - 0.15, body)
    for x, label in ((1.9, "$\\theta_0$"), (4.4, "$\\theta_0$, $\\delta$,\nhead")):
        _arrow(ax, (x, y + h / 2), (x + 0.7, y + h / 2))
        _text(ax, x + 0.35, y + h / 2 + 0.08, label, va="bottom")
    _text(ax, 3.5, y + h + 0.25, "each stage hands its weights on to the next", style="italic")
    return ax.figure


# The official training-split sizes of the course's three tasks (book/tools.md, tests/test_data.py).
TASK_SIZES = {"SST-2": 67_349, "CoNLL-2003": 14_041, "SQuAD": 87_599}


def draw_multitask(ax: Axes | None = None) -> Figure:
    """Multi-task training: a sampler picks each batch's task; shared backbone and delta, a head per task."""
    ax = _canvas(ax, 7.0, 4.4)
    tasks = list(TASK_SIZES)
    ys = [3.3, 2.05, 0.8]
    heads = ["sentence label\n(CLS pooled)", "a tag per token", "start and end\nper token"]
    for task, y in zip(tasks, ys, strict=True):
        _box(ax, 0.1, y, 1.15, 0.55, f"{task}\n$n$ = {TASK_SIZES[task]:,}", face=NEUTRAL)
        _arrow(ax, (1.25, y + 0.27), (1.55, 2.3))
    # the sampler, with the probabilities it gives
    _box(ax, 1.55, 0.25, 2.2, 3.85, face="white")
    _text(ax, 2.65, 3.83, "sampler", size=10, weight="bold")
    _text(ax, 2.65, 3.47, "one task per batch,\n$p_i \\propto n_i^{1/\\tau}$")
    strategies = [("proportional", 1.0, "$\\tau$=1"), ("temperature", 2.0, "$\\tau$=2"),
                  ("round_robin", 2.0, "$\\tau$=∞")]
    bar_w, base, height = 0.13, 0.75, 2.0
    for k, (strategy, temperature, label) in enumerate(strategies):
        probs = sampling_probabilities(list(TASK_SIZES.values()), strategy, temperature)
        left = 1.75 + k * 0.66
        for j, p in enumerate(probs):
            ax.add_patch(Rectangle((left + j * bar_w, base), bar_w, height * p, facecolor=HEADS[j],
                                   edgecolor="white", lw=0.5))
        _text(ax, left + 1.5 * bar_w, base - 0.2, label)
    ax.plot([1.7, 3.65], [base, base], color=INK, lw=0.8)
    _text(ax, 2.65, 0.38, "share of batches")
    for j, task in enumerate(tasks):  # legend of the bars
        ax.add_patch(Rectangle((1.7 + j * 0.69, 2.95), 0.12, 0.12, facecolor=HEADS[j]))
        _text(ax, 1.85 + j * 0.69, 3.0, task.split("-")[0], ha="left")
    # the model
    _arrow(ax, (3.75, 2.3), (4.05, 2.3))
    _box(ax, 4.05, 0.7, 1.25, 3.2, face=FROZEN)
    _text(ax, 4.67, 2.75, "shared\nencoder\n$\\theta_0$\n(frozen)")
    _box(ax, 4.2, 0.9, 0.95, 0.9, "shared\n$\\delta$\n(trained)", face=TRAINED, edge=METHOD_COLOURS["lora"])
    for y, head in zip(ys, heads, strict=True):
        _arrow(ax, (5.3, 2.3), (5.5, y + 0.27))
        _box(ax, 5.5, y, 1.42, 0.55, head, face=TRAINED)
    _text(ax, 6.21, 4.15, "one head per task", size=FONT_SIZE)
    _text(ax, 5.5, 0.32, "the batch's loss trains\n$\\delta$ and its task's head")
    return ax.figure


# An example for the QA figure: one short SQuAD-style paragraph, its question and made-up logits.
_QA_CONTEXT = ("The tower was designed by Gustave Eiffel 's company and finished in March 1889 , in time for "
               "the World 's Fair in Paris")


def _qa_logits(words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Illustrative start and end logits that favour the answer, with a near-miss."""
    start, end = np.full(len(words), -2.0), np.full(len(words), -2.0)
    a = words.index("March")
    start[a], end[a + 1] = 4.0, 4.5
    start[a + 1], end[a] = 2.5, 1.0  # "1889" alone, "March" alone: close runners-up
    for decoy in (w for w in ("Eiffel", "Paris") if w in words):  # a name the question does not ask for
        start[words.index(decoy)], end[words.index(decoy)] = 1.5, 2.0
    return start, end


def draw_qa_windows(ax: Axes | None = None) -> Figure:
    """QA: overlapping windows over a long context (stride = overlap), then the best start-end span."""
    ax = _canvas(ax, 7.0, 5.0)
    words = _QA_CONTEXT.split()
    n, cell, x0 = len(words), 0.22, 0.2
    window, overlap = 10, 3  # context tokens per window, tokens shared by neighbours (the "stride")
    step = window - overlap
    starts = list(range(0, max(n - overlap, 1), step))
    # the context as a row of token cells
    y_ctx = 4.35
    _text(ax, x0, 4.78, "context: one token per cell, too long for one window (answer in green)", ha="left")
    answer = range(words.index("March"), words.index("March") + 2)  # the gold answer, "March 1889"
    for i in range(n):
        face = METHOD_COLOURS["lora"] if i in answer else NEUTRAL
        ax.add_patch(Rectangle((x0 + i * cell, y_ctx), cell, 0.22, facecolor=face, edgecolor=INK, lw=0.6))
    # the windows as bars, each [CLS] question [SEP] chunk [SEP]
    for k, s in enumerate(starts):
        e = min(s + window, n)
        y = 3.8 - k * 0.38
        ax.add_patch(Rectangle((x0 + s * cell, y), (e - s) * cell, 0.24, facecolor=HEADS[k % 4], alpha=0.8,
                               edgecolor=INK, lw=0.6))
        _text(ax, x0 + e * cell + 0.08, y + 0.12, f"window {k + 1}", ha="left")
        if k:
            ax.add_patch(Rectangle((x0 + s * cell, y + 0.24), overlap * cell, 3.8 - (k - 1) * 0.38 - y - 0.24,
                                   facecolor="none", edgecolor=INK, hatch="////", lw=0))
    last_y = 3.8 - (len(starts) - 1) * 0.38
    _text(ax, x0, last_y - 0.32, "each window = [CLS] question [SEP] chunk [SEP];  hatched: the overlap "
          "(the tokenizer's stride),\nso an answer cut by one window's edge is whole in the next", ha="left",
          va="top")
    # span decoding on the window that holds the answer
    a = words.index("March")
    k = next(k for k, s in enumerate(starts) if s <= a and a + 1 < s + window)
    s0, e0 = starts[k], min(starts[k] + window, n)
    chunk = words[s0:e0]
    start, end = _qa_logits(chunk)
    offsets, pos = [], 0
    text = " ".join(chunk)
    for word in chunk:
        offsets.append((pos, pos + len(word)))
        pos += len(word) + 1
    best = decode_spans(text, [start], [end], [offsets], n_best=3, max_answer_length=5)[0]
    b_s = next(i for i, (c0, _) in enumerate(offsets) if c0 == best["char_start"])
    b_e = next(i for i, (_, c1) in enumerate(offsets) if c1 == best["char_end"])
    wcell = 0.6
    xs = 0.55 + np.arange(len(chunk)) * wcell
    for row, (logits, label, chosen) in enumerate(((start, "start", b_s), (end, "end", b_e))):
        base = 1.3 - row * 0.62
        _text(ax, 0.05, base + 0.2, label, ha="left")
        for i, v in enumerate(logits):
            height = 0.05 + 0.07 * (v + 2.0)
            colour = METHOD_COLOURS["lora"] if i == chosen else "#9a9a9a"
            ax.add_patch(Rectangle((xs[i], base), wcell * 0.7, height, facecolor=colour))
    for i, word in enumerate(chunk):
        _text(ax, xs[i] + wcell * 0.35, 0.38, word, size=FONT_SIZE, rotation=0)
    _text(ax, 0.05, 1.93, f"window {k + 1}'s logits (illustrative): the best span maximises start[$s$] + "
          "end[$e$]\nwith $s \\leq e$, both in the context, at most max_answer_length tokens", ha="left",
          va="bottom")
    _text(ax, 0.05, 0.08, f"best span: \"{best['text']}\"; over all windows the best-scoring span wins",
          ha="left")
    return ax.figure


def text_problems(fig: Figure) -> list[str]:
    """Texts of ``fig`` that overlap each other, stick out of the figure or are smaller than FONT_SIZE."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    boxes = [Text.get_window_extent(t, renderer) for t in texts]  # an annotation's text, not its arrow
    problems = [f"{t.get_text()!r} is {t.get_fontsize():g} pt, below {FONT_SIZE}"
                for t in texts if t.get_fontsize() < FONT_SIZE]
    problems += [f"{t.get_text()!r} sticks out of the figure" for t, b in zip(texts, boxes, strict=True)
                 if not (b.x0 >= fig.bbox.x0 and b.y0 >= fig.bbox.y0 and b.x1 <= fig.bbox.x1
                         and b.y1 <= fig.bbox.y1)]
    for i, (t, b) in enumerate(zip(texts, boxes, strict=True)):
        for u, c in zip(texts[i + 1:], boxes[i + 1:], strict=True):
            if min(b.x1, c.x1) - max(b.x0, c.x0) > 0.5 and min(b.y1, c.y1) - max(b.y0, c.y0) > 0.5:
                problems.append(f"{t.get_text()!r} overlaps {u.get_text()!r}")
    return problems


FIGURES: dict[str, Callable[..., Figure]] = {
    "encoder_layer": draw_encoder_layer,
    "multihead": draw_multihead,
    "lora": draw_lora,
    "pipeline": draw_pipeline,
    "multitask": draw_multitask,
    "qa_windows": draw_qa_windows,
}
