"""Offline-first task loading: a local folder, then the Hugging Face Hub, then the shipped samples."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from .profiles import TASK_NAMES

__all__ = [
    "SST2_LABELS",
    "FEATURES",
    "NER_LABELS",
    "load_task",
    "load_samples",
    "hub_reachable",
    "check_task_data",
    "subset",
]

SST2_LABELS = ("negative", "positive")  # SST-2's label names, in label-id order

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
            "label": ClassLabel(names=list(SST2_LABELS)),
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
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}")


def _offline_flag() -> bool:
    truthy = {"1", "true", "yes", "on"}
    return any(os.environ.get(v, "").lower() in truthy for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


HUB_TIMEOUT = 8.0  # seconds the Hub gets to answer before the offline fallbacks are used


def hub_reachable(timeout: float = HUB_TIMEOUT) -> bool:
    """True when the Hub answers an HTTP request within ``timeout`` seconds (never with offline flags set).

    A server that accepts connections but never answers, or answers slowly, counts as unreachable: the whole
    probe, connection and reply, is bounded by ``timeout``. The answer is remembered per endpoint.
    """
    if _offline_flag():
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    if endpoint not in _PROBED:
        _PROBED[endpoint] = _probe(f"{endpoint}/api/models?limit=1", timeout)
    return _PROBED[endpoint]


_PROBED: dict[str, bool] = {}


def _probe(url: str, timeout: float) -> bool:
    """Whether ``url`` sends back an HTTP status line within ``timeout`` seconds in all."""
    import threading
    import urllib.error
    import urllib.request

    answered = threading.Event()

    def ask() -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 - the Hub's URL
                reply.read(1)
            answered.set()
        except urllib.error.HTTPError as err:  # the server answers, with an error status (still reachable)
            if err.code < 500:
                answered.set()
        except (OSError, ValueError):
            pass

    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    worker.join(timeout)
    return answered.is_set()


def load_samples(name: str) -> DatasetDict:
    """Load the small original samples shipped inside the package, with the Hub's features."""
    _check_task(name)
    text = resources.files("hft_lessons").joinpath("samples", f"{name}.json").read_text(encoding="utf-8")
    raw = json.loads(text)
    return DatasetDict(
        {split: Dataset.from_list(rows, features=FEATURES[name]) for split, rows in raw.items()}
    )


def _load_local(name: str, root: Path) -> DatasetDict:
    """A local ``save_to_disk`` folder, read into memory: nothing is ever written next to the user's data."""
    from datasets import load_from_disk

    folder = root / name
    try:  # in memory: later subsetting and tokenizing write no cache-*.arrow files into the data folder
        loaded = load_from_disk(str(folder), keep_in_memory=True)
    except Exception as err:  # noqa: BLE001 - a broken folder should say so in one line
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{folder} is not a datasets save_to_disk folder for {name!r}: {first}") from None
    if not isinstance(loaded, DatasetDict):
        raise ValueError(f"{folder} holds a single Dataset; expected a DatasetDict with train/validation")
    check_task_data(name, loaded, str(folder))
    return loaded


def check_task_data(name: str, ds: DatasetDict, where: str) -> None:
    """One ValueError line when ``ds`` lacks the task's columns or a train split, or has bad labels."""
    _check_task(name)
    if "train" not in ds:
        raise ValueError(f"{where} has no 'train' split (it has: {', '.join(ds) or 'none'})")
    feats = FEATURES[name]
    for split, d in ds.items():
        missing = [c for c in feats if c not in d.column_names]
        if missing:
            raise ValueError(f"{where} is not {name} data: split {split!r} lacks the column(s) "
                             f"{', '.join(missing)} (it has {', '.join(d.column_names)}); {name} needs "
                             f"{', '.join(feats)}")
    label_columns = {"sst2": ("label", 2), "conll2003": ("ner_tags", len(NER_LABELS))}
    if name not in label_columns:
        return
    column, n = label_columns[name]
    for split, d in ds.items():
        values = d.data.column(column)
        if name == "conll2003":
            values = values.combine_chunks().flatten()
        if len(values) == 0:
            continue
        import pyarrow.compute as pc

        low, high = pc.min(values).as_py(), pc.max(values).as_py()
        allowed_low = -1 if split == "test" else 0  # GLUE's test split carries label -1 (hidden labels)
        if low is None or low < allowed_low or high >= n:
            raise ValueError(f"{where}: split {split!r} has {column} values from {low} to {high}; "
                             f"{name} labels must be in 0..{n - 1}")


def _load_hub(name: str) -> DatasetDict:
    from datasets import load_dataset

    src = HUB_SOURCES[name]
    ds = load_dataset(src["path"], src["name"], revision=src["revision"])
    feats = FEATURES[name]
    return DatasetDict(
        {split: d.select_columns(list(feats)).cast(feats) for split, d in ds.items()}
    )


def load_task(name: str, data_dir: str | os.PathLike | None = None, verbose: bool = True) -> DatasetDict:
    """Load ``sst2``, ``conll2003`` or ``squad``: from ``data_dir``/$HFT_DATA_DIR, else the Hub, else samples.

    A data folder that was named (argument or $HFT_DATA_DIR) must hold the task: if it does not, this raises
    instead of quietly training on other data.
    """
    _check_task(name)
    source = "the data folder" if data_dir else "HFT_DATA_DIR"
    data_dir = data_dir or os.environ.get("HFT_DATA_DIR") or None
    say = print if verbose else (lambda *_: None)
    if data_dir is not None:
        root = Path(data_dir)
        if not (root / name).is_dir():
            raise ValueError(f"{source} {str(data_dir)!r} has no {name} data: looked for the save_to_disk "
                             f"folder {str(root / name)!r}; put it there, or name no data folder to use the "
                             "Hub or the shipped samples")
        ds = _load_local(name, root)
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
