"""Checker for chapter 10's exercise: the parameters one task adds to a multi-task hybrid."""

from __future__ import annotations

from collections.abc import Callable

from ..backbone import tiny_random_bert
from ..multitask_hybrid import DESIGNS, HybridDesign, TaskAdapters, build_hybrid
from .base import attempt, verdict

TASKS = ("sst2", "conll2003", "squad")


def _added_problem(fn: Callable) -> str | None:
    """What differs between ``fn(model, task)`` and the task's own parameters, over two designs."""
    for label, design in (("Pfeiffer", DESIGNS["hybrid"]), ("Houlsby", HybridDesign("hybrid", "adapter"))):
        model = build_hybrid(tiny_random_bert(), TASKS, design)
        for task in TASKS:
            got, problem = attempt(fn, model, task)
            if problem:
                return f"{task}: {problem}"
            if isinstance(got, bool) or not isinstance(got, int):
                return f"{task}: return an int (a count of parameters), got {type(got).__name__}"
            own = model.task_parameters(task)
            want = sum(p.numel() for p in own.values())
            if got == want:
                continue
            head = sum(p.numel() for n, p in own.items() if n.startswith("head."))
            slots = sum(1 for m in model.backbone.modules() if isinstance(m, TaskAdapters))
            hint = ("the head is missing" if got == want - head else
                    "the adapters are missing: look inside every TaskAdapters module" if got == head else
                    "count only this task's adapters (each slot holds every task's)" if got > want else
                    f"some adapters are missing: the model has {slots} TaskAdapters slots")
            return f"{task} with {label} adapters: {got:,} is not the count; {hint}"
    return None


def check_added_parameters(fn: Callable) -> bool:
    """Check ``fn(model, task) -> int``, the parameters ``task`` adds (adapters and head), on tiny hybrids."""
    return verdict(_added_problem(fn))
