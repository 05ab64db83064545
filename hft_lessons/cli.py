"""The command line: `python -m hft_lessons finetune ...` and `python -m hft_lessons multitask ...`."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .profiles import (  # a light module: no torch before the arguments are parsed
    PROFILE_NAMES,
    TASK_NAMES,
    check_task_names,
)

__all__ = ["main", "build_parser", "run_finetune", "load_raw", "make_output_dir", "make_train_config",
           "cost_metrics", "finish_run", "run_multitask", "prepare_output", "prepare_run",
           "prepare_multitask", "run_config", "run_record", "check_lengths", "RunSaveError",
           "METHOD_CHOICES"]

EVAL_SPLITS = ("validation", "test")
# hft_lessons.methods.METHOD_NAMES, spelled out here for startup speed: importing methods loads torch and
# transformers (5-9 s), and a mistyped option must be answered at once. tests/test_faults.py checks they
# agree.
METHOD_CHOICES = ("full", "head", "adapter_layer", "adapter", "pfeiffer", "lora", "bitfit", "prefix", "ia3",
                  "hybrid", "unipelt")
# what a run writes into --output-dir (--overwrite removes exactly these)
RUN_ENTRIES = ("metrics.json", "model", "checkpoint", "run_config.json", ".checkpoint.tmp", ".checkpoint.old",
               ".model.tmp")


class RunSaveError(Exception):
    """Training finished but its weights could not be saved where asked (they went to a rescue folder)."""

    def __init__(self, message: str, metrics: dict[str, Any]) -> None:
        super().__init__(message)
        self.metrics = metrics


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
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _unit_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _task_list(text: str) -> str:
    """``--tasks`` checked here, before torch loads, so that a typo fails in a fraction of a second."""
    try:
        check_task_names(text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _count_per_task(text: str) -> int | dict[str, int]:
    """``N`` (every task) or ``task=N,task=N`` (those tasks; the others keep the profile's number)."""
    if "=" not in text:
        try:
            return _positive_int(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected a positive integer N or task=N pairs "
                                             f"(sst2=1500,squad=400), got {text!r}") from None
    counts: dict[str, int] = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name.strip() not in TASK_NAMES:
            raise argparse.ArgumentTypeError(f"unknown task {name.strip()!r} in {text!r}; "
                                             f"valid tasks: {', '.join(TASK_NAMES)}")
        counts[name.strip()] = _positive_int(value.strip())
    return counts


def _per_task(value: int | dict[str, int] | None, name: str) -> int | None:
    """The ``--max-train``/``--max-eval`` value that applies to task ``name`` (None: the profile's)."""
    return value.get(name) if isinstance(value, dict) else value


def _add_common(p: argparse.ArgumentParser, methods: tuple[str, ...],
                counts: Callable[[str], int | dict[str, int]] | None = None) -> None:
    p.add_argument("--method", required=True, choices=methods,
                   help="what trains (default recipes per method)")
    p.add_argument("--model", default=None,
                   help="backbone: a Hub id or local folder (default: the profile's)")
    p.add_argument("--data-dir", default=None, help="a folder of save_to_disk datasets, like HFT_DATA_DIR")
    p.add_argument("--profile", default=None, choices=PROFILE_NAMES,
                   help="run size (default: automatic)")
    per = " (N, or task=N,task=N for some tasks)" if counts is _count_per_task else ""
    p.add_argument("--max-train", type=counts or _positive_int, default=None,
                   help=f"training examples{per} (default: profile)")
    p.add_argument("--max-eval", type=counts or _positive_int, default=None,
                   help=f"evaluation examples{per} (default: profile)")
    p.add_argument("--epochs", type=_positive_int, default=None)
    p.add_argument("--batch-size", type=_positive_int, default=None)
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default: the method's recipe)")
    p.add_argument("--layer-decay", type=_unit_fraction, default=None,
                   help="each layer's lr is this times the one above's "
                        "(1 = one flat rate; default: the recipe's)")
    p.add_argument("--max-length", type=_positive_int, default=None)
    p.add_argument("--eval-split", default="validation", choices=EVAL_SPLITS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-dir", default=None, help="where metrics.json, weights and checkpoints go")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None,
                   help="optimizer steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --output-dir")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --output-dir (without it, such a folder is refused)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--fast-cpu", action="store_true",
                   help="on CPU: NumPy-drawn dropout masks, clipping inside fused AdamW, fused LoRA "
                        "projections, attention with a hand-written backward, BERT layers that skip padding, "
                        "oneDNN matrix multiplies where they measure faster than MKL and a word-embedding "
                        "table trained only where the data reaches (faster; same maths, other random numbers "
                        "and rounding)")


