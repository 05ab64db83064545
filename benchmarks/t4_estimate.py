"""Estimate each chapter's time in the `gpu` profile on a free Colab T4, from its measured `cpu` time.

    HF_HUB_OFFLINE=1 HFT_DATA_DIR=/path/to/datasets python benchmarks/t4_estimate.py

No T4 has run the course yet, so the time lines give this estimate. The model, every part of it stated:

- **training and evaluation work** is counted in floating-point operations: per token, ``6 N`` to train and
  ``2 N`` to evaluate (``N`` the encoder's weights outside the embeddings: 10.6 M for MiniLM-L6, 85 M for
  BERT-base), plus attention's ``12 L T d`` (training) or ``4 L T d`` (evaluation) at ``T`` tokens per
  sequence. Tokens are counted on the data each profile uses (``task.tokenize`` of its subsets: dynamic
  padding, so the real lengths). Each chapter's runs are listed in ``RUNS`` (which task, how many runs, which
  budget);
- **this machine's rate** (FLOP/s on 2 cores) is calibrated on chapter 4's full fine-tuning run, whose
  training time the chapter prints (``CPU_CALIBRATION``);
- **the T4's rate** is an assumption: ``T4_UTILISATION`` (15%) of its 65 TFLOP/s fp16 tensor-core peak, the
  mixed-precision training of a 110 M-parameter encoder on short, dynamically padded batches; a run that stays
  on the CPU in every profile (chapter 8's Keras run) is counted at this machine's rate;
- **everything else** a chapter does (loading, tokenizing, analysis, plots) is taken to run as fast on
  Colab's 2 virtual CPUs as on this machine's 2 cores: the chapter's measured `cpu` time minus its estimated
  `cpu` training time. Loading BERT-base adds ``LOAD_SECONDS``.

The estimate per chapter = other work + T4 training + loading. It writes
``benchmarks/results/t4_estimate.csv`` (the model's constants in its header lines) and prints the table.
Replace it with measured times when a T4 (or any GPU, with the factor to a T4 stated) has run
``benchmarks/course_time.py --profile gpu``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T4_PEAK_FLOPS = 65e12
T4_UTILISATION = 0.15
LOAD_SECONDS = 30.0
# chapter 4's full fine-tuning run in cpu: SST-2, 4,000 sentences, 2 epochs, evaluated after each
CPU_CALIBRATION = {"task": "sst2", "runs": 1, "seconds": 75.1}
ENCODERS = {  # weights outside the embeddings, layers, hidden size
    "sentence-transformers/all-MiniLM-L6-v2": (6 * 12 * 384**2, 6, 384),
    "bert-base-uncased": (12 * 12 * 768**2, 12, 768),
}
CAPS = {"sst2": (1500, 500), "conll2003": (1000, 500), "squad": (400, 200)}  # chapters 9 and 10's budgets
# what each chapter trains with a cold cache: (task, runs, budget), budget "profile", "caps" (2 epochs)
# or "cpu" (the cpu profile's budget and backbone in every profile); a "-cpu" suffix: a run that stays on
# the CPU in every profile (chapter 8's Keras run: TensorFlow is kept off the GPU)
RUNS: dict[str, list[tuple[str, int, str]]] = {
    "04_finetuning": [("sst2", 1, "profile")],
    "05_task_adapters": [("sst2", 2, "profile")],
    "06_delta_tuning": [("sst2", 8, "profile")],
    "07_hybrid_finetuning": [("sst2", 5, "profile")],
    # chapter 8 compares stacks on cpu's budget and backbone in every profile: PyTorch and Trainer + peft
    # on the GPU, Keras on the CPU (its 40-step Trainer run is left out)
    "08_three_implementations": [("sst2", 2, "cpu"), ("sst2", 1, "cpu-cpu")],
    "09_multitask": [(t, 2, "caps") for t in CAPS],  # the joint run and the three single-task runs
    "10_multitask_hybrid": [(t, 1, "caps") for t in CAPS],  # the one joint run over the three tasks
    "11_sentiment_analysis": [("sst2", 5, "profile")],
    "12_named_entity_recognition": [("conll2003", 2, "profile")],
    "13_question_answering": [("squad", 1, "profile")],
}


def token_lengths(profile_name: str, task_name: str, budget: str) -> tuple[list[int], list[int], int]:
    """Token counts of the training and evaluation sequences a run of ``task_name`` sees, and its epochs."""
    from hft_lessons.backbone import load_backbone
    from hft_lessons.data import load_samples, load_task, subset
    from hft_lessons.profiles import get_profile
    from hft_lessons.tasks import get_task

    settings = get_profile("cpu" if budget == "cpu" else profile_name).task(task_name)
    n_train, n_eval = settings.max_train, settings.max_eval
    epochs = settings.epochs
    if budget not in ("profile", "cpu", "caps"):
        raise ValueError(f"unknown budget {budget!r}; valid: profile, caps, cpu (each may end in -cpu)")
    if budget == "caps":
        caps = CAPS[task_name]
        n_train, n_eval = (min(n or cap, cap) for n, cap in zip((n_train, n_eval), caps, strict=True))
        epochs = 2
    task = get_task(task_name)
    tokenizer, _ = load_backbone("sentence-transformers/all-MiniLM-L6-v2", verbose=False)  # BERT's vocabulary
    ds, samples = load_task(task_name, verbose=False), load_samples(task_name)
    lengths = []
    for split, n, train in (("train", n_train, True), ("validation", n_eval, False)):
        # estimated on the package's samples, a run's size would be counted too small, whether or not the
        # profile sets one (a split smaller than the profile's size, as the course's SQuAD, is used whole)
        if len(ds[split]) <= len(samples[split]):
            raise SystemExit(f"{task_name}: the {split} split loaded is the package's sample "
                             f"({len(ds[split]):,} examples), not the dataset a run uses; set HFT_DATA_DIR "
                             "to the datasets folder (or allow the Hub)")
        rows = subset(ds[split], n, 0)
        features = task.tokenize(rows, tokenizer, settings.max_length, settings.stride, train=train)
        lengths.append([len(ids) for ids in features["input_ids"]])
    return lengths[0], lengths[1], epochs


def run_flops(backbone: str, train: list[int], evaluate: list[int], epochs: int) -> float:
    """Floating-point operations of one run: training and one evaluation per epoch."""
    weights, layers, hidden = ENCODERS[backbone]
    trained = sum(t * (6 * weights + 12 * layers * t * hidden) for t in train)
    evaluated = sum(t * (2 * weights + 4 * layers * t * hidden) for t in evaluate)
    return epochs * (trained + evaluated)


def chapter_flops(profile_name: str, runs: list[tuple[str, int, str]], memo: dict,
                  on_cpu: bool = False) -> float:
    """The work of a chapter's training runs in a profile (``on_cpu``: only the runs that stay on the CPU)."""
    from hft_lessons.profiles import get_profile

    total = 0.0
    for task_name, n_runs, budget in runs:
        if on_cpu != budget.endswith("-cpu"):
            continue
        key = (profile_name, task_name, budget.removesuffix("-cpu"))
        if key not in memo:
            memo[key] = token_lengths(profile_name, task_name, key[2])
        backbone = get_profile("cpu" if key[2] == "cpu" else profile_name).task(task_name).backbone
        total += n_runs * run_flops(backbone, *memo[key])
    return total


