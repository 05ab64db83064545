"""The `python -m hft_lessons finetune` command.

Its metrics line, metrics.json, one-line errors, and accelerate launch.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from hft_lessons.cli import main

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HFT_PROFILE": "smoke", "OMP_NUM_THREADS": "1"}
ENV.pop("HFT_DATA_DIR", None)  # the shipped samples: fast and the same everywhere
BASE = ["--task", "sst2", "--profile", "smoke", "--no-progress"]


def run(args, launcher=(sys.executable, "-m", "hft_lessons")):
    return subprocess.run([*launcher, *args], capture_output=True, text=True, env=ENV, timeout=600)


def test_finetune_prints_metrics_last_and_writes_them(tmp_path):
    out = tmp_path / "run"
    proc = run(["finetune", *BASE, "--method", "lora", "--max-train", "48", "--output-dir", str(out)])
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("accuracy", "trainable_params", "total_params", "train_seconds",
                "train_examples_per_second", "peak_memory_mb"):
        assert key in last
    assert 0 < last["trainable_params"] < last["total_params"]
    assert json.loads((out / "metrics.json").read_text()) == last
    assert (out / "model" / "delta_config.json").exists()


@pytest.mark.parametrize("args, message", [
    (["finetune", "--task", "sst3", "--method", "lora"],
     "invalid choice: 'sst3' (choose from 'sst2', 'conll2003', 'squad')"),
    (["finetune", "--task", "sst2", "--method", "lorax"], "invalid choice: 'lorax'"),
    (["finetune", *BASE, "--method", "lora", "--epochs", "0"],
     "--epochs: expected a positive integer, got '0'"),
    (["finetune", *BASE, "--method", "lora", "--lr", "abc"], "--lr: expected a positive number, got 'abc'"),
    (["finetune", *BASE, "--method", "full", "--layer-decay", "1.2"],
     "--layer-decay: expected a number in (0, 1], got '1.2'"),
    (["finetune", *BASE, "--method", "lora", "--eval-split", "dev"],
     "invalid choice: 'dev' (choose from 'validation', 'test')"),
    (["finetune", *BASE, "--method", "lora", "--eval-split", "test"],
     "is not in the sst2 data; available: train, validation"),
    (["finetune", *BASE, "--method", "lora", "--data-dir", "/no/such/dir"],
     "--data-dir '/no/such/dir' is not a folder"),
    (["finetune", *BASE, "--method", "lora", "--model", "no-such-model"], "unknown model 'no-such-model'"),
])
def test_bad_options_are_one_line_and_leave_no_output(tmp_path, args, message, capsys, monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HFT_DATA_DIR", raising=False)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--output-dir", str(out)])
    assert exit_info.value.code != 0
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], stderr
    assert not out.exists(), "a failed command must not leave an output directory"


def test_bad_option_from_the_shell_is_one_line():
    proc = run(["finetune", "--task", "sst3", "--method", "lora"])
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "choose from" in proc.stderr


def test_resume_without_checkpoint_is_refused(tmp_path):
    proc = run(["finetune", *BASE, "--method", "lora", "--resume", "--output-dir", str(tmp_path / "x")])
    assert proc.returncode != 0 and "no checkpoint" in proc.stderr


@pytest.mark.slow
def test_resume_from_the_command_line_matches_an_uninterrupted_run(tmp_path):
    """Interrupt a run after its checkpoint (via the trainer's stop hook), resume it with --resume."""
    common = ["finetune", *BASE, "--method", "full", "--max-train", "64", "--epochs", "2",
              "--checkpoint-every", "3"]
    full = run([*common, "--output-dir", str(tmp_path / "a")])
    assert full.returncode == 0, full.stderr
    code = ("import sys, hft_lessons.training as t; orig = t.TrainConfig.__post_init__\n"
            "def stop(self): orig(self); self.stop_after_steps = 3\n"
            "t.TrainConfig.__post_init__ = stop\n"
            "from hft_lessons.cli import build_parser, run_finetune\n"
            f"run_finetune(build_parser().parse_args({[*common, '--output-dir', str(tmp_path / 'b')]!r}))\n")
    stopped = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=600
    )
    assert stopped.returncode == 0, stopped.stderr
    assert (tmp_path / "b" / "checkpoint" / "state.pt").exists()
    resumed = run([*common, "--resume", "--output-dir", str(tmp_path / "b")])
    assert resumed.returncode == 0, resumed.stderr
    a, b = (json.loads(p.stdout.strip().splitlines()[-1]) for p in (full, resumed))
    assert a["accuracy"] == b["accuracy"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")
def test_accelerate_two_processes_match_one(tmp_path):
    """Two data-parallel processes (gloo on CPU) train together and land near the single-process run.

    ``accelerate launch --multi_gpu`` starts them through torchrun; without CUDA the trainer asks Accelerate
    for CPU processes. (``accelerate launch --cpu`` starts only one process unless it is given an MPI
    hostfile.)
    """
    common = ["finetune", *BASE, "--method", "full", "--max-train", "128", "--max-eval", "66",
              "--epochs", "3", "--lr", "1e-3"]
    launch = ("accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "hft_lessons")
    one = run(common)
    two = run([*common, "--output-dir", str(tmp_path / "ddp")], launcher=launch)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    a = json.loads(one.stdout.strip().splitlines()[-1])
    b = json.loads(two.stdout.strip().splitlines()[-1])
    assert (a["processes"], b["processes"]) == (1, 2)
    # the same global batches, split in two; only the dropout masks differ (each process draws its own)
    assert abs(a["accuracy"] - b["accuracy"]) <= 3 / 66 + 1e-9
    assert (tmp_path / "ddp" / "metrics.json").exists()


@pytest.mark.parametrize("flag, fast", [([], False), (["--fast-cpu"], True)])
def test_fast_cpu_flag_reaches_the_training_config(flag, fast):
    from hft_lessons.cli import build_parser, make_train_config
    from hft_lessons.profiles import get_profile

    args = build_parser().parse_args(["finetune", *BASE, "--method", "full", *flag])
    config = make_train_config(args, "full", "sst2", get_profile("smoke").task("sst2"), None)
    assert config.fast_cpu is fast
