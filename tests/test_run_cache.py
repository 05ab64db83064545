"""The run cache: a hit loads the trained run, any changed input misses, a damaged entry retrains, and one
environment variable moves or disables it."""

import dataclasses
import json

import pytest
import torch
from sst2_helpers import tiny_sst2

from hft_lessons import run_cache, training
from hft_lessons.backbone import load_backbone
from hft_lessons.methods import prepare_model
from hft_lessons.training import TrainConfig

CONFIG = TrainConfig(lr=1e-3, epochs=1, batch_size=16, progress=False, seed=0)


@pytest.fixture(scope="module")
def sst2():
    return tiny_sst2(48, 32)


def _model(task, method="lora", seed=0):
    _, bb = load_backbone("tiny-random-bert", verbose=False)
    torch.manual_seed(seed)
    return prepare_model(task.build_model(bb), method)


@pytest.fixture
def trainings(monkeypatch, tmp_path):
    """The cache in tmp_path, and a list that records every real training run."""
    monkeypatch.setenv(run_cache.CACHE_ENV, str(tmp_path / "cache"))
    calls = []
    real = training.train

    def counted(*args, **kwargs):
        calls.append(args[-1])
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train", counted)
    return calls


def _run(sst2, model, config=CONFIG, train_f=None):
    task, tok, train_default, eval_f, eval_raw = sst2
    return run_cache.cached_train(model, task, train_f or train_default, eval_f, eval_raw, tok, config,
                                  label="lora")


def _trained(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_a_second_identical_run_is_loaded_not_trained(sst2, trainings, capsys):
    first_model = _model(sst2[0])
    first = _run(sst2, first_model)
    assert len(trainings) == 1
    trained_lines = capsys.readouterr().out.splitlines()
    second_model = _model(sst2[0])
    second = _run(sst2, second_model)
    assert len(trainings) == 1, "the second run trained again"
    assert second.metrics == first.metrics and second.history == first.history
    assert second.train_seconds == first.train_seconds
    weights = _trained(second_model)
    assert all(torch.equal(weights[n], w) for n, w in _trained(first_model).items())
    reused_lines = capsys.readouterr().out.splitlines()
    assert "run cache: reused the trained run lora" in reused_lines[0]
    # after its one line, a reused run prints what the run printed when it trained: the epoch lines
    assert reused_lines[1:] == [x for x in trained_lines if x.startswith("[hft_lessons] epoch")]
    assert len(reused_lines) == 1 + CONFIG.epochs


@pytest.mark.parametrize("change", ["seed", "lr", "method", "data", "weights"])
def test_any_changed_input_misses(sst2, trainings, change):
    _run(sst2, _model(sst2[0]))
    config, model, train_f = CONFIG, _model(sst2[0]), None
    if change in ("seed", "lr"):
        config = dataclasses.replace(CONFIG, **{change: {"seed": 1, "lr": 2e-3}[change]})
    elif change == "method":
        model = _model(sst2[0], "bitfit")
    elif change == "data":
        train_f = sst2[2].select(range(40))
    else:
        model = _model(sst2[0], seed=1)  # another head initialisation
    _run(sst2, model, config, train_f)
    assert len(trainings) == 2


def test_a_progress_bar_does_not_miss(sst2, trainings):
    _run(sst2, _model(sst2[0]))
    _run(sst2, _model(sst2[0]), dataclasses.replace(CONFIG, progress=True))
    assert len(trainings) == 1


@pytest.mark.parametrize("damage", ["weights", "result", "key"])
def test_a_damaged_entry_is_trained_again_and_replaced(sst2, trainings, tmp_path, capsys, damage):
    _run(sst2, _model(sst2[0]))
    (entry,) = (tmp_path / "cache").iterdir()
    if damage == "weights":
        data = (entry / "weights.safetensors").read_bytes()
        (entry / "weights.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "result":
        (entry / "result.json").write_text("{not json")
    else:
        record = json.loads((entry / "result.json").read_text())
        (entry / "result.json").write_text(json.dumps({**record, "key": "0" * 32}))
    model = _model(sst2[0])
    before = _trained(model)
    _run(sst2, model)
    assert len(trainings) == 2
    assert "is damaged; training again" in capsys.readouterr().out
    assert any(not torch.equal(before[n], p) for n, p in _trained(model).items()), "it trained"
    _run(sst2, _model(sst2[0]))
    assert len(trainings) == 2, "the replaced entry is used"


def test_a_run_that_writes_checkpoints_always_trains(sst2, trainings, tmp_path):
    config = dataclasses.replace(CONFIG, output_dir=str(tmp_path / "out"), checkpoint_every=2)
    _run(sst2, _model(sst2[0]), config)
    _run(sst2, _model(sst2[0]), config)
    assert len(trainings) == 2 and not (tmp_path / "cache").exists()


def test_the_environment_variable_turns_the_cache_off(sst2, trainings, monkeypatch, tmp_path):
    monkeypatch.setenv(run_cache.CACHE_ENV, "off")
    assert run_cache.cache_dir() is None
    _run(sst2, _model(sst2[0]))
    _run(sst2, _model(sst2[0]))
    assert len(trainings) == 2
    assert not (tmp_path / "cache").exists()


def test_the_default_place_is_the_users_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv(run_cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert run_cache.cache_dir() == tmp_path / "hft_lessons" / "runs"
