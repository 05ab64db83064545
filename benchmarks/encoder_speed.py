"""Time forward+backward of our BertEncoder vs transformers.BertModel: same weights, same batch, one run.

    HF_HUB_OFFLINE=1 HFT_DATA_DIR=/path/to/datasets python benchmarks/encoder_speed.py \\
        [--batch 32 --length 128]

Uses the packaged all-MiniLM-L6-v2 (or --model) and real SST-2 sentences (the shipped samples without
HFT_DATA_DIR). Runs are interleaved, ours then theirs, after warm-up; prints the median times and the ratio
HF time / ours (> 1: ours is faster; the goal is >= 0.95).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hft_lessons.backbone import load_backbone
from hft_lessons.data import load_task
from hft_lessons.profiles import MINILM
from hft_lessons.runtime import pick_device, seed_everything
from hft_lessons.transformer import BertEncoder


def _step(fn, batch: dict[str, torch.Tensor], device: torch.device) -> float:
    """One forward+backward; returns seconds."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn(batch).float().pow(2).mean().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    """Parse arguments, build both encoders with the same weights, time them interleaved, print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MINILM)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    seed_everything(0)
    device = pick_device(args.device)
    tokenizer, hf = load_backbone(args.model, device=device)
    ours = BertEncoder.from_hf(hf).to(device)
    hf.train(), ours.train()  # dropout on both, as in fine-tuning
    sentences = list(load_task("sst2")["train"]["sentence"])
    texts = [sentences[i % len(sentences)] for i in range(args.batch)]
    batch = tokenizer(
        texts, padding="max_length", truncation=True, max_length=args.length, return_tensors="pt"
    )
    batch = {k: v.to(device) for k, v in batch.items()}

    run_ours = lambda b: ours(b["input_ids"], b["attention_mask"], b["token_type_ids"])  # noqa: E731
    run_hf = lambda b: hf(**b).last_hidden_state  # noqa: E731
    for _ in range(args.warmup):
        _step(run_ours, batch, device), _step(run_hf, batch, device)
    times: dict[str, list[float]] = {"ours": [], "hf": []}
    for _ in range(args.repeats):  # interleaved, so background load hits both alike
        times["ours"].append(_step(run_ours, batch, device))
        hf.zero_grad(set_to_none=True), ours.zero_grad(set_to_none=True)
        times["hf"].append(_step(run_hf, batch, device))
        hf.zero_grad(set_to_none=True), ours.zero_grad(set_to_none=True)
    t_ours, t_hf = statistics.median(times["ours"]), statistics.median(times["hf"])
    shape = tuple(batch["input_ids"].shape)
    print(
        f"device {device} | torch {torch.__version__} | batch {shape} | forward+backward, "
        f"median of {args.repeats}"
    )
    print(f"ours (hft_lessons.transformer.BertEncoder): {t_ours * 1e3:8.1f} ms")
    print(f"transformers.BertModel ({hf.config._attn_implementation}):          {t_hf * 1e3:8.1f} ms")
    print(f"ratio HF time / ours: {t_hf / t_ours:.2f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
