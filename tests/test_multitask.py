"""Multi-task training: sampling probabilities, single-task batches, determinism, a joint run, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
import torch

from hft_lessons import delta
from hft_lessons.backbone import load_backbone
from hft_lessons.data import load_samples
from hft_lessons.multitask import (
    MultiTask,
    MultiTaskBatchSampler,
    MultiTaskDataset,
    MultiTaskModel,
    sampling_probabilities,
)
from hft_lessons.profiles import TASK_NAMES as TASKS
from hft_lessons.training import TrainConfig, train

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HFT_PROFILE": "smoke", "OMP_NUM_THREADS": "1"}
ENV.pop("HFT_DATA_DIR", None)
MAX_LENGTH = {"sst2": 48, "conll2003": 48, "squad": 96}


# --- sampling probabilities --------------------------------------------------------------------------------


def test_proportional_probabilities() -> None:
    assert sampling_probabilities([100, 10], "proportional") == pytest.approx([100 / 110, 10 / 110])
    assert sampling_probabilities([100, 10], "proportional") == pytest.approx([0.909, 0.091], abs=1e-3)


def test_temperature_probabilities() -> None:
    # T = 2: sqrt(100) = 10, sqrt(10) = 3.162 -> 10 / 13.162 = 0.760
    assert sampling_probabilities([100, 10], "temperature", 2.0) == pytest.approx([0.760, 0.240], abs=1e-3)
    assert sampling_probabilities([100, 10], "temperature", 1.0) == pytest.approx([100 / 110, 10 / 110])
    assert sampling_probabilities([100, 10], "temperature", 1e6) == pytest.approx([0.5, 0.5], abs=1e-4)


def test_round_robin_probabilities_are_uniform() -> None:
    assert sampling_probabilities([100, 10, 1], "round_robin") == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("call, message", [
    (lambda: sampling_probabilities([1, 2], "uniform"), "unknown sampling strategy 'uniform'; allowed: "),
    (lambda: sampling_probabilities([1, 2], "temperature", 0), "temperature must be a positive number"),
    (lambda: sampling_probabilities([], "proportional"), "sizes must be a non-empty list"),
    (lambda: MultiTask([]), "no tasks given; choose one or more of: sst2, conll2003, squad"),
    (lambda: MultiTask(["sst2", "foo"]), "unknown task 'foo'; valid tasks: sst2, conll2003, squad"),
    (lambda: MultiTask(["sst2", "sst2"]), "each task may be listed once"),
    (lambda: MultiTask(["sst2"], sampling="random"), "unknown sampling strategy 'random'"),
])
def test_errors_are_one_line(call, message: str) -> None:
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)


# --- the batch sampler -------------------------------------------------------------------------------------


def make_sampler(
    strategy: str, sizes=(100, 10), batch_size: int = 10, seed: int = 0
) -> MultiTaskBatchSampler:
    g = torch.Generator().manual_seed(5)
    lengths = [torch.randint(3, 30, (n,), generator=g).tolist() for n in sizes]
    return MultiTaskBatchSampler(lengths, batch_size, strategy, 2.0, seed)


def task_of(sampler: MultiTaskBatchSampler, batch: list[int]) -> int:
    tasks = {next(t for t in range(len(sampler.sizes)) if sampler.offsets[t] <= i < sampler.offsets[t + 1])
             for i in batch}
    assert len(tasks) == 1, "a batch mixes tasks"
    return tasks.pop()


@pytest.mark.parametrize("strategy", ["proportional", "temperature", "round_robin"])
def test_batches_are_single_task_and_as_many_as_the_tasks_have(strategy: str) -> None:
    sampler = make_sampler(strategy)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 11  # 10 + 1 batches of 10
    tasks = [task_of(sampler, b) for b in batches]
    assert all(len(set(b)) == len(b) for b in batches)
    assert Counter(tasks) == Counter(dict(enumerate(sampler.counts())))


def test_proportional_covers_every_example_once() -> None:
    sampler = make_sampler("proportional")
    rows = sorted(i for b in sampler for i in b)
    assert rows == list(range(110))


def test_temperature_shares_follow_the_probabilities() -> None:
    sampler = make_sampler("temperature")
    assert sampler.counts() == [8, 3]  # 11 batches × [0.760, 0.240] = [8.36, 2.64] -> largest remainder
    batches = list(sampler)
    small = [i for b in batches if task_of(sampler, b) == 1 for i in b]
    assert len(small) == 30 and set(small) == set(range(100, 110))  # the small task repeats: 3 passes
    big = [i for b in batches if task_of(sampler, b) == 0 for i in b]
    assert len(set(big)) == len(big) == 80  # the big one: a random 80 of its 100 this epoch


def test_round_robin_alternates() -> None:
    sampler = make_sampler("round_robin", sizes=(40, 40, 20))
    tasks = [task_of(sampler, b) for b in sampler]
    assert tasks == [0, 1, 2] * 3 + [0]  # 10 batches, shares 4 / 3 / 3 (the earlier task takes the remainder)
    sampler = make_sampler("round_robin")
    assert [task_of(sampler, b) for b in sampler] == [0, 1] * 5 + [0]


@pytest.mark.parametrize("strategy", ["proportional", "temperature", "round_robin"])
def test_order_is_fixed_by_seed_and_epoch(strategy: str) -> None:
    a, b = make_sampler(strategy), make_sampler(strategy)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)
    b.set_epoch(2)
    assert list(a) != list(b)
    c = make_sampler(strategy, seed=1)
    c.set_epoch(1)
    assert list(a) != list(c)


# --- the joint run ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def joint():
    torch.manual_seed(0)
    tokenizer, backbone = load_backbone("tiny-random-bert")
    task = MultiTask(list(TASKS), sampling="temperature")
    data = {n: load_samples(n) for n in TASKS}
    raw_train = {n: data[n]["train"].select(range(min(24, len(data[n]["train"])))) for n in TASKS}
    raw_eval = {n: data[n]["validation"].select(range(min(12, len(data[n]["validation"])))) for n in TASKS}
    train_features = task.tokenize(raw_train, tokenizer, MAX_LENGTH, stride={"squad": 24}, train=True)
    eval_features = task.tokenize(raw_eval, tokenizer, MAX_LENGTH, stride={"squad": 24}, train=False)
    return task, tokenizer, backbone, train_features, eval_features, raw_eval


def losses(model, task: MultiTask, features: MultiTaskDataset, tokenizer) -> dict[str, float]:
    """Mean loss of each task over its training features (eval mode)."""
    collate = task.collator(tokenizer)
    model.eval()
    out = {}
    with torch.no_grad():
        for t, name in enumerate(task.names):
            rows = [features[i] for i in features.task_range(t)]
            batch = collate(rows)
            out[name] = task.loss(model(**batch), batch).item()
    return out


def test_collator_keeps_qa_offsets_out_and_tags_the_task(joint) -> None:
    task, tokenizer, _, train_features, eval_features, _ = joint
    collate = task.collator(tokenizer)
    squad = task.names.index("squad")
    rows = [eval_features[i] for i in list(eval_features.task_range(squad))[:3]]
    batch = collate(rows)
    assert "offset_mapping" not in batch and "example_id" not in batch
    assert batch["task"].tolist() == [squad] * 3
    with pytest.raises(ValueError, match="one task"):
        collate([train_features[0], train_features[len(train_features) - 1]])


@pytest.mark.slow
def test_joint_training_lowers_every_loss_and_reports_per_task_metrics(joint, tmp_path) -> None:
    task, tokenizer, backbone, train_features, eval_features, raw_eval = joint
    torch.manual_seed(0)
    model = task.build_model(backbone)
    assert isinstance(model, MultiTaskModel) and set(model.heads) == set(TASKS)
    delta.apply(model, delta.LoraConfig(r=4, alpha=8))
    before = losses(model, task, train_features, tokenizer)
    config = TrainConfig(
        lr=3e-3, epochs=6, batch_size=8, progress=False, mixed_precision="no", warmup_ratio=0.0
    )
    result = train(model, task, train_features, eval_features, raw_eval, tokenizer, config)
    after = losses(model, task, train_features, tokenizer)
    assert all(after[n] < before[n] for n in TASKS), (before, after)
    metrics = result.metrics
    for key in ("sst2_accuracy", "conll2003_f1", "squad_f1", "squad_exact_match", "average"):
        assert key in metrics
    expected = (metrics["sst2_accuracy"] + metrics["conll2003_f1"] + metrics["squad_f1"] / 100) / 3
    assert metrics["average"] == pytest.approx(expected)
    assert 0.0 <= metrics["average"] <= 1.0
    delta.save(model, tmp_path / "mt")  # shared delta + every head
    fresh = task.build_model(load_backbone("tiny-random-bert")[1])
    delta.load(fresh, tmp_path / "mt")
    batch = task.collator(tokenizer)([train_features[0], train_features[1]])
    model.eval()
    fresh.eval()
    assert torch.equal(model(**batch), fresh(**batch))


# --- the command line -------------------------------------------------------------------------------------


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hft_lessons", *args], capture_output=True, text=True,
                          env=ENV, timeout=300)


def test_cli_multitask_prints_and_writes_per_task_metrics(tmp_path) -> None:
    out = tmp_path / "mt"
    proc = run_cli(["multitask", "--tasks", "sst2,conll2003", "--method", "lora", "--profile", "smoke",
                    "--max-train", "sst2=24,conll2003=16", "--max-eval", "12", "--no-progress",
                    "--output-dir", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("sst2_accuracy", "conll2003_f1", "average", "trainable_params", "total_params",
                "train_seconds", "train_examples_per_second", "peak_memory_mb"):
        assert key in last
    assert last["tasks"] == ["sst2", "conll2003"] and last["sampling"] == "temperature"
    assert last["train_examples"] == {"sst2": 24, "conll2003": 16}  # per-task budgets
    assert last["eval_examples"] == {"sst2": 12, "conll2003": 12}
    assert 0 < last["trainable_params"] < last["total_params"]
    assert json.loads((out / "metrics.json").read_text()) == last
    assert (out / "model" / "delta_config.json").exists()


@pytest.mark.parametrize("value, parsed", [("40", 40),
                                           ("squad=400, sst2=1500", {"squad": 400, "sst2": 1500})])
def test_cli_budgets_are_one_number_or_one_per_task(value, parsed) -> None:
    from hft_lessons.cli import build_parser

    args = build_parser().parse_args(["multitask", "--tasks", "sst2,squad", "--method", "lora",
                                      "--max-train", value])
    assert args.max_train == parsed


@pytest.mark.parametrize("value, line", [
    ("sst5=3", "error: argument --max-train: unknown task 'sst5' in 'sst5=3'; "
               "valid tasks: sst2, conll2003, squad"),
    ("sst2=0", "error: argument --max-train: expected a positive integer, got '0'"),
    ("sst2", "error: argument --max-train: expected a positive integer N or task=N pairs "
             "(sst2=1500,squad=400), got 'sst2'"),
])
def test_cli_bad_budget_is_one_line(value, line, capsys) -> None:
    from hft_lessons.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["multitask", "--tasks", "sst2", "--method", "lora", "--max-train", value])
    assert capsys.readouterr().err.strip() == line


def test_cli_bad_task_is_one_line_and_leaves_no_output(tmp_path) -> None:
    out = tmp_path / "bad"
    proc = run_cli(["multitask", "--tasks", "sst2,foo", "--method", "lora", "--profile", "smoke",
                    "--output-dir", str(out)])
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "valid tasks: sst2, conll2003, squad" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
