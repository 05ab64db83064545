"""benchmarks/trainer_speed.py's --results writer.

One row per run, the header once, the command in the row.
"""

import csv
import importlib.util
from argparse import Namespace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("trainer_speed", ROOT / "benchmarks" / "trainer_speed.py")
speed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(speed)


def test_results_rows_append_under_one_header(tmp_path):
    path = tmp_path / "sub" / "runs.csv"
    run = {"examples_per_second": 244.54, "peak_memory_mb": 1666.4, "accuracy": 0.85091}
    args = Namespace(model="m", max_train=4000, epochs=2, batch_size=32, max_length=128, seed=3)
    for runner in ("course_fast", "hf_default"):
        speed.append_results(
            str(path), [speed.result_row("full", runner, 3, run, speed._command(runner, "full", args))]
        )
    rows = list(csv.DictReader(path.open()))
    assert path.read_text().count("method,runner") == 1
    assert [r["runner"] for r in rows] == ["course_fast", "hf_default"]
    assert [r["sampler"] for r in rows] == ["grouped", "random"]
    assert rows[0]["examples_per_second"] == "244.5" and rows[0]["accuracy"] == "0.8509"
    assert rows[1]["source"].startswith("python benchmarks/trainer_speed.py --one hf_default full")
    assert "--seed 3" in rows[1]["source"]


def test_the_committed_csv_has_the_writers_columns_and_says_where_rows_came_from():
    rows = list(csv.DictReader((ROOT / "benchmarks" / "results" / "trainer_speed.csv").open()))
    assert tuple(rows[0]) == speed.RESULT_FIELDS
    assert all(r["source"] for r in rows)
    assert sum(r["method"] == "full" and r["runner"] == "hf_default" for r in rows) == 40
