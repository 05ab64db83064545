"""Run profiles, seeding and device choice."""

import random

import numpy as np
import pytest
import torch

from hft_lessons import devices, runtime
from hft_lessons.profiles import PROFILE_NAMES, PROFILES, TASK_NAMES, check_task_names, get_profile


def test_every_profile_has_every_task():
    for name in PROFILE_NAMES:
        prof = PROFILES[name]
        assert set(prof.tasks) == set(TASK_NAMES)
        for settings in prof.tasks.values():
            assert settings.epochs >= 1 and settings.batch_size >= 1 and settings.max_length >= 32
    assert PROFILES["gpu"].backbone == PROFILES["full"].backbone == "bert-base-uncased"
    assert PROFILES["gpu"].task("sst2").max_train == 20000  # sized for a free Colab T4
    assert PROFILES["full"].task("sst2").max_train is None  # the published runs: all the data
    # the T4 profile trains on more than cpu, so it should beat cpu's numbers
    for task in TASK_NAMES:
        gpu, cpu = PROFILES["gpu"].task(task), PROFILES["cpu"].task(task)
        assert (gpu.max_train or 10**9) > cpu.max_train and gpu.epochs >= cpu.epochs - 1
    assert PROFILES["cpu"].backbone == "sentence-transformers/all-MiniLM-L6-v2"
    assert PROFILES["cpu"].task("sst2").max_train == 4000
    assert PROFILES["cpu"].task("squad").stride > 0


def test_profile_choice_order(monkeypatch):
    monkeypatch.delenv("HFT_PROFILE", raising=False)
    monkeypatch.delenv("HFT_DEVICE", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.setenv("CI", "true")
    assert get_profile().name == "smoke"
    monkeypatch.delenv("CI")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_profile().name == "gpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile().name == "cpu"
    monkeypatch.setenv("HFT_PROFILE", "gpu")
    assert get_profile().name == "gpu"
    assert get_profile("smoke").name == "smoke"


def test_unknown_profile_and_task_errors(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown profile 'laptop'; valid profiles: smoke, cpu, gpu"):
        get_profile("laptop")
    monkeypatch.setenv("HFT_PROFILE", "fast")
    with pytest.raises(ValueError, match="valid profiles"):
        get_profile()
    with pytest.raises(ValueError, match=r"valid tasks: sst2, conll2003, squad"):
        PROFILES["cpu"].task("mnli")


@pytest.mark.parametrize("names, line", [
    ([" ", ""], "no tasks given; choose one or more of: sst2, conll2003, squad"),
    (["sst2", "foo"], "unknown task 'foo'; valid tasks: sst2, conll2003, squad"),
    (["sst2", " sst2"], "each task may be listed once, got sst2, sst2"),
])
def test_task_lists_are_checked_with_one_line(names, line):
    with pytest.raises(ValueError) as err:
        check_task_names(names)
    assert str(err.value) == line


def test_a_good_task_list_comes_back_stripped():
    assert check_task_names([" squad", "sst2 ", ""]) == ["squad", "sst2"]
    assert check_task_names(["mine"], known=None) == ["mine"]  # a custom task: only presence and repeats


def test_seed_everything_repeats_python_numpy_torch():
    def draw():
        g = runtime.seed_everything(123)
        return (
            random.random(),
            np.random.rand(),
            torch.rand(1).item(),
            torch.randperm(10, generator=g).tolist(),
        )

    assert draw() == draw()


def test_dataloader_workers_are_seeded():
    data = torch.utils.data.TensorDataset(torch.arange(20))

    def order():
        g = runtime.seed_everything(7)
        loader = torch.utils.data.DataLoader(data, batch_size=5, shuffle=True, generator=g,
                                             worker_init_fn=runtime.seed_worker)
        return [b[0].tolist() for b in loader]

    assert order() == order()


def test_device_choice(monkeypatch):
    monkeypatch.delenv("HFT_DEVICE", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.pick_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch, "__version__", "2.9.0")
    assert runtime.pick_device().type == "mps"
    monkeypatch.setattr(torch, "__version__", "2.8.1")  # MPS only on torch >= 2.9
    assert runtime.pick_device().type == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch, "__version__", "2.13.0")
    assert runtime.pick_device().type == "cpu"
    assert runtime.pick_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="allowed: cpu, cuda, mps"):
        runtime.pick_device("tpu")


@pytest.mark.parametrize("variable,value", [("HFT_DEVICE", "cpu"), ("ACCELERATE_USE_CPU", "True")])
def test_asking_for_the_cpu_keeps_everything_off_the_gpu(monkeypatch, variable, value):
    # `HFT_DEVICE=cpu` or `accelerate launch --cpu` on a machine with a GPU: the device, the automatic
    # profile, the trainer's device and its automatic mixed precision all follow the request (no bf16 autocast
    # on the CPU)
    from hft_lessons import training
    from hft_lessons.precision import resolve_mixed_precision

    model = torch.nn.Linear(4, 2)

    for name in ("HFT_DEVICE", "ACCELERATE_USE_CPU", "HFT_PROFILE", "CI", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert devices.uses_cuda() and runtime.pick_device().type == "cuda" and get_profile().name == "gpu"
    assert resolve_mixed_precision("auto", model) == "bf16" and not training._force_cpu()
    monkeypatch.setenv(variable, value)
    assert devices.cpu_requested() and not devices.uses_cuda()
    assert runtime.pick_device().type == "cpu" and get_profile().name == "cpu"
    assert resolve_mixed_precision("auto", model) == "no" and resolve_mixed_precision("bf16", model) == "bf16"
    assert training._force_cpu()


def test_several_processes_without_cuda_train_on_the_cpu(monkeypatch):
    from hft_lessons import training

    for name in ("HFT_DEVICE", "ACCELERATE_USE_CPU"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not training._force_cpu()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert training._force_cpu()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not training._force_cpu()  # torchrun on GPUs: one GPU per process


def test_colab_detection(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert runtime.in_colab() is False
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20261101")
    assert runtime.in_colab() is True


def test_setup_reports_choices():
    env = runtime.setup(seed=3, profile="smoke", device="cpu")
    assert env.profile.name == "smoke" and env.device.type == "cpu" and env.seed == 3
    assert "profile: smoke" in str(env)


def test_best_time_returns_the_fastest_call_and_waits_for_cuda(monkeypatch):
    calls, waits = [], []
    clock = iter([0.0, 0.5, 1.0, 1.2, 2.0, 2.9])  # three timed calls: 0.5 s, 0.2 s, 0.9 s
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(runtime.torch.cuda, "synchronize", lambda device=None: waits.append(device))
    assert runtime.best_time(lambda: calls.append(1), repeats=3, device="cpu") == pytest.approx(0.2)
    assert len(calls) == 4 and waits == []  # one warm-up; nothing to wait for on the CPU
    clock = iter([0.0, 0.3])
    runtime.best_time(lambda: calls.append(1), repeats=1, device=torch.device("cuda"))
    assert len(waits) == 2  # after the warm-up and after the timed call
    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        runtime.best_time(lambda: None, repeats=0)
