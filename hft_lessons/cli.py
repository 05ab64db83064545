"""The command line: `python -m hft_lessons finetune ...` and `python -m hft_lessons multitask ...`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "run_finetune", "load_raw", "make_output_dir", "make_train_config",
           "cost_metrics", "finish_run"]

TASKS = ("sst2", "conll2003", "squad")
EVAL_SPLITS = ("validation", "test")


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line naming what is allowed, exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print one line and exit 2."""
        sys.stderr.write(f"error: {message}\n")
        sys.exit(2)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _unit_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _add_common(p: argparse.ArgumentParser, methods: tuple[str, ...]) -> None:
    p.add_argument("--method", required=True, choices=methods, help="what trains (default recipes per method)")
    p.add_argument("--model", default=None, help="backbone: a Hub id or local folder (default: the profile's)")
    p.add_argument("--data-dir", default=None, help="a folder of save_to_disk datasets, like HFT_DATA_DIR")
    p.add_argument("--profile", default=None, choices=("smoke", "cpu", "gpu"), help="run size (default: automatic)")
    p.add_argument("--max-train", type=_positive_int, default=None, help="training examples (default: profile)")
    p.add_argument("--max-eval", type=_positive_int, default=None, help="evaluation examples (default: profile)")
    p.add_argument("--epochs", type=_positive_int, default=None)
    p.add_argument("--batch-size", type=_positive_int, default=None)
    p.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default: the method's recipe)")
    p.add_argument("--layer-decay", type=_unit_fraction, default=None,
                   help="each layer's lr is this times the one above's (1 = one flat rate; default: the recipe's)")
    p.add_argument("--max-length", type=_positive_int, default=None)
    p.add_argument("--eval-split", default="validation", choices=EVAL_SPLITS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-dir", default=None, help="where metrics.json, weights and checkpoints go")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, help="optimizer steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --output-dir")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--fast-cpu", action="store_true",
                   help="on CPU: NumPy-drawn dropout masks, clipping inside fused AdamW, fused LoRA projections, "
                        "attention with a hand-written backward, BERT layers that skip padding, oneDNN matrix "
                        "multiplies where they measure faster than MKL and a word-embedding "
                        "table trained only where the data reaches (faster; same maths, other random numbers and "
                        "rounding)")


def build_parser() -> argparse.ArgumentParser:
    """The `hft_lessons` argument parser with its `finetune` and `multitask` commands."""
    from .methods import METHOD_NAMES

    parser = _OneLineParser(prog="python -m hft_lessons", description="Hybrid fine-tuning from the command line")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    ft = sub.add_parser("finetune", help="fine-tune one task with one method")
    ft.add_argument("--task", required=True, choices=TASKS)
    _add_common(ft, METHOD_NAMES)
    mt = sub.add_parser("multitask", help="train several tasks jointly on one shared backbone")
    mt.add_argument("--tasks", required=True, help=f"comma-separated subset of: {', '.join(TASKS)}")
    mt.add_argument("--sampling", default="temperature", choices=("proportional", "temperature", "round_robin"))
    mt.add_argument("--temperature", type=_positive_float, default=2.0, help="T of --sampling temperature")
    mt.add_argument("--task-adapter", default=None, choices=("pfeiffer", "adapter"),
                    help="the multi-task hybrid: --method is the shared delta (head: none), plus this bottleneck "
                         "per task; --output-dir gets model/shared and model/tasks/<task> apart")
    _add_common(mt, METHOD_NAMES)
    return parser


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)


def _check_paths(args: argparse.Namespace) -> None:
    """Validate paths and options that argparse cannot, before anything is written."""
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        _fail(f"--data-dir {args.data_dir!r} is not a folder")
    if args.resume and not args.output_dir:
        _fail("--resume needs --output-dir (the folder holding the checkpoint)")
    if args.resume and not (Path(args.output_dir) / "checkpoint" / "state.pt").exists():
        _fail(f"--resume: no checkpoint in {args.output_dir!r}; run without --resume first")
    if args.output_dir and Path(args.output_dir).is_file():
        _fail(f"--output-dir {args.output_dir!r} is a file, not a folder")


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def load_raw(args: argparse.Namespace, name: str, settings: Any) -> tuple[Any, Any]:
    """One task's raw ``(train, eval)`` subsets as the options and profile settings say (bad split: one line)."""
    from .data import load_task, subset

    ds = load_task(name, data_dir=args.data_dir)
    if args.eval_split not in ds:
        _fail(f"--eval-split {args.eval_split!r} is not in the {name} data; available: {', '.join(ds)}")
    train_raw = subset(ds["train"], args.max_train or settings.max_train, args.seed)
    eval_raw = subset(ds[args.eval_split], args.max_eval or settings.max_eval, args.seed)
    return train_raw, eval_raw


