"""Checker for chapter 3's exercise: whole-word masking, against the statistics of BERT's 80/10/10 rule."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..tasks.base import IGNORE_INDEX
from .base import attempt, verdict

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIALS = (PAD, UNK, CLS, SEP, MASK)
VOCAB = 1000


def _batch(rows: int = 600, length: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Word-piece ids [CLS] … [SEP] [PAD]… and where the continuation pieces (``##…``) are."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(len(SPECIALS), VOCAB, (rows, length), generator=g)
    continuation = torch.rand(rows, length, generator=g) < 0.35
    lengths = torch.randint(length // 2, length + 1, (rows,), generator=g)
    for r, n in enumerate(lengths.tolist()):
        ids[r, 0], ids[r, n - 1], ids[r, n:] = CLS, SEP, PAD
        continuation[r, [0, 1]] = False  # a word starts right after [CLS]
        continuation[r, n - 1 :] = False
    return ids, continuation


def _word_index(ids: torch.Tensor, continuation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The word every real token belongs to (a running count over the batch), and the real-token mask."""
    real = ~torch.isin(ids, torch.tensor(SPECIALS))
    starts = real & ~continuation
    return starts.flatten().cumsum(0).view_as(ids), real


def _problem(fn: Callable, p: float) -> str | None:
    """What is wrong with ``fn`` as whole-word masking; None if nothing."""
    ids, continuation = _batch()
    original = ids.clone()
    out, problem = attempt(fn, ids, continuation, MASK, VOCAB, list(SPECIALS), p,
                           torch.Generator().manual_seed(0))
    if problem:
        return problem
    if not torch.equal(ids, original):
        return "input_ids was changed in place; work on a clone"
    if not isinstance(out, tuple | list) or len(out) != 2 or not all(torch.is_tensor(t) for t in out):
        return "return two tensors: (inputs, labels)"
    inputs, labels = out
    if inputs.shape != ids.shape or labels.shape != ids.shape:
        return f"inputs and labels should have input_ids' shape {tuple(ids.shape)}"
    again, _ = attempt(fn, ids.clone(), continuation, MASK, VOCAB, list(SPECIALS), p,
                       torch.Generator().manual_seed(0))
    if again is None or not all(torch.equal(a, b) for a, b in zip(again, out, strict=True)):
        return "two calls with the same seed differ: draw every random number from `generator`"
    word, real = _word_index(ids, continuation)
    chosen = labels != IGNORE_INDEX
    if (chosen & ~real).any():
        return f"{(chosen & ~real).sum().item()} special or padding tokens were chosen; never choose them"
    if not torch.equal(labels[chosen], ids[chosen]):
        return "at a chosen position the label must be the original token id"
    if not torch.equal(inputs[~chosen], ids[~chosen]):
        return "a position that was not chosen (label -100) must keep its token"
    n_words = word[real].max().item()
    per_word = torch.zeros(n_words + 1).index_add_(0, word[real], chosen[real].float())
    size = torch.zeros(n_words + 1).index_add_(0, word[real], torch.ones(int(real.sum())))
    partly = ((per_word > 0) & (per_word < size)).sum().item()
    if partly:
        return (f"{partly} of {n_words} words were partly chosen (some pieces chosen, others not); "
                f"choose whole words")
    rate = (per_word[1:] > 0).float().mean().item()
    if abs(rate - p) > 0.015:
        return f"{rate:.1%} of the words were chosen; expected about {p:.0%} of the words"
    n = chosen.sum().item()
    masked = (inputs[chosen] == MASK).sum().item() / n
    kept = (inputs[chosen] == ids[chosen]).sum().item() / n
    rnd = 1 - masked - kept
    if abs(masked - 0.8) > 0.03 or abs(kept - 0.1) > 0.03 or abs(rnd - 0.1) > 0.03:
        return (f"of the chosen tokens {masked:.0%} became [MASK], {rnd:.0%} a random token and "
                f"{kept:.0%} stayed; expected 80% / 10% / 10%")
    return None


def check_whole_word_mask(fn: Callable, mlm_probability: float = 0.15) -> bool:
    """Check ``fn(input_ids, continuation, mask_token_id, vocab_size, special_ids, mlm_probability,
    generator) -> (inputs, labels)`` on 600 rows: whole words, their rate, 80/10/10, specials, labels."""
    if not 0.05 <= mlm_probability <= 0.5:
        raise ValueError(f"mlm_probability must be between 0.05 and 0.5, got {mlm_probability}")
    return verdict(_problem(fn, mlm_probability))
