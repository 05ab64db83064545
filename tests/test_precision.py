"""The rule that picks the default mixed precision: today's choice without measurements, else the best."""

import pytest
import torch

from hft_lessons.precision import choose_mixed_precision, read_measured_table, resolve_mixed_precision

MINILM, BASE = 22_713_216, 109_482_240


def _rows(model, params, speeds, accuracy=None, measure="fwd_bwd", shape=(32, 128)):
    return [
        {
            "model": model,
            "params": params,
            "measure": measure,
            "batch": shape[0],
            "length": shape[1],
            "precision": p,
            "examples_per_second": s,
            "accuracy": "" if accuracy is None else accuracy[p],
        }
        for p, s in speeds.items()
    ]


# The H200 spot check quoted in the FAQ ("Does mixed precision make training faster on a GPU?"): the course
# trainer fine-tuned MiniLM on 4,000 SST-2 sentences at 2,064 / 732 / 429 examples/s in float32 / bfloat16 /
# float16, to validation accuracies 0.856 / 0.857 / 0.856.
H200_MINILM = _rows(
    "minilm",
    MINILM,
    {"fp32": 2064.0, "bf16": 732.0, "fp16": 429.0},
    {"fp32": 0.856, "bf16": 0.857, "fp16": 0.856},
    measure="train_sst2_full",
)


@pytest.mark.parametrize("bf16", [True, False])
def test_without_measurements_the_rule_keeps_the_trainers_original_choice(bf16):
    assert choose_mixed_precision("cuda", bf16, MINILM, measured_table=[]) == ("bf16" if bf16 else "fp16")
    assert choose_mixed_precision("cpu", bf16, MINILM, measured_table=[]) == "no"
    assert choose_mixed_precision("mps", bf16, MINILM, measured_table=H200_MINILM) == "no"


def test_the_h200_spot_check_makes_float32_the_default_for_minilm():
    assert choose_mixed_precision("cuda", True, MINILM, measured_table=H200_MINILM) == "no"
    assert choose_mixed_precision("cuda", False, MINILM, measured_table=H200_MINILM) == "no"
    # with MiniLM measured alone, BERT-base's nearest measured model is MiniLM: measure both shapes on the GPU
    assert choose_mixed_precision("cuda", True, BASE, measured_table=H200_MINILM) == "no"


def test_rows_of_one_model_with_other_parameter_counts_count_as_that_model():
    # the timing model (encoder + 2-class head) and the trained model (own head) differ by a few weights
    table = (
        _rows("minilm", MINILM, {"fp32": 1000.0, "bf16": 500.0})
        + _rows("minilm", MINILM + 1538, {"fp32": 900.0, "bf16": 400.0}, measure="train_sst2_full")
        + _rows("bert-base", BASE, {"fp32": 300.0, "bf16": 900.0})
    )
    assert choose_mixed_precision("cuda", True, MINILM + 1538, measured_table=table) == "no"
    assert choose_mixed_precision("cuda", True, BASE, measured_table=table) == "bf16"


def test_the_fastest_precision_wins_per_model_size():
    table = H200_MINILM + _rows("bert-base", BASE, {"fp32": 300.0, "bf16": 900.0, "fp16": 1000.0})
    assert choose_mixed_precision("cuda", True, MINILM, measured_table=table) == "no"
    assert choose_mixed_precision("cuda", True, BASE, measured_table=table) == "fp16"
    assert (
        choose_mixed_precision("cuda", True, 340_000_000, measured_table=table) == "fp16"
    )  # nearest: BERT-base
    assert choose_mixed_precision("cuda", True, 30_000_000, measured_table=table) == "no"  # nearest: MiniLM


def test_a_precision_that_is_not_supported_is_never_chosen():
    table = _rows("bert-base", BASE, {"fp32": 300.0, "bf16": 900.0, "fp16": 400.0})
    assert choose_mixed_precision("cuda", True, BASE, measured_table=table) == "bf16"
    assert choose_mixed_precision("cuda", False, BASE, measured_table=table) == "fp16"


