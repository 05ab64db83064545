"""The GPU check's CPU-side tools: the benchmark's CSV and errors, the kit's subsets and its model."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hft_lessons.backbone import packaged_minilm_path
from hft_lessons.precision import choose_mixed_precision, read_measured_table

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "mixed_precision.py"


def _kit_module():
    spec = importlib.util.spec_from_file_location("make_gpu_kit", ROOT / "tools" / "make_gpu_kit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "option, message",
    [
        (
            ["--shapes", "32by128"],
            "--shapes '32by128': give BATCHxLENGTH pairs separated by commas, e.g. 32x128,12x384",
        ),
        (["--models", "gpt2"], "--models 'gpt2': allowed: minilm, bert-base (comma-separated)"),
        (["--precisions", "fp8"], "--precisions 'fp8': allowed: fp32, bf16, fp16 (comma-separated)"),
        (["--repeats", "0"], "--repeats 0 --warmup 3: give repeats >= 1 and warmup >= 0"),
    ],
)
def test_benchmark_rejects_bad_options_with_one_line(option, message):
    out = subprocess.run([sys.executable, str(BENCH), *option], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == message


@pytest.mark.slow
def test_benchmark_writes_a_table_the_rule_reads(tmp_path):
    out = tmp_path / "mp.csv"
    args = [
        "--models",
        "minilm",
        "--shapes",
        "2x8",
        "--precisions",
        "bf16",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    proc = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, check=True)
    first = out.read_text().splitlines()[0]
    assert first.startswith("# written by benchmarks/mixed_precision.py: python ")
    assert "--shapes 2x8" in first and "device cpu" in first
    rows = read_measured_table(out)
    assert [(r["model"], r["batch"], r["length"], r["precision"]) for r in rows] == [
        ("minilm", "2", "8", "no"),
        ("minilm", "2", "8", "bf16"),
    ]  # float32, the reference, is always timed
    assert rows[0]["speedup_vs_fp32"] == "1.0" and float(rows[1]["examples_per_second"]) > 0
    size = int(rows[0]["params"])
    assert 22_000_000 < size < 23_500_000  # all-MiniLM-L6-v2's shape
    assert f"rule (hft_lessons.precision) on cpu, minilm ({size:,} parameters): no" in proc.stdout
    assert choose_mixed_precision("cuda", True, size, measured_table=rows) in ("no", "bf16")


def test_kit_subsets_keep_features_and_are_seeded(tmp_path):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_from_disk

    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    source = tmp_path / "data"
    for task in ("sst2",):
        DatasetDict(
            {
                split: Dataset.from_dict(
                    {"sentence": [f"{split} {i}" for i in range(50)], "label": [i % 2 for i in range(50)]},
                    features=features,
                )
                for split in ("train", "validation")
            }
        ).save_to_disk(str(source / task))
    kit = _kit_module()
    kit.make_datasets(source, tmp_path / "kit", {"sst2": (10, 60)})
    small = load_from_disk(str(tmp_path / "kit" / "datasets" / "sst2"))
    assert (len(small["train"]), len(small["validation"])) == (10, 50)  # at most what there is
    assert small["train"].features == features
    again = tmp_path / "again"
    kit.make_datasets(source, again, {"sst2": (10, 60)})
    assert load_from_disk(str(again / "datasets" / "sst2"))["train"]["sentence"] == small["train"]["sentence"]
    with pytest.raises(SystemExit, match="no conll2003 folder under"):
        kit.make_datasets(source, tmp_path / "kit", {"conll2003": (1, 1)})


@pytest.mark.slow
@pytest.mark.skipif(packaged_minilm_path() is None, reason="needs the packaged all-MiniLM-L6-v2")
def test_kit_model_round_trips_through_float16_within_its_rounding(tmp_path):
    from safetensors.torch import load_file

    kit = _kit_module()
    kit.make_model(tmp_path / "kit")
    assert (tmp_path / "kit" / "minilm" / "model.fp16.safetensors").stat().st_size < 50 * 2**20
    model = kit.install_model(tmp_path / "kit", tmp_path / "site")
    assert (model.parent / "__init__.py").exists() and (model / "config.json").exists()
    original = load_file(str(packaged_minilm_path() / "model.safetensors"))
    restored = load_file(str(model / "model.safetensors"))
    assert original.keys() == restored.keys()
    for name, w in original.items():
        assert restored[name].dtype == w.dtype
        if not w.is_floating_point():  # position ids: unchanged
            assert torch.equal(restored[name], w), name
            continue
        assert torch.allclose(restored[name], w, rtol=2**-11, atol=6e-8), name  # float16's rounding, no more
