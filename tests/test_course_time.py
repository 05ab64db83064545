"""benchmarks/course_time.py executes chapters in fresh kernels and writes the time table it prints."""

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "course_time.py"


def _tiny_chapter(folder: Path) -> Path:
    """A two-cell chapter, ``00_tiny.ipynb``, with the editor metadata a write-back must drop."""
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": "import os\nprint('profile:', os.environ.get('HFT_PROFILE'))"}
    note = {"cell_type": "markdown", "metadata": {}, "source": "# 0. Tiny"}
    nb = {"cells": [note, cell, dict(cell, source="print(6 * 7)")], "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                       "vscode": {"interpreter": {"hash": "abc"}}, "widgets": {}}}
    path = folder / "00_tiny.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_course_time_runs_a_chapter_writes_its_row_and_stores_it_cleaned(tmp_path):
    # one kernel start for both: the row in the results file, and the chapter written back with --write-back
    stored = _tiny_chapter(tmp_path)
    out = tmp_path / "times.csv"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--profile", "smoke", "--notebooks", str(tmp_path), "--chapters", "00",
         "--out", str(out), "--write-back"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = out.read_text().splitlines()
    assert lines[0] == "# written by benchmarks/course_time.py --profile smoke --chapters 00 --cache in-order"
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert [r["chapter"] for r in rows] == ["00_tiny", "total"]
    assert rows[0]["status"] == "ok" and float(rows[0]["seconds"]) > 0
    assert float(rows[1]["seconds"]) == float(rows[0]["seconds"])
    assert rows[0]["runs_reused"] == "0"
    assert float(rows[0]["gflops"]) > 0  # the machine's speed, measured before the chapter
    after = json.loads(stored.read_text())
    code = [c for c in after["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    assert ["".join(c["outputs"][0]["text"]) for c in code] == ["profile: smoke\n", "42\n"]
    assert set(after["metadata"]) <= {"kernelspec", "language_info", "colab", "accelerator"}


def test_course_time_hides_bars_and_counts_the_runs_a_chapter_reused(tmp_path):
    path = _tiny_chapter(tmp_path)
    nb = json.loads(path.read_text())
    nb["cells"][2]["source"] = ("import os\nprint('bars:', os.environ['HFT_PROGRESS'])\n"
                                "print('[hft_lessons] run cache: reused the trained run a (abc)')\n"
                                "print('[hft_lessons] run cache: reused the trained run b (def)')")
    path.write_text(json.dumps(nb))
    out = tmp_path / "times.csv"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--profile", "smoke", "--notebooks", str(tmp_path), "--cache", "cold",
         "--out", str(out), "--write-back"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(line for line in out.read_text().splitlines() if not line.startswith("#")))
    assert rows[0]["runs_reused"] == "2" and rows[1]["runs_reused"] == "2"
    stored = json.loads(path.read_text())["cells"][2]["outputs"][0]["text"]
    assert "bars: off" in "".join(stored)


def test_course_time_names_the_chapters_it_does_not_have(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--profile", "smoke", "--chapters", "98"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("no chapter numbered 98; have 00, 01,")


def test_a_cold_run_keeps_the_in_order_time_of_a_chapter_that_reused_nothing(tmp_path):
    _tiny_chapter(tmp_path)
    earlier = tmp_path / "in_order.csv"
    earlier.write_text("# an in-order run\nchapter,seconds,status,runs_reused,source\n"
                       "00_tiny,12.5,ok,0,measured\ntotal,12.5,ok,0,\n")
    out = tmp_path / "cold.csv"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--profile", "smoke", "--notebooks", str(tmp_path), "--cache", "cold",
         "--cold-from", str(earlier), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = out.read_text().splitlines()
    assert lines[0].endswith("--cache cold --cold-from in_order.csv")
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert (rows[0]["seconds"], rows[0]["source"]) == ("12.5", "in_order.csv")


def _tool(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, SCRIPT.parents[1] / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_time_table_is_what_the_results_files_give():
    assert _tool("course_time_table").main(["--check"]) == 0


def test_every_chapter_has_a_time_on_its_own_in_order_and_an_estimated_t4_time():
    tool = _tool("course_time_table")
    chapters = {p.stem for p in (SCRIPT.parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    cold, t4 = tool.read("course_time_cpu_cold.csv"), tool.read("t4_estimate.csv")
    in_order, smoke = tool.in_order_rows(), tool.read("course_time_smoke.csv")
    assert set(cold) == set(in_order) == set(t4) == set(smoke) == chapters
    assert all(r["status"] == "ok" for r in [*cold.values(), *in_order.values(), *smoke.values()])
    # in order, a chapter never takes longer than on its own beyond timing noise: the cache only saves work
    assert all(float(in_order[c]["seconds"]) <= 1.1 * float(cold[c]["seconds"]) for c in chapters)
    header = (SCRIPT.parent / "results" / "t4_estimate.csv").read_text().splitlines()[0]
    assert "an estimate, not a measurement" in header


def test_update_cold_copies_the_later_runs_rows_with_their_file_as_source(tmp_path, monkeypatch):
    tool = _tool("course_time_table")
    head = "chapter,seconds,status,runs_reused,source\n"
    (tmp_path / "course_time_cpu_cold.csv").write_text(
        "# written by course_time.py\n" + head + "01_a,10.0,ok,0,x.csv\n02_b,20.0,ok,0,x.csv\n"
        "total,30.0,ok,0,\n")
    later_head = head.replace(",source", ",source,gflops")  # later files record the machine's speed
    (tmp_path / "later.csv").write_text("# a later run\n" + later_head +
                                        "02_b,5.5,ok,0,measured,170.2\ntotal,5.5,ok,0,,\n")
    # a chapter that loaded runs in order, run again cold: it replaces only the cold row
    (tmp_path / "cold_again.csv").write_text("# cold\n" + later_head +
                                             "01_a,7.0,ok,0,measured,160.0\ntotal,7.0,ok,0,,\n")
    monkeypatch.setattr(tool, "RESULTS", tmp_path)
    monkeypatch.setattr(tool, "LATER_RUNS", ("later.csv",))
    monkeypatch.setattr(tool, "COLD_RUNS", ("cold_again.csv",))
    tool.update_cold()
    rows = tool.read("course_time_cpu_cold.csv")
    assert (rows["01_a"]["seconds"], rows["01_a"]["source"]) == ("7.0", "cold_again.csv")
    assert (rows["02_b"]["seconds"], rows["02_b"]["source"]) == ("5.5", "later.csv")
    assert rows["02_b"]["gflops"] == "170.2" and rows["01_a"]["gflops"] == "160.0"
    text = (tmp_path / "course_time_cpu_cold.csv").read_text()
    assert text.startswith("# written by course_time.py\n# rows of later.csv, cold_again.csv copied in")
    assert "total,12.5,ok,0," in text


def test_a_later_run_of_a_chapter_that_reused_runs_in_order_is_refused(tmp_path, monkeypatch):
    tool = _tool("course_time_table")
    head = "chapter,seconds,status,runs_reused,source\n"
    (tmp_path / "course_time_cpu.csv").write_text(head + "11_c,60.0,ok,4,\ntotal,60.0,ok,4,\n")
    (tmp_path / "later.csv").write_text(head + "11_c,300.0,ok,0,measured\ntotal,300.0,ok,0,\n")
    monkeypatch.setattr(tool, "RESULTS", tmp_path)
    monkeypatch.setattr(tool, "LATER_RUNS", ("later.csv",))
    with pytest.raises(SystemExit, match="11_c cannot replace its in-order row"):
        tool.in_order_rows()
    with pytest.raises(SystemExit, match="no results file"):
        tool.read("missing.csv")


def _time_files(tool, reused: str) -> dict:
    """One chapter, 07_x, in the four files a time line reads, as ``time_lines`` passes them."""
    return {"smoke": {"07_x": {"seconds": "41.6"}}, "cold": {"07_x": {"seconds": "395.5"}},
            "in order": {"07_x": {"seconds": "162.2", "runs_reused": reused}},
            "t4": {"07_x": {"t4_estimated_s": "194.0"}}}


def test_minutes_round_halves_up_as_a_reader_would():
    minutes = _tool("course_time_table").minutes
    assert [minutes(s) for s in (555.0, 554.9, 9.0, 0.0, 3882.4)] == ["9.3", "9.2", "0.2", "0.0", "64.7"]


def test_a_time_line_gets_its_first_sentence_from_the_files_and_keeps_the_rest():
    tool = _tool("course_time_table")
    old = ("# 7. X\n\nGoals.\n\n**Time**: reading ~40 min; running: `smoke` < 1 min, `cpu` 9.9 min,\n"
           f"`gpu` ~9 min on a free Colab T4 {tool.T4_NOTE} The seeds come\nfrom a script.\n")
    sentence = tool.time_sentence("07_x", _time_files(tool, "3"))
    new = tool.with_time_line(old, "07_x", sentence)
    assert new.startswith("# 7. X\n\nGoals.\n\n**Time**: reading ~40 min; running, with the model and data")
    flat = " ".join(new.split())
    assert "`smoke` 42 s, `cpu` 6.6 min measured on 2 idle cores (2.7 min run after chapters 4–6," in flat
    assert flat.endswith(f"`gpu` ~3 min on a free Colab T4 {tool.T4_NOTE} The seeds come from a script.")
    assert max(len(line) for line in new.splitlines()) <= tool.WIDTH
    assert tool.with_time_line(new, "07_x", sentence) == new  # what --check relies on
    alone = tool.time_sentence("07_x", _time_files(tool, "0"))
    assert "cores, `gpu`" in alone and "run cache" not in alone


def test_a_time_line_that_is_not_one_plain_last_paragraph_is_refused():
    tool = _tool("course_time_table")
    sentence = tool.time_sentence("07_x", _time_files(tool, "0"))
    line = f"**Time**: old {tool.T4_NOTE}"
    for bad in ["# 7. X", f"{line}\n\nA later paragraph.", "**Time**: no estimate note.",
                f"{line}\n- a list item", f"{line}  \nafter a hard break"]:
        with pytest.raises(SystemExit, match="^07_x: its (first cell must end|time line must be one)"):
            tool.with_time_line(bad, "07_x", sentence)
    missing = "^t4_estimate.csv has no row for 08_y: run benchmarks/t4_estimate.py"
    with pytest.raises(SystemExit, match=missing):
        tool.time_sentence("08_y", {k: {} if k == "t4" else {"08_y": v["07_x"]}
                                    for k, v in _time_files(tool, "0").items()})


def test_t4_estimate_refuses_the_shipped_samples(tmp_path):
    # without the datasets folder (and no Hub) the loaders fall back to the package's samples, whose token
    # counts would make every estimate far too small
    env = {k: v for k, v in os.environ.items() if k != "HFT_DATA_DIR"} | {"HF_HUB_OFFLINE": "1"}
    script = SCRIPT.parent / "t4_estimate.py"
    done = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "t4.csv")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1 and not (tmp_path / "t4.csv").exists()
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("sst2: the train split loaded is the package's sample")


def test_t4_estimate_refuses_the_samples_where_a_profile_sets_no_size(monkeypatch):
    # the `full` profile trains on whole splits (no size to compare with): the samples are still refused
    monkeypatch.delenv("HFT_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = importlib.util.spec_from_file_location("t4_estimate", SCRIPT.parent / "t4_estimate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit, match="package's sample"):
        module.token_lengths("full", "sst2", "profile")