def build_parser() -> argparse.ArgumentParser:
    """The `hft_lessons` argument parser with its `finetune` and `multitask` commands."""
    parser = _OneLineParser(prog="python -m hft_lessons",
                            description="Hybrid fine-tuning from the command line")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    ft = sub.add_parser("finetune", help="fine-tune one task with one method")
    ft.add_argument("--task", required=True, choices=TASK_NAMES)
    _add_common(ft, METHOD_CHOICES)
    mt = sub.add_parser("multitask", help="train several tasks jointly on one shared backbone")
    mt.add_argument("--tasks", required=True, type=_task_list,
                    help=f"comma-separated subset of: {', '.join(TASK_NAMES)}")
    mt.add_argument("--sampling", default="temperature",
                    choices=("proportional", "temperature", "round_robin"))
    mt.add_argument("--temperature", type=_positive_float, default=2.0, help="T of --sampling temperature")
    mt.add_argument("--task-adapter", default=None, choices=("pfeiffer", "adapter"),
                    help="the multi-task hybrid: --method is the shared delta (head: none), plus this "
                         "bottleneck per task; --output-dir gets model/shared and model/tasks/<task> apart")
    _add_common(mt, METHOD_CHOICES, counts=_count_per_task)
    sub.add_parser("check", help="is this machine ready? versions, device, data, model, a smoke training")
    return parser


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)


