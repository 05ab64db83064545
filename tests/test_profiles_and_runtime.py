"""Run profiles, seeding and device choice."""

import random

import numpy as np
import pytest
import torch

from hft_lessons import runtime
from hft_lessons.profiles import PROFILE_NAMES, PROFILES, TASK_NAMES, get_profile


def test_every_profile_has_every_task():
    for name in PROFILE_NAMES:
        prof = PROFILES[name]
        assert set(prof.tasks) == set(TASK_NAMES)
        for settings in prof.tasks.values():
            assert settings.epochs >= 1 and settings.batch_size >= 1 and settings.max_length >= 32
    assert PROFILES["gpu"].backbone == "bert-base-uncased"
    assert PROFILES["gpu"].task("sst2").max_train is None  # full data
    assert PROFILES["cpu"].backbone == "sentence-transformers/all-MiniLM-L6-v2"
    assert PROFILES["cpu"].task("sst2").max_train == 4000
    assert PROFILES["cpu"].task("squad").stride > 0


def test_profile_choice_order(monkeypatch):
    monkeypatch.delenv("HFT_PROFILE", raising=False)
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


def test_seed_everything_repeats_python_numpy_torch():
    def draw():
        g = runtime.seed_everything(123)
        return random.random(), np.random.rand(), torch.rand(1).item(), torch.randperm(10, generator=g).tolist()

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


def test_colab_detection(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert runtime.in_colab() is False
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20261101")
    assert runtime.in_colab() is True


def test_setup_reports_choices():
    env = runtime.setup(seed=3, profile="smoke", device="cpu")
    assert env.profile.name == "smoke" and env.device.type == "cpu" and env.seed == 3
    assert "profile: smoke" in str(env)


_REUSE_CHECK = """
import json, resource, torch
from hft_lessons import runtime

def faults(mib):  # minor page faults taken to allocate and fill a fresh mib-MiB tensor, then free it
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(mib << 18).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

fresh = [faults(48), faults(40)]
with runtime.reuse_freed_memory() as active:
    grow = faults(48)
    kept = faults(40)
    with runtime.reuse_freed_memory() as nested:
        pass
    kept_after_nested = faults(36)
    huge = [faults(96), faults(96)]
print(json.dumps(dict(fresh=fresh, active=active, nested=nested, grow=grow, kept=kept,
                      kept_after_nested=kept_after_nested, huge=huge, after=[faults(48), faults(40)])))
"""


@pytest.mark.skipif(runtime._glibc() is None, reason="needs glibc's mallopt")
def test_reuse_freed_memory_reuses_big_blocks_then_lets_go():
    import json
    import subprocess
    import sys

    # A fresh interpreter, so the heap this test sees is not the one earlier tests fragmented.
    out = subprocess.run([sys.executable, "-c", _REUSE_CHECK], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    fresh, kept, kept_after_nested = r["fresh"], r["kept"], r["kept_after_nested"]
    assert r["active"] is True and r["nested"] is True  # nesting leaves the outer block in charge
    # Blocks over glibc's 32 MiB ceiling are mapped from the kernel every time: at least one fault per 2 MiB,
    # even with transparent huge pages ...
    assert min(fresh) >= 24 and r["grow"] >= 24
    # ... but inside the block a later allocation that fits in the freed one reuses its pages, while blocks
    # over 64 MiB are still mapped afresh, so they cannot fragment the heap ...
    assert kept * 4 < min(fresh) and kept_after_nested * 4 < min(fresh)
    assert min(r["huge"]) >= 48
    # ... and afterwards big blocks go back to the kernel again.
    assert min(r["after"]) >= 24


def test_reuse_freed_memory_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(runtime, "_glibc", lambda: None)
    with runtime.reuse_freed_memory() as active:
        assert active is False
        assert torch.ones(3).sum().item() == 3.0
