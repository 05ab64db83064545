"""Committed notebooks are executed once, top to bottom, cleanly; the book's table of contents is sound."""

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LOCAL_PATH = re.compile(r"/(work|root|tmp|home|Users)/[A-Za-z0-9_.-]+/")


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executed_once_in_order_without_errors(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    counts = [c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not run once top to bottom: {counts}"
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name}: cell {i} stored an error"
            match = LOCAL_PATH.search(json.dumps(out))
            assert match is None, f"{path.name}: cell {i} output shows a local path {match.group(0)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_chapter_pattern(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = "".join(nb["cells"][0]["source"])
    assert first.startswith("# "), "the first cell is the title"
    assert "colab.research.google.com/github/" in first and path.name in first, "Colab badge for this file"
    assert "Learning goals" in first and "Time" in first
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    setup = "".join(code[0]["source"])
    assert "google.colab" in setup and "setup(" in setup, "the first code cell is the standard setup cell"
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "## Summary" in text and "## Exercises" in text
    assert ":class: dropdown" in text or "<details>" in text, "solutions hidden in a dropdown or <details>"
    assert set(nb["metadata"]) <= {"kernelspec", "language_info", "colab", "accelerator"}, "clean metadata"


def _toc_files(node):
    if isinstance(node, dict):
        if "file" in node:
            yield node["file"]
        if "root" in node:
            yield node["root"]
        for value in node.values():
            yield from _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


def test_toc_lists_only_existing_files_and_every_notebook():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["format"] == "jb-book"
    files = list(_toc_files(toc))
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in ("", ".md", ".ipynb")), (
            f"_toc.yml lists missing {f}"
        )
    listed = {Path(f).with_suffix("").as_posix() for f in files}
    for nb in NOTEBOOKS:
        assert nb.relative_to(ROOT).with_suffix("").as_posix() in listed, f"{nb.name} is not in _toc.yml"


def _title(path: Path) -> str:
    return "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"]).splitlines()[0]


def test_chapters_are_numbered_in_reading_order():
    files = list(_toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text())))
    numbers = [int(m.group(1)) for f in files if (m := re.match(r"notebooks/(\d\d)_", f))]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
    assert not [f for f in files if re.match(r"book/\d", f)], "prose parts carry no numbers"
    for nb in NOTEBOOKS + sorted((ROOT / "notebooks" / "drafts").glob("*.ipynb")):
        number = int(nb.name[:2])
        if number:
            assert _title(nb).startswith(f"# {number}. "), f"{nb.name}: title {_title(nb)!r}"


# "chapter 6", "chapters 11 and 13", "chapters 5–9"; not "chapter 4, 72 s" (a list of times)
CHAPTER_REF = re.compile(r"\b[Cc]hapters? (\d{1,2}(?:(?:, | and | or |–)\d{1,2}(?!\d)(?! ?(?:s\b|%|min)))*)"
                         r"\b")


def test_chapter_references_name_chapters_that_exist():
    chapters = {int(p.name[:2]) for p in NOTEBOOKS + sorted((ROOT / "notebooks" / "drafts").glob("*.ipynb"))}
    texts = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
             for p in [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]}
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        texts[nb.name] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    wrong = [f"{name}: {m.group(0)!r}" for name, text in texts.items() for m in CHAPTER_REF.finditer(text)
             if any(int(n) not in chapters for n in re.findall(r"\d+", m.group(1)))]
    assert not wrong, wrong


def test_config_keeps_stored_outputs_and_colab():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert "colab_url" in config["launch_buttons"]
    assert config["repository"]["url"].startswith("https://github.com/")


def _pin_tool():
    spec = importlib.util.spec_from_file_location("pin_colab", ROOT / "tools" / "pin_colab.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_readme_links_every_notebook_to_colab_at_the_books_tag():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ref = _pin_tool().book_ref()
    for nb in NOTEBOOKS:
        assert f"blob/{ref}/notebooks/{nb.name}" in readme, f"README has no Colab badge for {nb.name}"


def test_colab_opens_and_installs_the_books_version():
    """Every badge, every setup cell's install and the book's launch branch name the tag of this version."""
    tool = _pin_tool()
    ref = tool.book_ref()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'\nversion = "{ref[1:]}"\n' in pyproject, "pyproject.toml and hft_lessons.__version__ differ"
    assert tool.unpinned(ref) == []
    for nb in NOTEBOOKS:
        setup = "".join(json.loads(nb.read_text(encoding="utf-8"))["cells"][1]["source"])
        if "google.colab" in setup:
            assert f"hybrid-finetuning-from-scratch@{ref}" in setup, nb.name
    # and the tool finds an unpinned install
    assert tool.pin_text('"git+https://github.com/hft-course/hybrid-finetuning-from-scratch"', ref).endswith(
        f'@{ref}"')


def test_no_real_dataset_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [f for f in tracked if f.endswith((".arrow", ".parquet", ".safetensors", ".bin"))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_markers_are_cell_tags_not_comments_a_reader_sees(path):
    import nbformat

    spec = importlib.util.spec_from_file_location("nbval_tags", ROOT / "tools" / "nbval_tags.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.markers_left(nbformat.read(path, as_version=4)) == 0, f"run tools/nbval_tags.py {path.name}"
