"""The Keras hybrid: the encoder equals the PyTorch one, LoRA starts as a no-op, training lowers the loss."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from datasets import Dataset

from hft_lessons.tasks import get_task

pytest.importorskip("tensorflow", reason='TensorFlow is not installed: pip install -e ".[tf]"')
hk = pytest.importorskip("hft_lessons.keras")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, hf_base):
    """The tiny random BERT written as a Hugging Face folder (config.json + model.safetensors)."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    hf_base.save_pretrained(folder)
    return folder


def _inputs(batch):
    ids, mask = batch
    return {"input_ids": ids.numpy().astype("int32"), "attention_mask": mask.numpy().astype("int32"),
            "token_type_ids": np.zeros_like(ids.numpy(), dtype="int32")}


def test_importing_the_package_does_not_import_tensorflow():
    code = "import sys, hft_lessons, hft_lessons.keras; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_encoder_equals_pytorch_encoder_with_padding(tiny_folder, hf_base, batch):
    encoder = hk.from_pretrained(tiny_folder)
    inputs = _inputs(batch)
    with torch.no_grad():
        ref = hf_base(input_ids=batch[0], attention_mask=batch[1]).last_hidden_state.numpy()
    out = np.asarray(encoder(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]))
    real = inputs["attention_mask"].astype(bool)
    assert np.abs(out - ref)[real].max() <= 1e-4
    assert hk.count_weights(encoder)[1] == sum(p.numel() for n, p in hf_base.named_parameters()
                                               if not n.startswith("pooler."))


def test_lora_at_init_changes_nothing_and_hybrid_trains_only_deltas(tiny_folder, batch):
    model = hk.SequenceClassifier(hk.from_pretrained(tiny_folder))
    inputs = _inputs(batch)
    before = np.asarray(model(inputs))
    hk.apply_hybrid(model.encoder)
    after = np.asarray(model(inputs))
    np.testing.assert_array_equal(before, after)
    names = {v.path.split("/")[-1] for v in model.trainable_weights}
    assert names == {"lora_A", "lora_B", "bias", "beta", "kernel"}  # kernel: the classifier's only
    kernels = [v.path for v in model.trainable_weights if v.path.endswith("kernel")]
    assert kernels == [model.classifier.kernel.path]


def test_hybrid_errors_are_one_line(tiny_folder, tmp_path):
    encoder = hk.from_pretrained(tiny_folder)
    with pytest.raises(ValueError, match="allowed: query"):
        hk.apply_hybrid(encoder, target_modules=("queries",))
    hk.apply_hybrid(encoder)
    with pytest.raises(ValueError, match="apply the hybrid once"):
        hk.apply_hybrid(encoder)
    with pytest.raises(ValueError, match="no config.json"):
        hk.from_pretrained(tmp_path)


@pytest.mark.slow  # about 25 s on 2 cores, mostly TensorFlow tracing the train and eval steps
def test_a_few_training_steps_lower_the_loss(tiny_folder):
    rng = np.random.default_rng(0)
    lengths, labels = rng.integers(3, 9, size=32), np.arange(32) % 2
    rows = [{"input_ids": [1] + rng.integers(200, 210, size=int(n)).tolist() + [2], "labels": int(label)}
            for n, label in zip(lengths, labels, strict=True)]
    for r in rows:  # a learnable signal: the label decides the second token
        r["input_ids"][1] = 500 + r["labels"]
    features = Dataset.from_list(rows)
    model = hk.SequenceClassifier(hk.apply_hybrid(hk.from_pretrained(tiny_folder)))
    sampler = get_task("sst2").batch_sampler(features, 8, seed=0)
    run = hk.train_hybrid(model, features, features, sampler, lr=1e-2, epochs=4, warmup_ratio=0.0)
    assert run.steps == 16
    assert run.history["loss"][-1] < run.history["loss"][0]


def test_layer_decay_reaches_lora_and_biases_by_layer(tiny_folder):
    from hft_lessons.keras.bert import layer_decay_factor

    model = hk.SequenceClassifier(hk.apply_hybrid(hk.from_pretrained(tiny_folder)))
    ids = np.ones((1, 3), dtype="int32")
    model({"input_ids": ids, "attention_mask": ids, "token_type_ids": 0 * ids})  # builds the classifier
    factor = layer_decay_factor(2, 0.5)  # the tiny BERT has 2 layers: layer 0 at 0.5, layer 1 at 1
    by_path = {v.path: factor(v.path) for v in model.encoder.weights + model.classifier.weights}
    assert by_path["layer_0_query_lora/lora_A"] == 0.5 and by_path["layer_1_ffn_down_lora/lora_B"] == 1.0
    assert by_path["bert/layer_0/ffn_up/bias"] == 0.5 and by_path["bert/embedding_norm/beta"] == 0.25
    assert by_path[model.classifier.kernel.path] == 1.0
