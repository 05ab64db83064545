"""Checker for chapter 12's exercise: BIO tags to entities, against ``seqeval`` (the conlleval convention)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from seqeval.metrics.sequence_labeling import get_entities

from .base import attempt, verdict

TYPES = ("PER", "ORG", "LOC", "MISC")

# (what the case tests, its tags): each one trips a different plausible bug
CASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("a sentence without entities", ("O", "O", "O")),
    ("an entity of two words at the start", ("B-PER", "I-PER", "O", "O")),
    ("an entity that ends the sentence", ("O", "O", "B-LOC", "I-LOC")),
    ("a one-word entity between others", ("B-ORG", "O", "B-MISC", "I-MISC", "O", "B-PER")),
    ("two adjacent entities of the same type (a B- after an I-)", ("B-LOC", "I-LOC", "B-LOC", "O")),
    ("an I- tag right after O (conlleval starts an entity there)", ("O", "I-PER", "I-PER", "O")),
    ("an I- tag of another type (conlleval starts a new entity there)", ("B-PER", "I-LOC", "O")),
    ("a sentence that starts with an I- tag", ("I-ORG", "O", "B-ORG")),
)


def _random_cases(n: int, seed: int = 0) -> list[tuple[str, tuple[str, ...]]]:
    """``n`` random tag sequences (well- and ill-formed) of 1 to 12 tags."""
    rng = random.Random(seed)
    tags = ["O", "O", "O", *(f"{p}-{t}" for p in "BI" for t in TYPES)]
    return [("a random tag sequence", tuple(rng.choice(tags) for _ in range(rng.randint(1, 12))))
            for _ in range(n)]


def _as_triples(out: object) -> tuple[list[tuple[str, int, int]] | None, str | None]:
    """The learner's entities as (type, first, last) tuples, or the problem with their form."""
    if out is None:
        return None, "returned None; return a list of (type, first_word, last_word) triples"
    if isinstance(out, str | bytes) or not isinstance(out, Sequence | set):
        return None, f"returned {type(out).__name__}; return a list of (type, first_word, last_word) triples"
    triples = []
    for item in out:
        if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 3:
            return None, f"returned the item {item!r}; each entity is a (type, first_word, last_word) triple"
        triples.append((str(item[0]), int(item[1]), int(item[2])))
    return triples, None


def _bio_problem(fn: Callable) -> str | None:
    """What differs between ``fn`` and seqeval's entity decoding; None if nothing."""
    for what, tags in (*CASES, *_random_cases(200)):
        out, problem = attempt(fn, list(tags))
        if problem is not None:
            return problem if problem == "not implemented yet" else f"on {list(tags)}: {problem}"
        mine, problem = _as_triples(out)
        if problem is not None:
            return problem
        ref = {(k, a, b) for k, a, b in get_entities(list(tags))}
        if len(mine) != len(set(mine)):
            return f"on {what}, {list(tags)}: the same entity is returned twice"
        if set(mine) != ref:
            missing, extra = len(ref - set(mine)), len(set(mine) - ref)
            return (f"on {what}, {list(tags)}: you found {len(mine)} entities, seqeval finds {len(ref)} "
                    f"({missing} of seqeval's missing, {extra} extra)")
    return None


def check_bio_entities(fn: Callable) -> bool:
    """Check ``fn(tags) -> [(type, first_word, last_word), ...]`` against seqeval on 208 tag sequences."""
    return verdict(_bio_problem(fn))
