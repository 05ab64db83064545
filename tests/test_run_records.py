"""The recorded method runs that chapters 12 and 13 read: what the package ships, how the benchmark that
writes them parses the command's output, and the chapters' learning curves from them."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from hft_lessons import run_records
from hft_lessons.methods import train_config
from hft_lessons.profiles import get_profile

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "application_methods.py"
# what each chapter trains itself (its TRAIN list) and what it reads from the records, in the cpu profile
RECORDED_CPU = {"conll2003": {"adapter_layer", "lora", "adapter"},
                "squad": {"full", "adapter_layer", "lora", "adapter"}}
METRICS = {"conll2003": ("f1", "precision", "recall"), "squad": ("exact_match", "f1")}


def _benchmark():
    spec = importlib.util.spec_from_file_location("application_methods", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_package_ships_the_records_the_chapters_read():
    for task, methods in RECORDED_CPU.items():
        runs = run_records.recorded_runs(task, "cpu", 0)
        assert methods <= set(runs), f"{task}: missing {methods - set(runs)}"
        settings = get_profile("cpu").task(task)
        for method, run in runs.items():
            assert all(0 <= run[k] <= 100 for k in METRICS[task])
            assert "all-MiniLM-L6-v2" in run["backbone"] and run["epochs"] == settings.epochs
            assert run["train_examples"] == settings.max_train and run["seed"] == 0
            assert run["lr"] == train_config(method, settings, task).lr
            assert [e["epoch"] for e in run["epoch_metrics"]] == list(range(1, settings.epochs + 1))
        # and every method of the chapter's table in smoke, so that CI's run reads them too
        smoke = run_records.recorded_runs(task, "smoke", 0)
        assert set(smoke) == {"full", "adapter_layer", "lora", "adapter", "hybrid"}


def test_the_records_hold_no_folder_of_the_machine_that_made_them():
    text = run_records.RECORDS.read_text()
    assert "/work/" not in text and "/home/" not in text and "/Users/" not in text
    assert all(json.loads(x)["run_config"]["data_dir"] in (None, "$HFT_DATA_DIR") for x in text.splitlines())


def test_no_records_is_an_empty_table_not_an_error(tmp_path):
    assert run_records.recorded_runs("squad", "gpu", 0) == {}
    assert run_records.read_records(tmp_path / "none.jsonl") == []


def test_a_recorded_run_becomes_history_rows_for_the_curves():
    run = {"epoch_metrics": [{"epoch": 1, "f1": 0.5}, {"epoch": 2, "f1": 0.7}]}
    assert run_records.recorded_history(run) == [{"epoch": 1, "eval_f1": 0.5}, {"epoch": 2, "eval_f1": 0.7}]


def test_the_benchmark_reads_the_epoch_lines_the_command_prints():
    lines = ["[hft_lessons] data: sst2 from /somewhere",
             "[hft_lessons] epoch 1: exact_match 12.2000, f1 23.1333",
             "[hft_lessons] epoch 2: exact_match 32.4000, f1 45.7983", '{"f1": 45.79}']
    assert _benchmark().epoch_metrics(lines) == [{"epoch": 1, "exact_match": 12.2, "f1": 23.1333},
                                                 {"epoch": 2, "exact_match": 32.4, "f1": 45.7983}]


def test_the_benchmark_names_the_methods_it_knows():
    out = subprocess.run([sys.executable, str(SCRIPT), "--task", "squad", "--methods", "lora,bogus"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "error: --methods: unknown bogus; allowed: full, adapter_layer, lora, adapter, hybrid")
