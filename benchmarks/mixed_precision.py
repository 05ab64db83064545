"""Time float32, bfloat16 and float16 (autocast) steps for MiniLM and BERT-base shapes; optionally train.

    python benchmarks/mixed_precision.py               # forward+backward at the gpu profile's shapes
    python benchmarks/mixed_precision.py --accuracy    # + a short SST-2 run per precision (course trainer)
    python benchmarks/mixed_precision.py --shapes 4x32 --repeats 2 --models minilm   # a quick try

Timing: a BERT encoder with a two-class head on its [CLS] vector, randomly initialised from the config of the
packaged all-MiniLM-L6-v2 (``minilm``) or of bert-base-uncased (``bert-base``: BertConfig's defaults, nothing
is downloaded); random token ids at the full sequence length, dropout on. Each step is forward, cross-entropy
and backward; float32 runs without autocast, bf16 and fp16 under ``torch.autocast`` (fp16 with a GradScaler),
as accelerate does for the course trainer. Median of ``--repeats`` timed steps after ``--warmup``, precisions
interleaved so that background load hits them alike. ``--accuracy`` also fine-tunes the packaged MiniLM on
SST-2 (the course trainer, ``--acc-method``) once per precision, and records accuracy and the trainer's
examples/s.

Writes a CSV (default benchmarks/results/mixed_precision.csv) whose first line names this script and the
command; ``hft_lessons.precision.read_measured_table`` reads it back and ``choose_mixed_precision`` picks from
it.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import platform
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from hft_lessons.profiles import PROFILES  # no torch: the options are checked before torch loads

PRECISIONS = ("fp32", "bf16", "fp16")
MODELS = ("minilm", "bert-base")
COLUMNS = (
    "model",
    "params",
    "measure",
    "batch",
    "length",
    "precision",
    "ms_per_step",
    "examples_per_second",
    "speedup_vs_fp32",
    "accuracy",
    "device",
)
RESULTS = Path(__file__).resolve().parent / "results" / "mixed_precision.csv"


def _shapes(text: str | None, profile: str) -> list[tuple[int, int]]:
    if text is None:
        tasks = PROFILES[profile].tasks.values()
        return sorted({(t.batch_size, t.max_length) for t in tasks}, key=lambda s: s[0] * s[1])
    shapes = []
    for part in text.split(","):
        try:
            batch, length = (int(x) for x in part.lower().split("x"))
        except ValueError:
            raise SystemExit(
                f"--shapes {text!r}: give BATCHxLENGTH pairs separated by commas, e.g. 32x128,12x384"
            ) from None
        if batch < 1 or length < 2:
            raise SystemExit(f"--shapes {text!r}: batch must be >= 1 and length >= 2")
        shapes.append((batch, length))
    return shapes


def _names(text: str, allowed: tuple[str, ...], option: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise SystemExit(f"{option} {text!r}: allowed: {', '.join(allowed)} (comma-separated)")
    return names


def parse_options(argv: list[str]) -> tuple[argparse.Namespace, list[str], list[str], list[tuple[int, int]]]:
    """The options, the models, the precisions and the shapes; a bad option exits with one line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument(
        "--precisions", default=",".join(PRECISIONS), help="comma-separated: fp32, bf16, fp16"
    )
    parser.add_argument(
        "--profile",
        default="gpu",
        choices=tuple(PROFILES),
        help="whose batch sizes and sequence lengths to time (default: gpu)",
    )
    parser.add_argument("--shapes", default=None, help="BATCHxLENGTH,... instead of the profile's shapes")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the course's choice)")
    parser.add_argument("--out", default=str(RESULTS), help="the CSV to write")
    parser.add_argument(
        "--accuracy", action="store_true", help="also fine-tune MiniLM on SST-2 per precision"
    )
    parser.add_argument(
        "--acc-method", default="full", help="the method of the accuracy runs (default: full)"
    )
    parser.add_argument("--acc-train", type=int, default=4000, help="SST-2 training sentences per run")
    parser.add_argument("--acc-eval", type=int, default=872, help="SST-2 validation sentences")
    parser.add_argument("--acc-epochs", type=int, default=1)
    args = parser.parse_args(argv[1:])
    models = _names(args.models, MODELS, "--models")
    precisions = _names(args.precisions, PRECISIONS, "--precisions")
    shapes = _shapes(args.shapes, args.profile)
    if args.repeats < 1 or args.warmup < 0:
        raise SystemExit(
            f"--repeats {args.repeats} --warmup {args.warmup}: give repeats >= 1 and warmup >= 0"
        )
    return args, models, precisions, shapes


