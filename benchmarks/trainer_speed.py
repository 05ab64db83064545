"""The course trainer vs Hugging Face `Trainer`: same model, data, batch size and method, side by side.

    HF_HUB_OFFLINE=1 HFT_DATA_DIR=/path/to/datasets python benchmarks/trainer_speed.py \\
        [--max-train 4000 --epochs 2]

For each method (full fine-tuning and LoRA) it trains the packaged all-MiniLM-L6-v2 with a classification
head on SST-2 up to four ways: the course trainer (`hft_lessons.training.train`) as the chapters run it
(`course`) and with its opt-in CPU speed-ups (`course_fast`: `TrainConfig(fast_cpu=True)`, NumPy-drawn dropout
masks, clipping inside fused AdamW, LoRA's low-rank product accumulated inside the projection's matrix
multiplies, attention with a hand-written backward, BERT layers that skip padding, linear layers multiplied by
oneDNN where it measures faster than MKL, and for full fine-tuning a word-embedding table that trains only the
rows the training sentences reach; see
`hft_lessons.speedups`), `Trainer` with its default random sampler, and `Trainer` with
`train_sampling_strategy="group_by_length"` (its fastest setting). It prints examples per second, peak memory
and validation accuracy for each, and the ratios against `Trainer`. `model_only` runs forward and backward
over the same batches and nothing else (no optimizer step: nothing learns): no trainer that leaves the model's
own computation (dropout included) as it is can be faster than that; `course_fast` changes how that
computation is done (not what it computes), so it can. `bare` is the shortest correct PyTorch loop over
the course trainer's batches and recipe (forward, backward, clipping, fused AdamW step, learning-rate
schedule; no Accelerate, no logging, no checkpoints): the least work any trainer that really trains with AdamW
must do.
Both course runners first copy the weights that `from_pretrained` left in its file mapping into memory of
their own (`hft_lessons.training.own_weights`, ~20 ms); `Trainer`, given the same model, lets its first
optimizer step copy them page by page (that way the course trainer's first step took ~2.5 s more on the
2-core benchmark machine).
Every runner is timed the same way: the wall time of the whole training call (setup, data loading and
optimizer steps included; evaluation comes after it), divided into the examples it trained on.
Peak memory on CPU is the resident set sampled during training; each run also gets its own process.
The course trainer uses the method's SST-2 recipe as `finetune` does (for full fine-tuning: lr 2e-4 at the
top, layer-wise decay 0.8, head 1e-3); `Trainer` gets one flat learning rate, the method's base recipe lr
(1e-4 full, 2e-3 LoRA), as in every earlier measurement.
`--runners course,hf_grouped` skips the slow default-sampler runs when only the fastest setting matters;
by default `course_fast` is left out (add it to `--runners`).
`--repeats N` trains every pair N times, alternating the runners, with seeds 0 to N - 1 (the classifier head's
initialisation, dropout and batch order; the 4,000 training sentences stay the same), and compares medians:
on a shared or throttled machine one run per side can be off by 10% or more, and one seed's validation
accuracy by about a point. Every runner gets the same seeds.
`--results benchmarks/results/trainer_speed.csv` appends one row per run (method, runner, sampler, seed,
speed, peak memory, accuracy and the command that made it) to a CSV; `tools/benchmark_table.py` turns that
file into the table of the book's Benchmarks page.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time

RUNNERS = ("course", "course_fast", "hf_default", "hf_grouped", "model_only", "bare")
DEFAULT_RUNNERS = ("course", "hf_default", "hf_grouped")
COURSE = ("course", "course_fast")
TRAINER = ("hf_default", "hf_grouped")
RESULT_FIELDS = (
    "method", "runner", "sampler", "seed", "examples_per_second", "peak_memory_mb", "accuracy", "source"
)


def result_row(method: str, runner: str, seed: int, run: dict[str, float], command: str) -> dict[str, str]:
    """One run as a row of the results CSV (the sampler is random only for Trainer's default)."""
    return {"method": method, "runner": runner, "sampler": "random" if runner == "hf_default" else "grouped",
            "seed": str(seed), "examples_per_second": f"{run['examples_per_second']:.1f}",
            "peak_memory_mb": f"{run['peak_memory_mb']:.0f}", "accuracy": f"{run['accuracy']:.4f}",
            "source": command}


def append_results(path: str, rows: list[dict[str, str]]) -> None:
    """Append rows to the results CSV at `path`, writing the header first if the file is new or empty."""
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_FIELDS)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def _command(runner: str, method: str, args: argparse.Namespace) -> str:
    """The command line that reproduces one run."""
    return (f"python benchmarks/trainer_speed.py --one {runner} {method} --model {args.model} "
            f"--max-train {args.max_train} --epochs {args.epochs} --batch-size {args.batch_size} "
            f"--max-length {args.max_length} --seed {args.seed}")


