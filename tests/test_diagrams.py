"""The diagrams: legible at the book's column, no text on text, committed SVGs equal a fresh render, and
every diagram is used in the book."""

import importlib.util
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from hft_lessons.diagrams import FIGURES, FONT_SIZE, MAX_WIDTH_IN, text_problems  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_figures", ROOT / "tools" / "make_figures.py")
make_figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_figures)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("name", list(FIGURES))
def test_a_diagram_fits_the_column_and_its_texts_do_not_collide(name):
    draw = FIGURES[name]
    assert draw.__name__ == f"draw_{name}"
    assert draw.__doc__ and "\n" not in draw.__doc__.strip(), "one-line docstring"
    fig = draw()
    assert isinstance(fig, Figure)
    width, height = fig.get_size_inches()
    assert width <= MAX_WIDTH_IN and height <= 7.5, (width, height)
    assert text_problems(fig) == []


@pytest.mark.parametrize("name", list(FIGURES))
def test_a_diagram_draws_into_a_given_axes(name):
    fig, ax = plt.subplots(figsize=(7, 7))
    assert FIGURES[name](ax) is fig
    assert len(ax.texts) >= 3 and (ax.patches or ax.lines)


@pytest.mark.parametrize("name", list(FIGURES))
def test_the_committed_svg_is_a_fresh_render(name):
    path = ROOT / "book" / "figures" / f"{name}.svg"
    assert path.exists(), f"{path.name} missing: run python tools/make_figures.py"
    fresh = make_figures.render(name)
    assert fresh == make_figures.render(name), "two renders differ: the SVG is not deterministic"
    assert path.read_bytes() == fresh, f"{path.name} is stale: run python tools/make_figures.py"
    assert b"<dc:date>" not in fresh


def test_an_unknown_figure_is_one_error_line():
    with pytest.raises(ValueError, match=r"unknown figure 'nope'; allowed: encoder_layer, "):
        make_figures.render("nope")


def test_the_text_check_finds_collisions_small_text_and_text_outside():
    fig = plt.figure(figsize=(3, 2))
    fig.text(0.1, 0.5, "two texts on the same spot", fontsize=FONT_SIZE)
    fig.text(0.12, 0.5, "another text here", fontsize=FONT_SIZE)
    fig.text(0.1, 0.1, "tiny", fontsize=FONT_SIZE - 2)
    fig.text(0.9, 0.9, "this runs off the right edge", fontsize=FONT_SIZE)
    problems = text_problems(fig)
    assert "'two texts on the same spot' overlaps 'another text here'" in problems
    assert f"'tiny' is {FONT_SIZE - 2} pt, below {FONT_SIZE}" in problems
    assert "'this runs off the right edge' sticks out of the figure" in problems
    assert len(problems) == 3, problems


def test_every_diagram_is_used_in_the_book_with_a_caption_and_alt_text():
    used = {}
    for page in sorted((ROOT / "book").glob("*.md")):
        for block in re.findall(r"```\{figure\} figures/(\w+)\.svg\n(.*?)```", page.read_text(), re.S):
            used[block[0]] = block[1]
    assert set(FIGURES) <= set(used), f"not in any book chapter: {sorted(set(FIGURES) - set(used))}"
    for name, body in used.items():
        assert re.search(r"^:alt: \S", body, re.M), f"figures/{name}.svg has no :alt: text"
        caption = [line for line in body.splitlines() if line and not line.startswith(":")]
        assert caption, f"figures/{name}.svg has no caption"