def make_output_dir(args: argparse.Namespace) -> Path | None:
    """Create ``--output-dir`` (once everything was validated) and return it, or None."""
    output = Path(args.output_dir) if args.output_dir else None
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    return output


def make_train_config(args: argparse.Namespace, method: str, task: str, settings: Any,
                      output: Path | None, epochs: int | None = None, batch_size: int | None = None) -> Any:
    """The TrainConfig: command-line options first, then the method's recipe for the task, then the profile."""
    from .methods import train_config

    overrides: dict[str, Any] = {"seed": args.seed, "output_dir": str(output) if output else None,
                                 "checkpoint_every": args.checkpoint_every, "resume": args.resume,
                                 "progress": not args.no_progress, "fast_cpu": args.fast_cpu}
    if args.lr is not None:  # one learning rate for everything, the head included
        overrides.update(lr=args.lr, head_lr=None)
    if args.layer_decay is not None:
        overrides["layer_decay"] = args.layer_decay
    if args.epochs or epochs:
        overrides["epochs"] = args.epochs or epochs
    if args.batch_size or batch_size:
        overrides["batch_size"] = args.batch_size or batch_size
    return train_config(method, settings, task, **overrides)


def cost_metrics(model: Any, result: Any) -> dict[str, Any]:
    """Parameter counts and the run's cost (time, throughput, peak memory) for the metrics object."""
    from . import delta

    trainable, total = delta.count_parameters(model)
    return {
        "trainable_params": trainable, "total_params": total,
        "train_seconds": round(result.train_seconds, 2),
        "train_examples_per_second": round(result.train_examples_per_second, 2),
        "peak_memory_mb": round(result.peak_memory_mb, 1), "processes": result.processes,
    }


def finish_run(model: Any, output: Path | None, metrics: dict[str, Any]) -> None:
    """On the main process, save the trained weights and metrics.json to ``output`` (if any)."""
    if output is not None and _is_main_process():
        _save_weights(model, output / "model")
        _write_json_atomic(output / "metrics.json", metrics)


def run_finetune(args: argparse.Namespace) -> dict[str, Any]:
    """Fine-tune one task as the command line describes and return the metrics object."""
    import torch

    from .backbone import load_backbone
    from .methods import prepare_model
    from .profiles import get_profile
    from .runtime import setup
    from .tasks import get_task
    from .training import train

    env = setup(seed=args.seed, profile=args.profile)
    settings = env.profile.task(args.task)
    train_raw, eval_raw = load_raw(args, args.task, settings)
    task = get_task(args.task)
    tokenizer, backbone = load_backbone(args.model or settings.backbone)
    max_length = args.max_length or settings.max_length
    train_features = task.tokenize(train_raw, tokenizer, max_length, settings.stride, train=True)
    eval_features = task.tokenize(eval_raw, tokenizer, max_length, settings.stride, train=False)
    torch.manual_seed(args.seed)  # the head's initial weights: the same as a notebook's `torch.manual_seed(env.seed)`
    model = prepare_model(task.build_model(backbone), args.method, args.task).to(env.device)
    output = make_output_dir(args)
    config = make_train_config(args, args.method, args.task, settings, output)
    result = train(model, task, train_features, eval_features, eval_raw, tokenizer, config)
    metrics: dict[str, Any] = {
        **{k: round(v, 6) for k, v in result.metrics.items()},
        "task": args.task, "method": args.method, "profile": get_profile(args.profile).name,
        "train_examples": len(train_raw), "eval_examples": len(eval_raw), "eval_split": args.eval_split,
        "epochs": config.epochs, "lr": config.lr, "seed": args.seed,
        **cost_metrics(model, result),
    }
    finish_run(model, output, metrics)
    return metrics


def _is_main_process() -> bool:
    """True unless this is a secondary process under `accelerate launch` / torchrun."""
    return int(os.environ.get("RANK", "0")) == 0


def _save_weights(model, folder: Path) -> None:
    """Save what trained: the delta and head through hft_lessons.delta, or every trained tensor."""
    from safetensors.torch import save_file

    from . import delta

    if hasattr(model, "save_parts"):  # the multi-task hybrid: the shared delta and each task's part apart
        model.save_parts(folder)
        return
    if delta.applied_configs(model):
        delta.save(model, folder)
        return
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    tmp = folder / ".weights.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / "weights.safetensors")


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, validate, run, and print the metrics object as the last line."""
    args = build_parser().parse_args(argv)
    _check_paths(args)
    try:
        if args.command == "finetune":
            metrics = run_finetune(args)
        else:
            from .multitask import run_multitask

            metrics = run_multitask(args)
    except ValueError as err:  # a bad task/method/config/file: one line, no traceback
        _fail(str(err))
    if _is_main_process():
        print(json.dumps(metrics))
    return 0
