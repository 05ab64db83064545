"""The benchmark scripts reject bad options with one line that names what is allowed."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "trainer_speed.py"


@pytest.mark.parametrize("runners", ["course", "course,hf_fast", "hf_default,hf_grouped", "course,course_fast"])
def test_trainer_speed_rejects_bad_runners(runners):
    out = subprocess.run([sys.executable, str(SCRIPT), "--runners", runners], capture_output=True, text=True)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert f"--runners {runners!r}" in last and "give course and/or course_fast, and at least one of hf_default, hf_grouped" in last


def test_trainer_speed_rejects_a_bad_repeat_count():
    out = subprocess.run([sys.executable, str(SCRIPT), "--repeats", "0"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "--repeats 0: give a positive number of runs" in out.stderr.strip().splitlines()[-1]
