"""tools/check_book_chromium.py: its pure parts (no browser needed), and its skip line without Chromium."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "check_book_chromium.py"
spec = importlib.util.spec_from_file_location("check_book_chromium", TOOL)
chk = importlib.util.module_from_spec(spec)
spec.loader.exec_module(chk)

TOC = yaml.safe_load("""
format: jb-book
root: book/intro
parts:
  - caption: "1. Start"
    chapters:
      - file: notebooks/00_start
      - file: book/01_background.md
        sections:
          - file: book/01a_detail
  - caption: "2. Code"
    chapters:
      - file: notebooks/01_attention.ipynb
      - file: notebooks/02_heads
""")


def test_toc_order_lists_root_parts_chapters_and_sections_in_reading_order_without_suffixes():
    assert chk.toc_order(TOC) == [
        "book/intro", "notebooks/00_start", "book/01_background", "book/01a_detail",
        "notebooks/01_attention", "notebooks/02_heads",
    ]


def test_the_repository_toc_parses_and_starts_at_its_root():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    docs = chk.toc_order(toc)
    assert docs[0] == toc["root"] and len(docs) == len(set(docs)) > 10
    assert all((ROOT / f"{d}.md").exists() or (ROOT / f"{d}.ipynb").exists() for d in docs)


def test_doc_of_maps_sidebar_links_to_documents_and_ignores_outside_links():
    root = "file:///x/_build/html"
    assert chk.doc_of(f"{root}/notebooks/02_heads.html#exercises", root) == "notebooks/02_heads"
    assert chk.doc_of(f"{root}/book/intro.html", root + "/") == "book/intro"
    assert chk.doc_of("https://example.org/book/intro.html", root) is None
    assert chk.doc_of(f"{root}/_images/fig.png", root) is None


def test_order_problems_accepts_the_toc_order_with_or_without_the_root_and_names_a_swap():
    docs = chk.toc_order(TOC)
    assert chk.order_problems(docs[1:], docs) == []
    assert chk.order_problems(docs, docs) == []
    swapped = [docs[1], docs[2], docs[3], docs[5], docs[4]]
    assert chk.order_problems(swapped, docs) == [
        "position 4: the sidebar has notebooks/02_heads, _toc.yml has notebooks/01_attention"
    ]
    assert chk.order_problems(docs[1:4], docs) == [
        "missing from the sidebar: notebooks/01_attention", "missing from the sidebar: notebooks/02_heads"
    ]


def test_numbering_problems_name_each_file_after_a_higher_number_in_its_folder():
    assert chk.numbering_problems(chk.toc_order(TOC)) == []
    today = ["book/02_core", "notebooks/03_pretraining", "book/04_maths", "notebooks/01_attention",
             "notebooks/02_heads", "notebooks/04_finetuning"]
    assert chk.numbering_problems(today) == [
        "notebooks/01_attention comes after notebooks/03_pretraining",
        "notebooks/02_heads comes after notebooks/03_pretraining",
    ]


def test_without_chromium_it_prints_one_skip_line_and_exits_0(tmp_path):
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path)}
    out = subprocess.run([sys.executable, str(TOOL)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0
    assert out.stdout.strip().splitlines() == [
        "skipped: no Chromium found (install chromium, or set $CHROMIUM to a Chromium binary)"
    ]
