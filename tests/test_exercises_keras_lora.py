"""Chapter 8's coding exercise: a peft LoRA layer in the Keras LoraDense layout, checked against peft."""

import numpy as np
import pytest
from exercise_helpers import SOLUTION_TITLE, assert_hidden, code_cell, only_line, run_cell

from hft_lessons.exercises.keras_lora import check_peft_to_keras, keras_lora_output, peft_probe

CHAPTER = "08_three_implementations.ipynb"


def _solution(capsys):
    cell = code_cell(CHAPTER, SOLUTION_TITLE)
    assert cell.source.startswith(SOLUTION_TITLE)
    assert_hidden(cell)
    solution = run_cell(cell, {"check_peft_to_keras": check_peft_to_keras})["peft_to_keras"]
    assert only_line(capsys) == "right"
    return solution


def test_the_hidden_solution_is_right(capsys):
    solution = _solution(capsys)
    assert check_peft_to_keras(solution, d_in=6, d_out=9, r=2, alpha=5.0) is True
    assert only_line(capsys) == "right"


def test_the_scaffold_is_wrong_without_raising(capsys):
    cell = code_cell(CHAPTER, 'raise NotImplementedError("your code here")')
    scaffold = run_cell(cell, {})["peft_to_keras"]
    assert check_peft_to_keras(scaffold) is False
    assert only_line(capsys) == "wrong: not implemented yet"


def test_plausible_wrong_ports_get_a_useful_line(capsys):
    solution = _solution(capsys)

    def untransposed(layer):
        return {k: v.T for k, v in solution(layer).items()}

    def reshaped(layer):
        weights = solution(layer)
        weights["kernel"] = weights["kernel"].T.reshape(weights["kernel"].shape)
        return weights

    def scaled_twice(layer):
        weights = solution(layer)
        weights["lora_B"] = weights["lora_B"] * layer.scaling["default"]
        return weights

    assert check_peft_to_keras(untransposed) is False
    assert "torch stores [out, in]" in only_line(capsys)
    assert check_peft_to_keras(reshaped) is False
    assert "a reshape is not a transpose" in only_line(capsys)
    assert check_peft_to_keras(scaled_twice) is False
    assert only_line(capsys).startswith("wrong: the frozen part matches, but the LoRA update differs")
    assert check_peft_to_keras(lambda layer: [1, 2]) is False
    assert only_line(capsys).startswith("wrong: return a dict with the keys kernel, bias, lora_A, lora_B")


@pytest.mark.slow  # importing TensorFlow takes a while
def test_the_checker_formula_is_what_the_keras_layer_computes(capsys):
    """keras_lora_output, which the checker uses, equals the Keras LoraDense on the solution's arrays."""
    pytest.importorskip("tensorflow", reason='TensorFlow is not installed: pip install -e ".[tf]"')
    hk = pytest.importorskip("hft_lessons.keras")
    import keras

    weights = _solution(capsys)(peft_probe().base_model.model.proj)
    dense = keras.layers.Dense(10)
    x = np.random.default_rng(2).normal(size=(3, 12)).astype("float32")
    dense(x)
    dense.set_weights([weights["kernel"], weights["bias"]])
    layer = hk.LoraDense(dense, r=4, alpha=8.0)
    layer.lora_A.assign(weights["lora_A"])
    layer.lora_B.assign(weights["lora_B"])
    d = np.abs(layer(x).numpy() - keras_lora_output(x, weights, r=4, alpha=8.0)).max()
    assert d < 1e-5, d