def _check_paths(args: argparse.Namespace) -> None:
    """Validate paths and options that argparse cannot, before anything is loaded or written."""
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        _fail(f"--data-dir {args.data_dir!r} is not a folder")
    if args.resume and args.overwrite:
        _fail("--resume and --overwrite exclude each other: continue the run, or replace it")
    if args.resume and not args.output_dir:
        _fail("--resume needs --output-dir (the folder holding the checkpoint)")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.batch_size and args.batch_size % world:
        _fail(f"--batch-size {args.batch_size} cannot be split over {world} processes; "
              f"use a multiple of {world}")
    if not args.output_dir:
        return
    output = Path(args.output_dir)
    if output.exists() and not output.is_dir():
        _fail(f"--output-dir {args.output_dir!r} is a file, not a folder")
    existing = output
    while not existing.exists():  # the nearest folder that exists must be a writable folder
        existing = existing.parent
    if not existing.is_dir():
        _fail(f"--output-dir {args.output_dir!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        _fail(f"--output-dir {args.output_dir!r} cannot be written: {str(existing)!r} is read-only")
    if not _is_main_process():  # under torchrun the main process checks (and may repair) the folder alone
        return
    if args.resume:
        from .checkpoint import has_checkpoint, recover

        if output.is_dir():
            recover(output)  # finish or undo a checkpoint swap that a kill interrupted
        if not has_checkpoint(output):
            _fail(f"--resume: no checkpoint in {args.output_dir!r}; run without --resume first")
        return
    held = sorted(p.name for p in output.iterdir()) if output.is_dir() else []
    if held and not args.overwrite:
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        _fail(f"--output-dir {args.output_dir!r} already holds files ({shown}); pass --overwrite to replace "
              "that run, --resume to continue it, or choose an empty folder")


def run_config(args: argparse.Namespace, config: Any, backbone: str, **task: Any) -> dict[str, Any]:
    """Everything that decides the run's weights: stored in the checkpoint and in metrics.json."""
    from .checkpoint import TRAIN_FIELDS, code_version
    from .profiles import get_profile

    data_dir = args.data_dir or os.environ.get("HFT_DATA_DIR") or None
    return {**task, "method": args.method, "backbone": backbone, "profile": get_profile(args.profile).name,
            "max_train": args.max_train, "max_eval": args.max_eval, "max_length": args.max_length,
            "eval_split": args.eval_split, "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
            **{k: getattr(config, k) for k in TRAIN_FIELDS},
            "processes": int(os.environ.get("WORLD_SIZE", "1")), "code_version": code_version()}


def prepare_output(args: argparse.Namespace, run: dict[str, Any]) -> None:
    """Before any data or model loads: refuse a resume whose checkpoint differs, clear a run to overwrite."""
    if not args.output_dir:
        return
    from .checkpoint import CHECKPOINT, check_run_config, read_run_config

    output = Path(args.output_dir)
    if args.resume and _is_main_process():
        saved = read_run_config(output / CHECKPOINT)
        if saved is None:
            raise ValueError(f"the checkpoint in {args.output_dir!r} records no run configuration (written "
                             "by an older version or by the library); start afresh with --overwrite")
        check_run_config(saved, run)
    elif args.overwrite and output.is_dir() and _is_main_process():
        for name in RUN_ENTRIES:
            entry = output / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()


def prepare_run(args: argparse.Namespace, recipe_task: str, settings: Any, default_backbone: str,
                **fields: Any) -> dict[str, Any]:
    """Resolve the backbone, build the run configuration, check --output-dir against it (nothing loads yet).

    Returns ``{"backbone_path": ..., "config": run configuration}``; ``recipe_task`` names the recipe's task,
    ``fields`` name the task(s) in the run configuration.
    """
    from .backbone import backbone_label, resolve_backbone

    model_path = resolve_backbone(args.model or default_backbone)
    config = make_train_config(args, args.method, recipe_task, settings,
                               Path(args.output_dir) if args.output_dir else None)
    run = run_config(args, config, backbone_label(model_path), **fields)
    prepare_output(args, run)
    return {"backbone_path": model_path, "config": run}


def prepare_multitask(args: argparse.Namespace, task: Any, settings: dict[str, Any], first: str,
                      default_backbone: str) -> dict[str, Any]:
    """:func:`prepare_run` for a multi-task run (its tasks and sampling are part of the run configuration)."""
    return prepare_run(args, first, settings[first], default_backbone, tasks=list(task.names),
                       sampling=task.sampling, temperature=task.temperature)


def run_record(backbone: Any, args: argparse.Namespace, run: dict[str, Any]) -> dict[str, Any]:
    """What metrics.json records of the run: the backbone that really ran, the one asked for, the config."""
    from .backbone import backbone_label

    return {"backbone": backbone_label(backbone.name_or_path), "model_requested": args.model,
            "run_config": run}


def check_lengths(args: argparse.Namespace, name: str, settings: Any, tokenizer: Any, backbone: Any,
                  raws: tuple[Any, ...]) -> int:
    """The max length to use, or one line when it exceeds the model or leaves no room for QA context."""
    max_length = args.max_length or settings.max_length
    positions = getattr(backbone.config, "max_position_embeddings", None)
    if positions is not None and max_length > positions:
        raise ValueError(f"--max-length {max_length} exceeds the model's {positions} positions; "
                         f"use at most {positions}")
    if name == "squad":
        from .tasks.question_answering import window_stride

        stride = window_stride(max_length, settings.stride)
        questions = [q.lstrip() for raw in raws for q in raw["question"]]
        ids = tokenizer(questions, add_special_tokens=False)["input_ids"] if questions else []
        longest = max((len(x) for x in ids), default=0)
        if max_length <= longest + 3 + stride:
            raise ValueError(f"--max-length {max_length} leaves no room for squad's context: the longest "
                             f"question has {longest} tokens, so it must exceed {longest} + 3 + stride "
                             f"{stride} = "
                             f"{longest + 3 + stride}")
    return max_length


def load_raw(args: argparse.Namespace, name: str, settings: Any) -> tuple[Any, Any]:
    """One task's raw ``(train, eval)`` subsets as the options and profile say (bad split: one line)."""
    from .data import load_task, subset

    ds = load_task(name, data_dir=args.data_dir)
    if args.eval_split not in ds:
        _fail(f"--eval-split {args.eval_split!r} is not in the {name} data; available: {', '.join(ds)}")
    train_raw = subset(ds["train"], _per_task(args.max_train, name) or settings.max_train, args.seed)
    eval_raw = subset(ds[args.eval_split], _per_task(args.max_eval, name) or settings.max_eval, args.seed)
    return train_raw, eval_raw


def make_output_dir(args: argparse.Namespace, run: dict[str, Any] | None = None) -> Path | None:
    """Create ``--output-dir`` (once all was validated), record ``run`` in it, and return it, or None."""
    from .checkpoint import RUN_CONFIG_FILE, write_json_atomic

    output = Path(args.output_dir) if args.output_dir else None
    if output is not None:
        if not output.exists():
            _CREATED.append(output)
        output.mkdir(parents=True, exist_ok=True)
        if run is not None and _is_main_process():
            write_json_atomic(output / RUN_CONFIG_FILE, run)
    return output


_CREATED: list[Path] = []  # output folders this command created (removed again when it fails)


def make_train_config(args: argparse.Namespace, method: str, task: str, settings: Any,
                      output: Path | None, epochs: int | None = None, batch_size: int | None = None) -> Any:
    """The TrainConfig: command-line options first, then the method's recipe for the task, then profile."""
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
    """On the main process, save the trained weights and metrics.json to ``output`` (if any).

    When the weights cannot be saved there, they go to a new temporary folder, metrics.json is still written,
    and RunSaveError says where everything went.
    """
    if output is None or not _is_main_process():
        return
    from .checkpoint import write_json_atomic

    try:
        _save_weights(model, output / "model")
    except OSError as err:
        rescue = Path(tempfile.mkdtemp(prefix="hft-rescued-run-"))
        _save_weights(model, rescue / "model")
        where = output
        try:
            write_json_atomic(output / "metrics.json", metrics)
        except OSError:
            where = rescue
            write_json_atomic(rescue / "metrics.json", metrics)
        raise RunSaveError(f"could not save the weights to {str(output / 'model')!r} "
                           f"({err.strerror or err}); "
                           f"they were saved to {str(rescue / 'model')!r}, metrics.json to {str(where)!r}",
                           metrics) from None
    write_json_atomic(output / "metrics.json", metrics)


def run_finetune(args: argparse.Namespace) -> dict[str, Any]:
    """Fine-tune one task as the command line describes and return the metrics object."""
    # imported here, not at the top: parsing the command line stays fast without torch and transformers
    import torch

    from .backbone import load_backbone
    from .methods import prepare_model
    from .run_cache import cached_train
    from .runtime import setup
    from .tasks import get_task

    env = setup(seed=args.seed, profile=args.profile)
    settings = env.profile.task(args.task)
    prepared = prepare_run(args, args.task, settings, settings.backbone, task=args.task)
    run = prepared["config"]
    train_raw, eval_raw = load_raw(args, args.task, settings)
    task = get_task(args.task)
    tokenizer, backbone = load_backbone(prepared["backbone_path"])
    max_length = check_lengths(args, args.task, settings, tokenizer, backbone, (train_raw, eval_raw))
    train_features = task.tokenize(train_raw, tokenizer, max_length, settings.stride, train=True)
    eval_features = task.tokenize(eval_raw, tokenizer, max_length, settings.stride, train=False)
    torch.manual_seed(args.seed)  # the head's initial weights: as a notebook's `torch.manual_seed(env.seed)`
    model = prepare_model(task.build_model(backbone), args.method, args.task).to(env.device)
    output = make_output_dir(args, run)
    config = make_train_config(args, args.method, args.task, settings, output)
    # the run cache (hft_lessons.run_cache): a run trained before, by this command or a chapter, is loaded;
    # a run with --output always trains
    result = cached_train(model, task, train_features, eval_features, eval_raw, tokenizer, config,
                          label=f"{args.task}/{args.method}")
    metrics: dict[str, Any] = {
        **{k: round(v, 6) for k, v in result.metrics.items()},
        "task": args.task, "method": args.method, "profile": run["profile"],
        "train_examples": len(train_raw), "eval_examples": len(eval_raw), "eval_split": args.eval_split,
        "epochs": config.epochs, "lr": config.lr, "seed": args.seed,
        **cost_metrics(model, result), **run_record(backbone, args, run),
    }
    finish_run(model, output, metrics)
    return metrics


def run_multitask(args: argparse.Namespace) -> dict[str, Any]:
    """Train the tasks of ``--tasks`` jointly as the command line describes and return the metrics object."""
    # imported here, not at the top: parsing the command line stays fast without torch and transformers
    from .backbone import load_backbone
    from .methods import prepare_model
    from .multitask import MultiTask, MultiTaskDataset
    from .profiles import get_profile
    from .runtime import setup
    from .training import train

    task = MultiTask([t.strip() for t in args.tasks.split(",") if t.strip()], args.sampling,
                     getattr(args, "temperature", 2.0))
    env = setup(seed=args.seed, profile=args.profile)
    settings = {n: env.profile.task(n) for n in task.names}
    first = task.names[0]  # the first task's recipe drives the shared backbone
    run = prepare_multitask(args, task, settings, first, env.profile.backbone)
    raw = {n: load_raw(args, n, settings[n]) for n in task.names}
    tokenizer, backbone = load_backbone(run["backbone_path"])
    train_parts, eval_parts = {}, {}
    for t in task.tasks:
        s = settings[t.name]
        length = check_lengths(args, t.name, s, tokenizer, backbone, raw[t.name])
        train_parts[t.name] = t.tokenize(raw[t.name][0], tokenizer, length, s.stride, train=True)
        eval_parts[t.name] = t.tokenize(raw[t.name][1], tokenizer, length, s.stride, train=False)
    train_features, eval_features = MultiTaskDataset(train_parts), MultiTaskDataset(eval_parts)
    if getattr(args, "task_adapter", None):  # the multi-task hybrid: shared delta + an adapter per task
        from .multitask_hybrid import build_from_args

        model = build_from_args(task, backbone, args).to(env.device)
    else:
        model = prepare_model(task.build_model(backbone), args.method, first).to(env.device)
    output = make_output_dir(args, run["config"])
    config = make_train_config(args, args.method, first, settings[first], output,
                               epochs=max(s.epochs for s in settings.values()),
                               batch_size=min(s.batch_size for s in settings.values()))
    eval_raw = {n: r[1] for n, r in raw.items()}
    result = train(model, task, train_features, eval_features, eval_raw, tokenizer, config)
    metrics: dict[str, Any] = {
        **{k: round(v, 6) for k, v in result.metrics.items()},
        "tasks": list(task.names), "sampling": task.sampling, "temperature": task.temperature,
        "sampling_probabilities": {k: round(v, 4) for k, v in task.probabilities(train_features).items()},
        "method": args.method, "profile": get_profile(args.profile).name,
        "train_examples": {n: len(r[0]) for n, r in raw.items()},
        "eval_examples": {n: len(r[1]) for n, r in raw.items()}, "eval_split": args.eval_split,
        "epochs": config.epochs, "lr": config.lr, "seed": args.seed,
        **cost_metrics(model, result), **run_record(backbone, args, run["config"]),
    }
    finish_run(model, output, metrics)
    return metrics


def _is_main_process() -> bool:
    """True unless this is a secondary process under `accelerate launch` / torchrun."""
    return int(os.environ.get("RANK", "0")) == 0


def _save_weights(model, folder: Path) -> None:
    """Save what trained into a fresh ``folder`` (no old file stays beside new ones), then rename it."""
    from safetensors.torch import save_file

    from . import delta
    from .files import umask_mode

    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    if hasattr(model, "save_parts"):  # the multi-task hybrid: the shared delta and each task's part apart
        model.save_parts(tmp)
    elif delta.applied_configs(model):
        delta.save(model, tmp)
    else:
        tmp.mkdir(parents=True)
        tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        save_file(tensors, str(tmp / "weights.safetensors"))
        os.chmod(tmp / "weights.safetensors", umask_mode())
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)
    elif folder.exists() or folder.is_symlink():
        folder.unlink()
    os.replace(tmp, folder)


