"""load_task: local folder, Hub, shipped samples; features; errors; offline speed."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hft_lessons import data
from hft_lessons.data import FEATURES, load_samples, load_task
from hft_lessons.profiles import TASK_NAMES

REAL = Path(os.environ.get("HFT_DATA_DIR", "../shared/datasets"))
needs_real = pytest.mark.skipif(not (REAL / "sst2").exists(), reason="real datasets not available")


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HFT_DATA_DIR", raising=False)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_samples_have_hub_features_and_sizes(name, offline):
    ds = load_task(name)
    assert set(ds) == {"train", "validation"}
    for split in ds.values():
        assert split.features == FEATURES[name]
    n = len(ds["train"]) + len(ds["validation"])
    assert n >= {"sst2": 200, "conll2003": 150, "squad": 100}[name]


def test_sst2_samples_are_labelled_and_balanced(offline):
    train = load_samples("sst2")["train"]
    share = sum(train["label"]) / len(train)
    assert 0.4 < share < 0.6
    assert len(set(train["sentence"])) == len(train)


def test_conll_samples_are_consistent_iob2(offline):
    names = data.NER_LABELS
    for split in load_samples("conll2003").values():
        seen = set()
        for row in split:
            n = len(row["tokens"])
            assert n == len(row["pos_tags"]) == len(row["chunk_tags"]) == len(row["ner_tags"])
            prev = "O"
            for tag in (names[t] for t in row["ner_tags"]):
                if tag.startswith("I-"):
                    assert prev[2:] == tag[2:], f"bad IOB2 in {row['tokens']}"
                prev = tag
                if tag != "O":
                    seen.add(tag[2:])
        assert seen == {"PER", "ORG", "LOC", "MISC"}


def test_squad_sample_spans_are_exact(offline):
    ds = load_samples("squad")
    contexts = set()
    for split in ds.values():
        for row in split:
            contexts.add(row["context"])
            for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"], strict=True):
                assert row["context"][start : start + len(text)] == text
    assert len(set(ds["train"]["context"])) >= 20
    assert not set(ds["train"]["title"]) & set(ds["validation"]["title"])  # split by article


def test_offline_fallback_is_fast_and_says_so(offline, capsys):
    start = time.perf_counter()
    load_task("conll2003")
    assert time.perf_counter() - start < 10
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "samples shipped with hft_lessons" in out[0]


def test_unreachable_hub_falls_back_without_hanging(monkeypatch, capsys):
    """No offline flag, but the Hub host does not answer: a short probe, then the samples."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HFT_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    start = time.perf_counter()
    ds = load_task("sst2")
    assert time.perf_counter() - start < 10
    assert "Hub unreachable" in capsys.readouterr().out
    assert len(ds["train"]) >= 200


def test_hub_failure_falls_back(monkeypatch, capsys):
    monkeypatch.delenv("HFT_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "hub_reachable", lambda timeout=3.0: True)

    def broken(name):
        raise ConnectionError("boom")

    monkeypatch.setattr(data, "_load_hub", broken)
    ds = load_task("squad")
    assert "Hub failed (ConnectionError)" in capsys.readouterr().out
    assert ds["train"].features == FEATURES["squad"]


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError) as err:
        load_task("sst3")
    assert str(err.value) == "unknown task 'sst3'; valid tasks: sst2, conll2003, squad"


def test_cli_error_is_one_line(offline):
    proc = subprocess.run([sys.executable, "-c", "from hft_lessons.data import load_task; load_task('sst3')"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].endswith("valid tasks: sst2, conll2003, squad")


def test_local_folder_round_trip(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    load_samples("sst2").save_to_disk(str(tmp_path / "sst2"))
    monkeypatch.setenv("HFT_DATA_DIR", str(tmp_path))
    ds = load_task("sst2")
    assert "local data folder" in capsys.readouterr().out
    assert ds["train"]["sentence"] == load_samples("sst2")["train"]["sentence"]
    # a task missing from the named folder is an error, never a quiet switch to other data
    with pytest.raises(ValueError, match="has no squad data: looked for the save_to_disk folder"):
        load_task("squad")


def test_broken_local_folder_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "junk.txt").write_text("not a dataset")
    monkeypatch.setenv("HFT_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="is not a datasets save_to_disk folder"):
        load_task("sst2")


def test_subset_is_seeded_and_bounded(offline):
    train = load_samples("sst2")["train"]
    a, b = data.subset(train, 50, seed=1), data.subset(train, 50, seed=1)
    assert len(a) == 50 and a["sentence"] == b["sentence"]
    assert len(data.subset(train, None)) == len(train) == len(data.subset(train, 10**6))


@needs_real
@pytest.mark.real_data
def test_real_data_folder(monkeypatch):
    monkeypatch.setenv("HFT_DATA_DIR", str(REAL))
    sst2 = load_task("sst2")
    assert len(sst2["train"]) == 67_349 and len(sst2["validation"]) == 872
    for name in TASK_NAMES:
        ds = load_task(name)
        assert ds["train"].features == FEATURES[name]
