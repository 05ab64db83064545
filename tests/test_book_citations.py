"""The book cites through references.bib: no plain author-year citations, no unknown keys, full entries."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = sorted((ROOT / "book").glob("*.md"))
BIB = (ROOT / "references.bib").read_text(encoding="utf-8")
# "Houlsby et al. (2019)", "(Houlsby et al., 2019)", "Li & Liang (2021)", "Caruana, 1997"
AUTHOR_YEAR = re.compile(
    r"\b[A-Z][a-z]+(?:\s+et\s+al\.|\s+(?:&|and)\s+[A-Z][A-Za-z ]+?)?,?\s+\(?(?:19|20)\d\d[a-z]?\b"
)
ENTRY = re.compile(r"@\w+\{([^,]+),(.*?)\n\}", re.S)


def _entries() -> dict[str, str]:
    return {key.strip(): body for key, body in ENTRY.findall(BIB)}


def test_no_author_year_citation_in_the_book():
    hits = []
    for path in BOOK:
        source = path.read_text(encoding="utf-8")
        for match in AUTHOR_YEAR.finditer(source):  # the whole page: a citation may break across lines
            text = " ".join(match.group(0).split())
            if "et al" in text or "&" in text or " and " in text or "(" in text or "," in text:
                hits.append(f"{path.name}:{source.count(chr(10), 0, match.start()) + 1}: {text}")
    assert not hits, "author-year citations outside the bibliography (use {cite}):\n" + "\n".join(hits)


def test_the_pattern_finds_author_year_citations():
    for text in ("Houlsby et al. (2019)", "(Houlsby et al., 2019)", "Li & Liang (2021)", "(Caruana, 1997)",
                 "Howard and Ruder 2018", "Zhang\net al., 2023"):
        assert AUTHOR_YEAR.search(text), text
    assert not AUTHOR_YEAR.search("{cite:t}`houlsby2019adapters`")


def test_every_cited_key_is_in_the_bibliography():
    keys = _entries()
    cited = set()
    for path in BOOK:
        for group in re.findall(r"\{cite(?::[tp])?\}`([^`]+)`", path.read_text(encoding="utf-8")):
            cited.update(k.strip() for k in group.split(","))
    missing = sorted(cited - set(keys))
    assert cited and not missing, f"cited but not in references.bib: {missing}"


def test_every_entry_has_authors_year_venue_and_link():
    entries = _entries()
    assert len(entries) == BIB.count("\n@") + BIB.startswith("@"), "duplicate or unparsed entries"
    for key, body in entries.items():
        fields = set(re.findall(r"^\s*(\w+)\s*=", body, re.M))
        assert {"author", "title", "year", "url"} <= fields, (
            f"{key}: missing {({'author', 'year', 'url'} - fields)}"
        )
        assert fields & {"booktitle", "journal", "howpublished"}, f"{key}: no venue"


def _cited(text: str) -> set[str]:
    return {k.strip() for g in re.findall(r"\{cite(?::[tp])?\}`([^`]+)`", text) for k in g.split(",")}


def test_every_work_a_chapter_cites_is_in_its_reading_list():
    for path in BOOK:
        text = path.read_text(encoding="utf-8")
        if "## Further reading" not in text:
            continue
        body, reading = text.split("## Further reading", 1)
        missing = sorted(_cited(body) - _cited(reading))
        assert not missing, f"{path.name}: cited but not in its Further reading: {missing}"


def test_the_benchmarks_page_shows_the_results_csv():
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_table", ROOT / "tools" / "benchmark_table.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rows = tool.load()
    page = (ROOT / "book" / "benchmarks.md").read_text(encoding="utf-8")
    assert rows and tool.table(rows) in page, "run python tools/benchmark_table.py"
    runs = tool.load_seeds()
    assert runs and tool.seeds_table(runs) in page, "run python tools/benchmark_table.py"
    assert tool.render(page, rows, runs) == page
    first = rows[0]
    changed = [dict(first, accuracy="0.1234")] + rows[1:]
    assert tool.table(changed) not in page, "the table must follow the CSV"