def read_times(path: Path) -> dict[str, float]:
    """Chapter -> measured seconds from a course_time results file."""
    from course_time import read_rows  # benchmarks/ is on the path when this script runs

    return {name: float(r["seconds"]) for name, r in read_rows(path).items() if name != "total"}


def main(argv: list[str] | None = None) -> int:
    """Estimate, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-times", type=Path,
                        default=ROOT / "benchmarks" / "results" / "course_time_cpu_cold.csv",
                        help="course_time.py results with each chapter's cold cpu time")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "t4_estimate.csv")
    args = parser.parse_args(argv)
    measured = read_times(args.cpu_times)
    memo: dict = {}
    cal = CPU_CALIBRATION
    cpu_rate = chapter_flops("cpu", [(cal["task"], cal["runs"], "profile")], memo) / cal["seconds"]
    t4_rate = T4_PEAK_FLOPS * T4_UTILISATION
    rows = []
    for chapter, seconds in measured.items():
        runs = RUNS.get(chapter, [])
        cpu_train = (chapter_flops("cpu", runs, memo) + chapter_flops("cpu", runs, memo, True)) / cpu_rate
        # runs that stay on the CPU in gpu too (chapter 8's Keras run: MiniLM, cpu's budget): this CPU's rate
        t4_train = (chapter_flops("gpu", runs, memo) / t4_rate
                    + chapter_flops("gpu", runs, memo, True) / cpu_rate)
        other = max(seconds - cpu_train, 0.0)
        estimate = other + t4_train + (LOAD_SECONDS if runs else 0.0)
        rows.append({"chapter": chapter, "cpu_measured_s": round(seconds, 1),
                     "cpu_training_estimated_s": round(cpu_train, 1),
                     "t4_training_estimated_s": round(t4_train, 1),
                     "t4_estimated_s": round(estimate, 1)})
        print(f"{chapter:32s} cpu {seconds / 60:5.1f} min (training ~{cpu_train / 60:4.1f}) -> "
              f"T4 ~{estimate / 60:5.1f} min", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        f.write(f"# written by benchmarks/t4_estimate.py from {args.cpu_times.name}: "
                "an estimate, not a measurement\n")
        f.write(f"# cpu rate {cpu_rate / 1e9:.1f} GFLOP/s (chapter 4's full run, {cal['seconds']} s); "
                f"T4 {T4_UTILISATION:.0%} of {T4_PEAK_FLOPS / 1e12:.0f} TFLOP/s; "
                f"loading {LOAD_SECONDS:.0f} s\n")
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