def _one(runner: str, method: str, args: argparse.Namespace) -> dict[str, float]:
    """Train once in this process and return its numbers."""
    import torch
    from transformers import Trainer, TrainingArguments

    from hft_lessons.backbone import load_backbone
    from hft_lessons.data import load_task, subset
    from hft_lessons.devices import uses_cuda
    from hft_lessons.methods import RECIPES, get_recipe, prepare_model
    from hft_lessons.runtime import seed_everything
    from hft_lessons.tasks import get_task
    from hft_lessons.training import PeakMemory, TrainConfig, evaluate, train

    seed_everything(args.seed)
    task = get_task("sst2")
    ds = load_task("sst2", verbose=False)
    tokenizer, backbone = load_backbone(args.model, verbose=False)
    train_raw, eval_raw = subset(ds["train"], args.max_train, 0), ds["validation"]
    train_f = task.tokenize(train_raw, tokenizer, args.max_length)
    eval_f = task.tokenize(eval_raw, tokenizer, args.max_length, train=False)
    model = prepare_model(task.build_model(backbone), method)
    recipe = get_recipe(method, "sst2")
    if runner == "model_only":
        return _model_only(model, task, train_f, tokenizer, args)
    if runner == "bare":
        return _bare(model, task, train_f, eval_f, eval_raw, tokenizer, recipe, args)
    if runner in COURSE:
        # timed like Trainer below: the whole call, setup included, evaluation after it
        start = time.perf_counter()
        result = train(
            model,
            task,
            train_f,
            None,
            None,
            tokenizer,
            TrainConfig(
                lr=recipe.lr,
                head_lr=recipe.head_lr,
                layer_decay=recipe.layer_decay,
                warmup_ratio=recipe.warmup_ratio,
                epochs=args.epochs,
                batch_size=args.batch_size,
                progress=False,
                fast_cpu=runner == "course_fast",
                seed=args.seed,
                mixed_precision="no",
            ),
        )  # float32, as Trainer's default
        seconds = time.perf_counter() - start
        return {"examples_per_second": len(train_f) * args.epochs / seconds,
                "trainer_reported_samples_per_second": result.train_examples_per_second,
                "peak_memory_mb": result.peak_memory_mb,
                "accuracy": evaluate(model, task, eval_f, eval_raw, tokenizer)["accuracy"],
                "weight_norm": _weight_norm(model)}

    targs = TrainingArguments(
        output_dir=os.path.join(args.tmp, f"{runner}-{method}"), per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs, learning_rate=RECIPES[method].lr, weight_decay=0.01,  # one flat lr
        warmup_steps=int(0.06 * args.epochs * -(-len(train_f) // args.batch_size)),
        train_sampling_strategy="group_by_length" if runner == "hf_grouped" else "random",
        save_strategy="no", eval_strategy="no", report_to=[], logging_steps=50, seed=args.seed,
        disable_tqdm=True, use_cpu=not uses_cuda(), dataloader_num_workers=0,
    )
    trainer = Trainer(model=with_loss(model, task), args=targs, train_dataset=train_f,
                      data_collator=task.collator(tokenizer))
    start = time.perf_counter()
    with PeakMemory(torch.device("cuda" if uses_cuda() else "cpu")) as peak:
        out = trainer.train()
    seconds = time.perf_counter() - start
    metrics = evaluate(model, task, eval_f, eval_raw, tokenizer)
    return {"examples_per_second": len(train_f) * args.epochs / seconds,
            "trainer_reported_samples_per_second": out.metrics.get("train_samples_per_second", 0.0),
            "peak_memory_mb": peak.mb,
            "accuracy": metrics["accuracy"], "weight_norm": _weight_norm(model)}


def with_loss(model, task):
    """The same task model, returning its task's loss the way `Trainer` expects (tests use it too)."""
    import torch

    class WithLoss(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
            logits = self.inner(input_ids, attention_mask, token_type_ids)
            return {"loss": task.loss(logits, {"labels": labels}), "logits": logits}

    return WithLoss(model)


def _weight_norm(model) -> float:
    """The L2 norm of the trainable weights after training: equal norms, the same training."""
    return float(sum(p.detach().double().pow(2).sum() for p in model.parameters() if p.requires_grad)) ** 0.5


def _timed_batches(
    model, task, train_f, tokenizer, args: argparse.Namespace, after_backward
) -> tuple[float, float]:
    """Forward and backward over the course trainer's batches, then `after_backward()`; examples/s and peak
    MB."""
    import torch

    from hft_lessons.devices import uses_cuda
    from hft_lessons.runtime import seed_everything
    from hft_lessons.training import PeakMemory

    sampler = task.batch_sampler(train_f, args.batch_size, args.seed, True)
    collate = task.collator(tokenizer)
    seed_everything(args.seed)  # as the course trainer does before its loop: the same dropout masks
    model.train()
    seen, start = 0, time.perf_counter()
    with PeakMemory(torch.device("cuda" if uses_cuda() else "cpu")) as peak:
        for epoch in range(args.epochs):
            sampler.set_epoch(epoch)
            for idx in sampler:
                batch = collate([train_f[i] for i in idx])
                task.loss(model(**batch), batch).backward()
                after_backward()
                seen += len(idx)
    return seen / (time.perf_counter() - start), peak.mb


def _model_only(model, task, train_f, tokenizer, args: argparse.Namespace) -> dict[str, float]:
    """Forward and backward and nothing else (no clipping, no optimizer step: not training): a ceiling for
    trainers."""
    speed, peak_mb = _timed_batches(
        model, task, train_f, tokenizer, args, lambda: model.zero_grad(set_to_none=True)
    )
    return {"examples_per_second": speed, "peak_memory_mb": peak_mb, "accuracy": float("nan")}


def _bare(
    model, task, train_f, eval_f, eval_raw, tokenizer, recipe, args: argparse.Namespace
) -> dict[str, float]:
    """The shortest correct training loop with the course trainer's batches, recipe and optimizer."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    from hft_lessons.training import TrainConfig, evaluate, make_optimizer, param_groups

    cfg = TrainConfig(lr=recipe.lr, head_lr=recipe.head_lr, layer_decay=recipe.layer_decay,
                      warmup_ratio=recipe.warmup_ratio, epochs=args.epochs, batch_size=args.batch_size,
                      seed=args.seed)
    optimizer = make_optimizer(param_groups(model, cfg), cfg.lr)
    total = len(task.batch_sampler(train_f, args.batch_size, args.seed, True)) * args.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    params = [p for p in model.parameters() if p.requires_grad]

    def step() -> None:
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    speed, peak_mb = _timed_batches(model, task, train_f, tokenizer, args, step)
    return {"examples_per_second": speed, "peak_memory_mb": peak_mb, "weight_norm": _weight_norm(model),
            "accuracy": evaluate(model, task, eval_f, eval_raw, tokenizer)["accuracy"]}


def main() -> None:
    """Run every (method, runner) pair in its own process and print the comparison."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    p.add_argument("--max-train", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--methods", default="full,lora")
    p.add_argument(
        "--runners",
        default=",".join(DEFAULT_RUNNERS),
        help="which of course, course_fast, hf_default, hf_grouped, model_only, bare to run (the ratios need "
        "a course runner and a Trainer one)",
    )
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per (method, runner), alternating, run i with seed i; medians are compared")
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--tmp", default="/tmp/hft_trainer_speed")
    p.add_argument("--one", nargs=2, metavar=("RUNNER", "METHOD"), help=argparse.SUPPRESS)
    p.add_argument("--results", default=None, help="append one row per run to this CSV")
    args = p.parse_args()
    runners = [r.strip() for r in args.runners.split(",") if r.strip()]
    unknown = sorted(set(runners) - set(RUNNERS))
    if unknown or not set(runners) & set(COURSE) or not set(runners) & set(TRAINER):
        p.error(
            f"--runners {args.runners!r}: give course and/or course_fast, and at least one of hf_default, "
            "hf_grouped "
            "(model_only and bare may be added)"
        )
    if args.repeats < 1:
        p.error(f"--repeats {args.repeats}: give a positive number of runs")
    if args.one:
        run = _one(args.one[0], args.one[1], args)
        if args.results:
            append_results(args.results, [result_row(args.one[1], args.one[0], args.seed, run,
                                                     _command(args.one[0], args.one[1], args))])
        print(json.dumps(run))
        return
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for method in args.methods.split(","):
        for repeat in range(args.repeats):
            for runner in runners:
                cmd = [sys.executable, __file__, "--one", runner, method, "--model", args.model,
                       "--max-train", str(args.max_train), "--epochs", str(args.epochs),
                       "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
                       "--tmp", args.tmp, "--seed", str(repeat)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                runs.setdefault((method, runner), []).append(r)
                if args.results:
                    args.seed = repeat
                    append_results(
                        args.results, [result_row(method, runner, repeat, r, _command(runner, method, args))]
                    )
                print(f"{method:5s} {runner:11s} seed {repeat} {r['examples_per_second']:8.1f} ex/s  "
                      f"peak {r['peak_memory_mb']:7.0f} MB  accuracy {r['accuracy']:.4f}", flush=True)
    rows = {
        key: {
            k: statistics.median(r[k] for r in rs)
            for k in ("examples_per_second", "peak_memory_mb", "accuracy")
        }
        for key, rs in runs.items()
    }
    print()
    if args.repeats > 1:
        print(f"medians over {args.repeats} runs each (seeds 0-{args.repeats - 1}):")
    for method in args.methods.split(","):
        others = {r: rows[(method, r)] for r in runners if r in TRAINER}
        fastest = max(others.values(), key=lambda r: r["examples_per_second"])
        accuracies = ", ".join(
            f"Trainer {r.removeprefix('hf_')} {o['accuracy']:.4f}" for r, o in others.items()
        )
        for name in (r for r in runners if r in COURSE):
            course = rows[(method, name)]
            ratios = ", ".join(f"{name} / Trainer {r.removeprefix('hf_')} = "
                               f"{course['examples_per_second'] / o['examples_per_second']:.2f}x"
                               for r, o in others.items())
            print(f"{method}: {ratios}, {name} / Trainer fastest = "
                  f"{course['examples_per_second'] / fastest['examples_per_second']:.2f}x; accuracy {name} "
                  f"{course['accuracy']:.4f} vs {accuracies}; peak memory {name} / Trainer fastest "
                  f"{course['peak_memory_mb'] / fastest['peak_memory_mb']:.2f}")
        if "bare" in runners:
            floor = rows[(method, "bare")]["examples_per_second"]
            print(
                f"{method}: the bare PyTorch loop (forward, backward, clipping, fused AdamW, schedule) "
                f"{floor:.1f} "
                f"ex/s = {floor / fastest['examples_per_second']:.2f}x Trainer fastest, accuracy "
                f"{rows[(method, 'bare')]['accuracy']:.4f}"
            )
        if "model_only" in runners:
            ceiling = rows[(method, "model_only")]["examples_per_second"]
            print(
                f"{method}: forward + backward alone (no optimizer, no clipping) {ceiling:.1f} ex/s: "
                f"a trainer that leaves the model's computation as it is cannot pass "
                f"{ceiling / fastest['examples_per_second']:.2f}x "
                f"Trainer fastest"
            )


if __name__ == "__main__":
    main()
