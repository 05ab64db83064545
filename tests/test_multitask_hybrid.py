"""The multi-task hybrid: per-task adapters switch with the task, parts save and load apart, merging,
errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from hft_lessons import delta
from hft_lessons.backbone import load_backbone
from hft_lessons.data import load_samples
from hft_lessons.multitask import MultiTask
from hft_lessons.multitask_hybrid import (
    HybridDesign,
    TaskAdapters,
    build_hybrid,
    load_parts,
    load_task_part,
    run_request,
    save_parts,
    save_task_part,
    stored_parameters,
)
from hft_lessons.training import TrainConfig, train

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TASKS = ("sst2", "conll2003", "squad")


def _tiny(seed: int = 0):
    tokenizer, backbone = load_backbone("tiny-random-bert", verbose=False)
    torch.manual_seed(seed)
    return tokenizer, backbone


def _batch(tokenizer, n: int = 3) -> dict[str, torch.Tensor]:
    enc = tokenizer(["a good film", "a dull , slow plot", "Paris is in France"][:n], padding=True,
                    return_tensors="pt")
    return dict(enc)


def _perturb(model) -> None:
    """Give every trainable tensor random values (a fresh adapter is the identity, which would hide
    mix-ups)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def _outputs(model, batch) -> dict[str, torch.Tensor]:
    model.eval()
    out = {}
    with torch.no_grad():
        for name in model.task_names:
            logits = model(**batch, task=name)
            out[name] = (torch.cat([x.flatten() for x in logits]) if isinstance(logits, tuple)
                         else logits.flatten())
    return out


@pytest.fixture()
def hybrid():
    tokenizer, backbone = _tiny()
    model = build_hybrid(backbone, TASKS, "hybrid")
    _perturb(model)
    return tokenizer, model


def test_only_shared_delta_adapters_and_heads_train(hybrid) -> None:
    _, model = hybrid
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    shared = set(model.shared_parameters())
    per_task = [set(model.task_parameters(t)) for t in TASKS]
    assert shared and all(per_task)
    assert trainable == shared.union(*per_task)
    assert not shared & per_task[0] and not per_task[0] & per_task[1]
    assert all(".lora_" in n or n.endswith("bias") for n in shared)
    layers = model.backbone.config.num_hidden_layers
    # Pfeiffer: after the FFN
    assert sum(isinstance(m, TaskAdapters) for m in model.backbone.modules()) == layers


def test_each_task_runs_through_its_own_adapter_only(hybrid) -> None:
    tokenizer, model = hybrid
    batch = _batch(tokenizer)
    before = _outputs(model, batch)
    with torch.no_grad():  # change only the sst2 adapters
        for n, p in model.task_parameters("sst2").items():
            if ".adapters." in n:
                p.add_(0.5)
    after = _outputs(model, batch)
    assert not torch.allclose(before["sst2"], after["sst2"])
    assert (torch.equal(before["conll2003"], after["conll2003"])
            and torch.equal(before["squad"], after["squad"]))


def test_gradients_reach_only_the_batch_tasks_adapter(hybrid) -> None:
    tokenizer, model = hybrid
    model.train()
    logits = model(**_batch(tokenizer), task="conll2003")
    logits.sum().backward()
    grads = {t: [p.grad for n, p in model.task_parameters(t).items() if ".adapters." in n] for t in TASKS}
    assert all(g is not None and g.abs().sum() > 0 for g in grads["conll2003"])
    assert all(g is None for g in grads["sst2"] + grads["squad"])
    assert all(p.grad is not None for p in model.shared_parameters().values() if p.ndim == 2)


def test_save_and_load_each_part_bit_exact(hybrid, tmp_path) -> None:
    tokenizer, model = hybrid
    save_parts(model, tmp_path)
    counts = stored_parameters(tmp_path)
    assert counts["shared"] == sum(p.numel() for p in model.shared_parameters().values())
    for t in TASKS:
        assert counts[t] == sum(p.numel() for p in model.task_parameters(t).values())
    _, loaded = load_parts(tmp_path, backbone=_tiny()[1])
    for name, p in {**model.shared_parameters(), **{k: v for t in TASKS
                                                     for k, v in model.task_parameters(t).items()}}.items():
        assert torch.equal(p, dict(loaded.named_parameters())[name]), name
    batch = _batch(tokenizer)
    ref, got = _outputs(model, batch), _outputs(loaded, batch)
    assert all(torch.equal(ref[t], got[t]) for t in TASKS)
    # one task shipped alone: the shared folder and that task's folder
    alone = tmp_path / "alone"
    save_parts(model, alone)
    for t in ("sst2", "squad"):
        for f in (alone / "tasks" / t).iterdir():
            f.unlink()
        (alone / "tasks" / t).rmdir()
    _, one = load_parts(alone, backbone=_tiny()[1])
    assert one.task_names == ("conll2003",)
    assert torch.equal(_outputs(one, batch)["conll2003"], ref["conll2003"])


def test_merge_keeps_every_tasks_outputs_and_adapters_switchable(hybrid, tmp_path) -> None:
    tokenizer, model = hybrid
    batch = _batch(tokenizer)
    ref = _outputs(model, batch)
    save_parts(model, tmp_path / "parts")  # records which shared delta the task parts belong to
    delta.merge(model)
    assert not any(isinstance(m, delta.LoraLinear) for m in model.backbone.modules())
    merged = _outputs(model, batch)
    for t in TASKS:
        assert (merged[t] - ref[t]).abs().max() <= 1e-5, t
    save_task_part(model, "sst2", tmp_path / "sst2")  # task parts still save and load on a merged model
    load_task_part(model, tmp_path / "sst2")
    delta.unmerge(model)
    assert all(torch.allclose(_outputs(model, batch)[t], ref[t], atol=1e-6) for t in TASKS)


