"""MLM: 80/10/10 masking statistics, the loss equals cross-entropy, a short run lowers the loss."""

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig

from hft_lessons.mlm import IGNORE_INDEX, BertForMLM, MLMHead, mask_tokens, mlm_loss, train_mlm

SPECIAL = [0, 100, 101, 102, 103]  # [PAD] [UNK] [CLS] [SEP] [MASK] in BERT's vocabulary
MASK_ID, VOCAB = 103, 30522


def _batch(n=400, length=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, VOCAB, (n, length), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    ids[: n // 2, length // 2 :] = 0  # padding
    return ids


def test_masking_statistics_80_10_10():
    ids = _batch()
    inputs, labels = mask_tokens(ids, MASK_ID, VOCAB, SPECIAL, generator=torch.Generator().manual_seed(0))
    chosen = labels != IGNORE_INDEX
    candidates = ~torch.isin(ids, torch.tensor(SPECIAL))
    rate = chosen.sum().item() / candidates.sum().item()
    assert abs(rate - 0.15) < 0.01
    n = chosen.sum().item()
    masked = (inputs[chosen] == MASK_ID).sum().item() / n
    kept = (inputs[chosen] == ids[chosen]).sum().item() / n
    random = 1 - masked - kept
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(random - 0.1) < 0.02


def test_special_and_pad_tokens_are_never_masked_and_labels_are_ignored_elsewhere():
    ids = _batch(seed=1)
    inputs, labels = mask_tokens(ids, MASK_ID, VOCAB, SPECIAL, generator=torch.Generator().manual_seed(1))
    special = torch.isin(ids, torch.tensor(SPECIAL))
    assert (labels[special] == IGNORE_INDEX).all()
    assert torch.equal(inputs[special], ids[special])
    chosen = labels != IGNORE_INDEX
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_masking_is_reproducible_with_a_generator():
    ids = _batch(n=8)
    a = mask_tokens(ids, MASK_ID, VOCAB, SPECIAL, generator=torch.Generator().manual_seed(3))
    b = mask_tokens(ids, MASK_ID, VOCAB, SPECIAL, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_mlm_loss_equals_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 10, 50, generator=g)
    labels = torch.randint(0, 50, (4, 10), generator=g)
    labels[torch.rand(4, 10, generator=g) > 0.3] = IGNORE_INDEX
    ref = F.cross_entropy(logits.view(-1, 50), labels.view(-1), ignore_index=IGNORE_INDEX)
    assert torch.allclose(mlm_loss(logits, labels), ref, atol=1e-6)


def _tiny_config(vocab=64):
    return BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)  # fmt: skip


def test_head_is_tied_and_loss_matches_full_logits():
    torch.manual_seed(0)
    model = BertForMLM.from_config(_tiny_config())
    assert model.head.decoder.weight is model.encoder.embeddings.word_embeddings.weight
    assert isinstance(model.head, MLMHead)
    ids = torch.randint(5, 64, (3, 8))
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 2] = ids[:, 2]
    full = F.cross_entropy(model(ids).view(-1, 64), labels.view(-1), ignore_index=IGNORE_INDEX)
    assert torch.allclose(model.loss(ids, labels), full, atol=1e-5)


class _ToyTokenizer:
    """Just enough tokenizer for train_mlm: ids 0-4 are special, text is already ids."""

    pad_token_id, cls_token_id, sep_token_id, mask_token_id, unk_token_id = 0, 2, 3, 4, 1
    all_special_ids = [0, 1, 2, 3, 4]

    def __len__(self):
        return 64


def test_short_training_run_lowers_the_mlm_loss():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    # a learnable corpus: every sequence counts upwards from a random start
    chunks = []
    for _ in range(256):
        start = int(torch.randint(5, 40, (1,), generator=g))
        chunks.append([2, *range(start, start + 12), 3])
    model = BertForMLM.from_config(_tiny_config())
    losses = train_mlm(model, chunks, _ToyTokenizer(), epochs=8, batch_size=32, lr=3e-3, log_every=0)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.4, (first, last)


def test_train_mlm_refuses_a_masking_rate_outside_0_1():
    model = BertForMLM.from_config(_tiny_config())
    with pytest.raises(ValueError, match="mlm_probability must be between 0 and 1"):
        train_mlm(model, [[2, 5, 6, 3]], _ToyTokenizer(), mlm_probability=1.5, log_every=0)