if __name__ == "__main__":  # check the options before torch loads (~4 s on 2 cores): a bad one fails at once
    parse_options(sys.argv)

import torch  # noqa: E402
from torch import nn  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402

from hft_lessons.backbone import packaged_minilm_path  # noqa: E402
from hft_lessons.runtime import pick_device, seed_everything, synchronize  # noqa: E402


def model_config(name: str) -> BertConfig:
    """The BertConfig of ``minilm`` (the packaged all-MiniLM-L6-v2's) or ``bert-base``."""
    if name == "bert-base":
        return BertConfig()  # bert-base-uncased: 12 layers, 768 wide, 12 heads, vocabulary 30,522
    packaged = packaged_minilm_path()
    if packaged is not None:
        return BertConfig.from_pretrained(str(packaged))
    return BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


class Classifier(nn.Module):
    """A BERT encoder and a linear two-class head on the [CLS] vector."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)
        self.head = nn.Linear(config.hidden_size, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(
            self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        )


def _dtype(precision: str) -> torch.dtype | None:
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def make_step(model: nn.Module, precision: str, batch: int, length: int, device: torch.device):
    """A closure that runs one forward+backward at ``precision`` on a fixed random batch."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, model.bert.config.vocab_size, (batch, length), generator=g).to(device)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (batch,), generator=g).to(device)
    dtype = _dtype(precision)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(model(ids, mask), labels)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        model.zero_grad(set_to_none=True)

    return step


def time_model(
    name: str,
    shapes: list[tuple[int, int]],
    precisions: list[str],
    device: torch.device,
    warmup: int,
    repeats: int,
) -> list[dict[str, object]]:
    """Median forward+backward times of one randomly initialised model, per shape and precision."""
    seed_everything(0)
    model = Classifier(model_config(name)).to(device).train()
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for batch, length in shapes:
        steps = {p: make_step(model, p, batch, length, device) for p in precisions}
        for p in precisions:
            for _ in range(warmup):
                steps[p]()
        synchronize(device)
        times: dict[str, list[float]] = {p: [] for p in precisions}
        for _ in range(repeats):  # interleaved
            for p in precisions:
                start = time.perf_counter()
                steps[p]()
                synchronize(device)
                times[p].append(time.perf_counter() - start)
        for p in precisions:
            t = statistics.median(times[p])
            rows.append(
                {
                    "model": name,
                    "params": params,
                    "measure": "fwd_bwd",
                    "batch": batch,
                    "length": length,
                    "precision": p,
                    "ms_per_step": round(t * 1e3, 3),
                    "examples_per_second": round(batch / t, 2),
                    "accuracy": "",
                    "device": str(device),
                }
            )
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def train_accuracy(precisions: list[str], args: argparse.Namespace) -> list[dict[str, object]]:
    """Fine-tune the packaged MiniLM on SST-2 once per precision (course trainer): accuracy, speed."""
    from accelerate.state import AcceleratorState

    from hft_lessons.backbone import load_backbone
    from hft_lessons.cli import build_parser, load_raw, make_train_config
    from hft_lessons.methods import prepare_model
    from hft_lessons.profiles import MINILM, get_profile
    from hft_lessons.tasks import get_task
    from hft_lessons.training import train

    cli = build_parser().parse_args(
        [
            "finetune",
            "--task",
            "sst2",
            "--method",
            args.acc_method,
            "--max-train",
            str(args.acc_train),
            "--max-eval",
            str(args.acc_eval),
            "--epochs",
            str(args.acc_epochs),
            "--no-progress",
        ]
    )
    settings = get_profile(args.profile).task("sst2")
    train_raw, eval_raw = load_raw(cli, "sst2", settings)
    task = get_task("sst2")
    rows = []
    for p in precisions:
        # accelerate keeps one process-wide state, fixed by the first Accelerator: reset it for each precision
        AcceleratorState._reset_state(reset_partial_state=True)
        seed_everything(0)
        tokenizer, backbone = load_backbone(MINILM)
        train_features = task.tokenize(train_raw, tokenizer, settings.max_length, train=True)
        eval_features = task.tokenize(eval_raw, tokenizer, settings.max_length, train=False)
        torch.manual_seed(0)
        model = prepare_model(task.build_model(backbone), args.acc_method, "sst2").to(args.device_obj)
        config = make_train_config(cli, args.acc_method, "sst2", settings, None)
        config = dataclasses.replace(config, mixed_precision={"fp32": "no"}.get(p, p))
        result = train(model, task, train_features, eval_features, eval_raw, tokenizer, config)
        rows.append(
            {
                "model": "minilm",
                "params": sum(q.numel() for q in model.parameters()),
                "measure": f"train_sst2_{args.acc_method}",
                "batch": config.batch_size,
                "length": settings.max_length,
                "precision": p,
                "ms_per_step": round(1e3 * result.train_seconds / max(result.steps, 1), 3),
                "examples_per_second": round(result.train_examples_per_second, 2),
                "accuracy": round(result.metrics["accuracy"], 4),
                "device": str(args.device_obj),
            }
        )
        print(
            f"  trained sst2 ({args.acc_method}, {p}): accuracy {rows[-1]['accuracy']}, "
            f"{rows[-1]['examples_per_second']} examples/s",
            flush=True,
        )
    return rows


