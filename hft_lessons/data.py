"""Offline-first task loading: a local folder, then the Hugging Face Hub, then the shipped samples."""

from __future__ import annotations

import json
import os
import socket
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

__all__ = [
    "TASKS",
    "FEATURES",
    "NER_LABELS",
    "load_task",
    "load_samples",
    "hub_reachable",
    "subset",
]

TASKS = ("sst2", "conll2003", "squad")

POS_TAGS = ['"', "''", "#", "$", "(", ")", ",", ".", ":", "``", "CC", "CD", "DT", "EX", "FW", "IN",
            "JJ", "JJR", "JJS", "LS", "MD", "NN", "NNP", "NNPS", "NNS", "NN|SYM", "PDT", "POS", "PRP",
            "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO", "UH", "VB", "VBD", "VBG", "VBN", "VBP",
            "VBZ", "WDT", "WP", "WP$", "WRB"]  # fmt: skip
CHUNK_TAGS = ["O", "B-ADJP", "I-ADJP", "B-ADVP", "I-ADVP", "B-CONJP", "I-CONJP", "B-INTJ", "I-INTJ",
              "B-LST", "I-LST", "B-NP", "I-NP", "B-PP", "I-PP", "B-PRT", "I-PRT", "B-SBAR", "I-SBAR",
              "B-UCP", "I-UCP", "B-VP", "I-VP"]  # fmt: skip
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]

FEATURES: dict[str, Features] = {
    "sst2": Features(
        {
            "sentence": Value("string"),
            "label": ClassLabel(names=["negative", "positive"]),
            "idx": Value("int32"),
        }
    ),
    "conll2003": Features(
        {
            "id": Value("string"),
            "tokens": List(Value("string")),
            "pos_tags": List(ClassLabel(names=POS_TAGS)),
            "chunk_tags": List(ClassLabel(names=CHUNK_TAGS)),
            "ner_tags": List(ClassLabel(names=NER_LABELS)),
        }
    ),
    "squad": Features(
        {
            "id": Value("string"),
            "title": Value("string"),
            "context": Value("string"),
            "question": Value("string"),
            "answers": {"text": List(Value("string")), "answer_start": List(Value("int32"))},
        }
    ),
}

# Hub repositories; CoNLL-2003 comes from its parquet export (datasets>=4 refuses loading scripts).
HUB_SOURCES: dict[str, dict[str, str | None]] = {
    "sst2": {"path": "nyu-mll/glue", "name": "sst2", "revision": None},
    "conll2003": {"path": "eriktks/conll2003", "name": None, "revision": "refs/convert/parquet"},
    "squad": {"path": "rajpurkar/squad", "name": None, "revision": None},
}


def _check_task(name: str) -> None:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")


def _offline_flag() -> bool:
    truthy = {"1", "true", "yes", "on"}
    return any(os.environ.get(v, "").lower() in truthy for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hub can be reached: offline flags unset and a TCP connection opens within ``timeout``."""
    if _offline_flag():
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def load_samples(name: str) -> DatasetDict:
    """Load the small original samples shipped inside the package, with the Hub's features."""
    _check_task(name)
    text = resources.files("hft_lessons").joinpath("samples", f"{name}.json").read_text(encoding="utf-8")
    raw = json.loads(text)
    return DatasetDict(
        {split: Dataset.from_list(rows, features=FEATURES[name]) for split, rows in raw.items()}
    )


def _load_local(name: str, root: Path) -> DatasetDict:
    from datasets import load_from_disk

    folder = root / name
    try:
        loaded = load_from_disk(str(folder))
    except Exception as err:  # a broken folder should say so in one line
        raise ValueError(f"{folder} is not a datasets save_to_disk folder for {name!r}: {err}") from None
    if not isinstance(loaded, DatasetDict):
        raise ValueError(f"{folder} holds a single Dataset; expected a DatasetDict with train/validation")
    return loaded


def _load_hub(name: str) -> DatasetDict:
    from datasets import load_dataset

    src = HUB_SOURCES[name]
    ds = load_dataset(src["path"], src["name"], revision=src["revision"])
    feats = FEATURES[name]
    return DatasetDict(
        {split: d.select_columns(list(feats)).cast(feats) for split, d in ds.items()}
    )


def load_task(name: str, data_dir: str | os.PathLike | None = None, verbose: bool = True) -> DatasetDict:
    """Load ``sst2``, ``conll2003`` or ``squad``: from ``data_dir``/$HFT_DATA_DIR, else the Hub, else samples."""
    _check_task(name)
    data_dir = data_dir or os.environ.get("HFT_DATA_DIR") or None
    say = print if verbose else (lambda *_: None)
    if data_dir is not None and (Path(data_dir) / name).exists():
        ds = _load_local(name, Path(data_dir))
        say(f"[hft_lessons] {name}: loaded from the local data folder (.../{name}) ({_rows(ds)})")
        return ds
    if hub_reachable():
        try:
            ds = _load_hub(name)
            say(f"[hft_lessons] {name}: loaded from the Hugging Face Hub ({_rows(ds)})")
            return ds
        except Exception as err:  # noqa: BLE001 - any Hub failure falls back to the samples
            reason = f"Hub failed ({type(err).__name__})"
    else:
        reason = "Hub unreachable or HF_HUB_OFFLINE set"
    ds = load_samples(name)
    say(f"[hft_lessons] {name}: {reason}; using the small samples shipped with hft_lessons ({_rows(ds)})")
    return ds


def _rows(ds: DatasetDict) -> str:
    return ", ".join(f"{split} {len(d):,}" for split, d in ds.items())


def subset(ds: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """A seeded random subset of ``n`` rows (all rows when ``n`` is None or too large)."""
    if n is None or n >= len(ds):
        return ds
    return ds.shuffle(seed=seed).select(range(n))