def test_error_lines(hybrid, tmp_path) -> None:
    tokenizer, model = hybrid
    save_parts(model, tmp_path)
    small = build_hybrid(_tiny()[1], ["sst2"], "hybrid")
    with pytest.raises(ValueError, match=r"^the part in .* is for task 'squad', "
                                         r"which this model does not have; it has: sst2$"):
        load_task_part(small, tmp_path / "tasks" / "squad")
    other = load_backbone("tiny-random-bert", verbose=False)[1]
    with torch.no_grad():
        other.embeddings.word_embeddings.weight.add_(1.0)  # another backbone of the same shape
    wrong = build_hybrid(other, TASKS, "hybrid")
    with pytest.raises(ValueError, match=r"^the sst2 part was trained on backbone .* not on this model's .*; "
                                         r"load it onto the backbone it was trained on$"):
        load_task_part(wrong, tmp_path / "tasks" / "sst2")
    retrained = build_hybrid(_tiny()[1], TASKS, "hybrid")  # the same backbone, another shared delta
    _perturb(retrained)
    with torch.no_grad():
        next(iter(retrained.shared_parameters().values())).add_(1.0)
    with pytest.raises(ValueError, match=r"^the sst2 part was trained with shared delta [0-9a-f]{16}, "
                                         r"but this model has [0-9a-f]{16}; "
                                         r"load the shared delta it was trained with$"):
        load_task_part(retrained, tmp_path / "tasks" / "sst2")
    with pytest.raises(ValueError, match=r"^the parts in .* were trained on backbone .*, not on "):
        load_parts(tmp_path, backbone=other)
    with pytest.raises(ValueError, match=r"^no saved part for task\(s\) ner in "):
        load_parts(tmp_path, tasks=["ner"], backbone=_tiny()[1])
    with pytest.raises(ValueError,
                       match=r"^unknown task adapter 'lora'; allowed: pfeiffer, adapter or None$"):
        HybridDesign("hybrid", "lora")
    with pytest.raises(ValueError, match=r"^unknown design 'x'; allowed: hybrid, shared, adapters"):
        build_hybrid(_tiny()[1], TASKS, "x")


def test_serving_switches_tasks_per_request(hybrid) -> None:
    tokenizer, model = hybrid
    label, p = run_request(model, tokenizer, "sst2", "a wonderful film")
    assert label in ("negative", "positive") and 0 <= p <= 1
    assert isinstance(run_request(model, tokenizer, "conll2003", "John lives in Paris"), list)
    text, prob = run_request(model, tokenizer, "squad",
                             {"question": "Where?", "context": "He lives in Paris."})
    assert isinstance(text, str) and 0 <= prob <= 1
    view = model.for_task("sst2")
    batch = _batch(tokenizer)
    model.eval()
    model(**batch, task="squad")  # leaves the squad adapters on
    with torch.no_grad():
        assert torch.equal(view(**batch), model(**batch, task="sst2"))


def test_joint_training_learns_and_trains_each_tasks_adapter() -> None:
    tokenizer, backbone = _tiny()
    task = MultiTask(list(TASKS), "round_robin")
    raw = {t: load_samples(t)["train"].select(range(12)) for t in TASKS}
    feats = task.tokenize(raw, tokenizer, {"sst2": 48, "conll2003": 48, "squad": 96})
    model = build_hybrid(backbone, task, "hybrid")
    start = {n: p.detach().clone() for t in TASKS for n, p in model.task_parameters(t).items()
             if ".adapters." in n}
    result = train(model, task, feats, None, None, tokenizer,
                   TrainConfig(lr=5e-3, epochs=3, batch_size=4, progress=False))
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    for t in TASKS:
        moved = [n for n, p in model.task_parameters(t).items()
                 if ".adapters." in n and not torch.equal(p, start[n])]
        assert moved, t


@pytest.mark.slow
def test_command_line_writes_parts_that_load_and_answer(tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HFT_PROFILE": "smoke", "OMP_NUM_THREADS": "1"}
    env.pop("HFT_DATA_DIR", None)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "hft_lessons", "multitask",
                           "--tasks", "sst2,conll2003,squad", "--method", "hybrid",
                           "--task-adapter", "pfeiffer", "--output-dir", str(out),
                           "--no-progress", "--max-train", "8", "--max-eval", "4"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"sst2_accuracy", "conll2003_f1", "squad_f1"} <= set(metrics)
    assert sorted(p.name for p in (out / "model" / "tasks").iterdir()) == sorted(TASKS)
    tokenizer, backbone = _tiny()
    _, model = load_parts(out / "model", backbone=backbone)
    assert run_request(model, tokenizer, "sst2", "fine")[0] in ("negative", "positive")
    ask = [sys.executable, "-m", "hft_lessons.multitask_hybrid", str(out / "model")]
    proc = subprocess.run(ask + ["--task", "squad", "--question", "Where?",
                                 "--context", "He lives in Paris."],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    reply = json.loads(proc.stdout.strip().splitlines()[-1])
    assert reply["task"] == "squad" and isinstance(reply["answer"][0], str)
    proc = subprocess.run(ask + ["--task", "ner", "--text", "x"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: no saved part for task(s) ner in {str(out / 'model')!r}; it has: conll2003, squad, sst2"]