def add_speedups(rows: list[dict[str, object]]) -> None:
    """Each row's speed-up over float32 (same model, measure, shape): float32's step time / its own."""
    base = {
        (r["model"], r["measure"], r["batch"], r["length"]): r["ms_per_step"]
        for r in rows
        if r["precision"] == "fp32"
    }
    for r in rows:
        ref = base.get((r["model"], r["measure"], r["batch"], r["length"]))
        r["speedup_vs_fp32"] = round(float(ref) / float(r["ms_per_step"]), 3) if ref else ""


def header(argv: list[str], device: torch.device) -> str:
    """The CSV's first line: the script, the command, when, and on what."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"# written by benchmarks/mixed_precision.py: python {shlex.join(argv)} | {when} | device {device} "
        f"({gpu}) | torch {torch.__version__} | float32 matmul precision "
        f"{torch.get_float32_matmul_precision()}"
    )


def write_csv(out: Path, rows: list[dict[str, object]], argv: list[str], device: torch.device) -> None:
    """The rows, with their speed-ups over float32, under the header line."""
    add_speedups(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        f.write(header(argv, device) + "\n")
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def print_table(rows: list[dict[str, object]]) -> None:
    """The rows as an aligned text table."""
    cols = tuple(c for c in COLUMNS if c not in ("params", "device"))  # the CSV less two columns
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.rjust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).rjust(widths[c]) for c in cols))


def main(argv: list[str] | None = None) -> int:
    """Parse the options, time (and train) every model and precision, write the CSV, print a table."""
    argv = sys.argv if argv is None else argv
    args, models, precisions, shapes = parse_options(argv)
    device = pick_device(args.device)
    args.device_obj = device
    if device.type == "cuda" and "bf16" in precisions and not torch.cuda.is_bf16_supported():
        print("bf16 is not supported on this GPU: left out", flush=True)
        precisions = [p for p in precisions if p != "bf16"]
    if "fp32" not in precisions:
        precisions = ["fp32", *precisions]  # the reference every speed-up is measured against

    out = Path(args.out)
    rows: list[dict[str, object]] = []
    for name in models:
        print(f"timing {name}: shapes {shapes}, precisions {precisions} on {device}", flush=True)
        rows += time_model(name, shapes, precisions, device, args.warmup, args.repeats)
    write_csv(
        out, rows, argv, device
    )  # written now too, so that a run stopped during training keeps the timing
    print_table(rows)
    if args.accuracy:
        print(
            f"training SST-2 per precision ({args.acc_train} sentences, {args.acc_epochs} epoch(s))",
            flush=True,
        )
        for p in precisions:
            rows += train_accuracy([p], args)
            write_csv(out, rows, argv, device)
        print_table(rows)
    print(f"wrote {out}")
    from hft_lessons.precision import choose_mixed_precision, read_measured_table

    table = read_measured_table(out)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    for name in models:
        size = next(int(r["params"]) for r in rows if r["model"] == name)
        print(
            f"rule (hft_lessons.precision) on {device.type}, {name} ({size:,} parameters): "
            f"{choose_mixed_precision(device.type, bf16, size, measured_table=table)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
