"""Strip noisy metadata from executed notebooks and refuse local machine paths in their outputs."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

LOCAL_PATH = re.compile(r"/(work|root|tmp|home|Users)/[A-Za-z0-9_.-]+/")
KEEP_NB_METADATA = ("kernelspec", "language_info", "colab", "accelerator")
# nbval and Jupyter Book read "tags" (hide-input hides a solution); JupyterLab collapses a cell with
# "jupyter": {"source_hidden": true}; Colab shows a "cellView": "form" cell as its #@title only.
KEEP_CELL_METADATA = ("tags", "jupyter", "cellView")


def save_notebook(path: Path, nb: dict) -> None:
    """Write a notebook as the repository stores it: one-space indent, UTF-8 as is, a final newline."""
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def clean(path: Path) -> list[str]:
    """Clean one notebook in place; return the problems found in its outputs."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb["metadata"] = {k: v for k, v in nb.get("metadata", {}).items() if k in KEEP_NB_METADATA}
    nb["metadata"].setdefault(
        "kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"}
    )
    if "language_info" in nb["metadata"]:
        nb["metadata"]["language_info"] = {"name": "python"}
    problems = []
    for i, cell in enumerate(nb["cells"]):
        meta = cell.get("metadata", {})
        cell["metadata"] = {k: v for k, v in meta.items() if k in KEEP_CELL_METADATA}
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"{path}: cell {i} has an error output")
            out.pop("metadata", None) if out.get("output_type") == "stream" else None
            text = json.dumps(out)
            if LOCAL_PATH.search(text):
                problems.append(
                    f"{path}: cell {i} output shows a local path: {LOCAL_PATH.search(text).group(0)}"
                )
    save_notebook(path, nb)
    return problems


def main(argv: list[str]) -> int:
    """Clean every notebook named on the command line; exit 1 if any output shows a problem."""
    problems = [p for arg in argv for p in clean(Path(arg))]
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
