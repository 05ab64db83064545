"""The benchmark scripts reject bad options with one line that names what is allowed; the bare loop matches
the course trainer."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "trainer_speed.py"


@pytest.mark.parametrize(
    "runners", ["course", "course,hf_fast", "hf_default,hf_grouped", "course,course_fast"]
)
def test_trainer_speed_rejects_bad_runners(runners):
    out = subprocess.run([sys.executable, str(SCRIPT), "--runners", runners], capture_output=True, text=True)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert (
        f"--runners {runners!r}" in last
        and "give course and/or course_fast, and at least one of hf_default, hf_grouped" in last
    )


def test_trainer_speed_rejects_a_bad_repeat_count():
    out = subprocess.run([sys.executable, str(SCRIPT), "--repeats", "0"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "--repeats 0: give a positive number of runs" in out.stderr.strip().splitlines()[-1]


@pytest.mark.slow  # ~19 s on 2 idle cores
def test_bare_loop_trains_exactly_what_the_course_trainer_trains():
    """The benchmark's `bare` runner is a fair measure of the least a trainer must do only if it does the
    course trainer's training, step for step."""
    out = {}
    for runner in ("course", "bare"):
        proc = subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                "--one",
                runner,
                "full",
                "--max-train",
                "96",
                "--epochs",
                "1",
                "--seed",
                "1",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        out[runner] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["course"]["accuracy"] == out["bare"]["accuracy"]
    assert out["course"]["weight_norm"] == pytest.approx(out["bare"]["weight_norm"], rel=1e-9)
    assert out["course"]["examples_per_second"] > 0 and out["bare"]["examples_per_second"] > 0