def test_a_precision_that_loses_accuracy_is_never_chosen_even_when_fastest():
    accuracy = {"fp32": 0.90, "bf16": 0.85, "fp16": 0.899}
    table = _rows(
        "minilm", MINILM, {"fp32": 300.0, "bf16": 900.0, "fp16": 600.0}, accuracy, measure="train_sst2"
    )
    assert choose_mixed_precision("cuda", True, MINILM, measured_table=table) == "fp16"
    # the accuracy of one model rules for the other sizes too: the arithmetic is the same
    table += _rows("bert-base", BASE, {"fp32": 100.0, "bf16": 400.0, "fp16": 120.0})
    assert choose_mixed_precision("cuda", True, BASE, measured_table=table) == "fp16"
    assert choose_mixed_precision("cuda", True, BASE, measured_table=table, accuracy_tolerance=0.1) == "bf16"


def test_a_gain_within_the_noise_margin_keeps_float32():
    table = _rows("minilm", MINILM, {"fp32": 1000.0, "bf16": 1030.0, "fp16": 1040.0})
    assert choose_mixed_precision("cuda", True, MINILM, measured_table=table) == "no"
    assert choose_mixed_precision("cuda", True, MINILM, measured_table=table, min_speedup=1.01) == "fp16"


def test_speeds_are_compared_shape_by_shape_and_the_median_ratio_decides():
    table = (
        _rows("minilm", MINILM, {"fp32": 1000.0, "bf16": 3000.0}, shape=(32, 128))
        + _rows("minilm", MINILM, {"fp32": 100.0, "bf16": 80.0}, shape=(12, 384))
        + _rows("minilm", MINILM, {"fp32": 200.0, "bf16": 180.0}, shape=(16, 256))
    )
    assert choose_mixed_precision("cuda", True, MINILM, measured_table=table) == "no"  # ratios 3.0, 0.8, 0.9


def test_bad_inputs_give_one_line():
    with pytest.raises(ValueError, match="model_size must be a positive parameter count, got 0"):
        choose_mixed_precision("cuda", True, 0)
    with pytest.raises(ValueError, match="unknown precision 'fp8' in the measured table; allowed: fp32"):
        choose_mixed_precision(
            "cuda", True, MINILM, measured_table=_rows("m", MINILM, {"fp32": 1.0, "fp8": 2.0})
        )


def test_read_measured_table_round_trips_the_benchmark_csv(tmp_path):
    path = tmp_path / "mp.csv"
    header = "model,params,measure,batch,length,precision,ms_per_step,examples_per_second,accuracy,device"
    path.write_text(
        "# written by benchmarks/mixed_precision.py: python benchmarks/mixed_precision.py\n"
        f"{header}\n"
        f"minilm,{MINILM},fwd_bwd,32,128,fp32,15.5,2064.0,,cuda\n"
        f"minilm,{MINILM},fwd_bwd,32,128,bf16,43.7,732.0,,cuda\n"
    )
    rows = read_measured_table(path)
    assert [r["precision"] for r in rows] == ["no", "bf16"]
    assert choose_mixed_precision("cuda", True, MINILM, measured_table=rows) == "no"
    with pytest.raises(ValueError, match="no measured table at"):
        read_measured_table(tmp_path / "missing.csv")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="is not a mixed-precision table; it needs the columns"):
        read_measured_table(tmp_path / "other.csv")


def test_resolve_keeps_an_explicit_choice_and_follows_the_device_for_auto(monkeypatch):
    model = torch.nn.Linear(4, 2)
    assert resolve_mixed_precision("fp16", model) == "fp16"
    monkeypatch.setenv("HFT_DEVICE", "cpu")
    assert resolve_mixed_precision("auto", model) == "no"
