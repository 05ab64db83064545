"""Pin what Colab opens and installs to the book's version: the tag ``v<hft_lessons.__version__>``.

    python tools/pin_colab.py            # rewrite the chapters, README (via make_toc) and _config.yml
    python tools/pin_colab.py --check    # exit 1, naming the files, if any place is not pinned

A chapter opened from the book's Colab badge is the notebook at the tag, and its setup cell installs the
package at the same tag, so a reader in Colab runs the code the book shows, not whatever ``main`` is that
day. Releasing (CONTRIBUTING.md): set the version in ``pyproject.toml`` and ``hft_lessons/__init__.py``, run
this script and ``tools/make_toc.py``, commit, tag ``v<version>``, push the tag, and build the published book
from it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/: clean_notebooks.save_notebook
from clean_notebooks import save_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REPO = "github.com/hft-course/hybrid-finetuning-from-scratch"
BADGE_LINK = re.compile(r"(colab\.research\.google\.com/github/hft-course/"
                        r"hybrid-finetuning-from-scratch/blob/)[^/\s)]+(/notebooks/)")
INSTALL = re.compile(r'"git\+https://github\.com/hft-course/hybrid-finetuning-from-scratch(@[^"\s]*)?"')
BRANCH = re.compile(r"^(  branch: ).*$", re.MULTILINE)


def book_ref() -> str:
    """The tag the book pins: ``v`` + the package version (read from the source, not an installed copy)."""
    text = (ROOT / "hft_lessons" / "__init__.py").read_text(encoding="utf-8")
    return "v" + re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)[1]


def pin_text(text: str, ref: str) -> str:
    """``text`` with every Colab badge link and setup-cell install pinned to ``ref``."""
    text = BADGE_LINK.sub(rf"\g<1>{ref}\g<2>", text)
    return INSTALL.sub(f'"git+https://{REPO}@{ref}"', text)


def cell_texts(path: Path) -> list[str]:
    """The source text of every cell of a notebook."""
    return ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]


def pin_notebook(path: Path, ref: str) -> bool:
    """Pin one notebook's markdown and setup cells in place; True if it changed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    changed = False
    for cell in nb["cells"]:
        old = "".join(cell["source"])
        new = pin_text(old, ref)
        if new != old:
            cell["source"] = new.splitlines(keepends=True)
            changed = True
    if changed:
        save_notebook(path, nb)
    return changed


def pin_config(path: Path, ref: str) -> bool:
    """Point _config.yml's repository branch (the book's launch buttons) at ``ref``; True if it changed."""
    old = path.read_text(encoding="utf-8")
    new = BRANCH.sub(rf"\g<1>{ref}", old, count=1)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old


def unpinned(ref: str) -> list[str]:
    """The files where a badge, an install or the launch branch is not pinned to ``ref``."""
    bad = [p.name for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
           if any(pin_text(t, ref) != t for t in cell_texts(p))]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if pin_text(readme, ref) != readme:
        bad.append("README.md")
    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    if BRANCH.sub(rf"\g<1>{ref}", config, count=1) != config:
        bad.append("_config.yml")
    return bad


def main(argv: list[str] | None = None) -> int:
    """Pin every place, or with --check only report the places that are not pinned."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, do not rewrite")
    args = parser.parse_args(argv)
    ref = book_ref()
    if args.check:
        bad = unpinned(ref)
        if bad:
            print(f"not pinned to {ref}: {', '.join(bad)} (run python tools/pin_colab.py)")
        return 1 if bad else 0
    chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    changed = [p.name for p in chapters if pin_notebook(p, ref)]
    if pin_config(ROOT / "_config.yml", ref):
        changed.append("_config.yml")
    print(f"pinned to {ref}: {', '.join(changed) or 'nothing to change'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