def _cleanup_created() -> None:
    """Remove the output folders this command created, when it fails before a checkpoint was written."""
    for folder in _CREATED:
        names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        if names <= {"run_config.json"}:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, validate, run, and print the metrics object as the last line."""
    # the environment check: hft_lessons.envcheck
    if (sys.argv[1:] if argv is None else argv)[:1] == ["check"]:
        from .envcheck import main as check

        return check((sys.argv[1:] if argv is None else argv)[1:])
    args = build_parser().parse_args(argv)
    _check_paths(args)
    _CREATED.clear()
    try:
        if args.command == "finetune":
            metrics = run_finetune(args)
        else:
            metrics = run_multitask(args)
    except RunSaveError as err:  # trained, but not saved where asked: the metrics still come out
        print(json.dumps(_printable(err.metrics)))
        sys.stderr.write(f"error: {err}\n")
        sys.exit(1)
    except (ValueError, OSError) as err:  # a bad task/method/config/file or an unwritable place: one line
        _cleanup_created()
        message = (str(err).splitlines() or [type(err).__name__])[0]
        if isinstance(err, OSError) and err.filename:
            message = f"{err.strerror or type(err).__name__}: {err.filename}"
        _fail(message)
    if _is_main_process():
        print(json.dumps(_printable(metrics)))
    return 0


def _printable(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics object with NaN/inf as null: valid JSON, as in metrics.json."""
    from .checkpoint import finite

    return finite(metrics)
