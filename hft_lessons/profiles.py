"""Run profiles: how big a run is (backbone, data, epochs): CI, a laptop, a Colab GPU, or the published runs.

``gpu`` is sized for a free Colab T4: BERT-base on a fifth of SST-2's training sentences (20,000), all of
CoNLL-2003's, and 5,000 SQuAD questions (the course's re-split has ~5,000 training questions; with the Hub,
the official train set is cut to 5,000). Its time per chapter is an estimate until measured on a T4: see
``benchmarks/results/README.md``. ``full`` is the published-number reproduction (BERT-base, all the data, the
published recipes), meant for the command line, not for every chapter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .devices import uses_cuda

__all__ = ["TaskSettings", "Profile", "PROFILES", "PROFILE_NAMES", "TASK_NAMES", "check_task_names",
           "get_profile"]

TASK_NAMES = ("sst2", "conll2003", "squad")


def check_task_names(names: list[str], known: tuple[str, ...] | None = TASK_NAMES) -> list[str]:
    """``names`` stripped, if one or more, each listed once and in ``known``; else a one-line error."""
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ValueError(f"no tasks given; choose one or more of: {', '.join(TASK_NAMES)}")
    unknown = [n for n in names if known is not None and n not in known]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r}; valid tasks: {', '.join(known or ())}")
    if len(set(names)) < len(names):
        raise ValueError(f"each task may be listed once, got {', '.join(names)}")
    return names
PROFILE_NAMES = ("smoke", "cpu", "gpu", "full")

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
BERT_BASE = "bert-base-uncased"
TINY = "tiny-random-bert"


@dataclass(frozen=True)
class TaskSettings:
    """The size of one task's run: backbone, examples, epochs, batch size and sequence length."""

    backbone: str
    max_train: int | None  # None = the whole split
    max_eval: int | None
    epochs: int
    batch_size: int
    max_length: int
    stride: int = 0  # sliding-window overlap, question answering only
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # per-method recipe changes


@dataclass(frozen=True)
class Profile:
    """A named run profile with settings for every task."""

    name: str
    description: str
    tasks: dict[str, TaskSettings] = field(default_factory=dict)

    @property
    def backbone(self) -> str:
        """The profile's backbone (the same for every task)."""
        return self.tasks["sst2"].backbone

    def task(self, name: str) -> TaskSettings:
        """Settings for one task; an unknown task name raises a one-line error."""
        if name not in self.tasks:
            raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}")
        return self.tasks[name]


# Full fine-tuning of BERT-base as published: one learning rate for every weight and 10% linear warmup
# (Google's run_classifier.py and run_squad.py); lr 2e-5 for SST-2 (from the grid of Devlin et al. 2019), 5e-5
# for CoNLL-2003 (Hugging Face's token-classification example) and 3e-5 for SQuAD (its question-answering
# example, EM/F1 81.2/88.5). The other methods keep their recipes, which were tuned on MiniLM.
_PUBLISHED = {"head_lr": None, "warmup_ratio": 0.1, "layer_decay": None}

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke",
        "CI: a tiny random BERT on a few dozen examples, seconds per notebook",
        {
            "sst2": TaskSettings(TINY, 64, 32, 1, 16, 64),
            "conll2003": TaskSettings(TINY, 48, 24, 1, 16, 64),
            "squad": TaskSettings(TINY, 32, 16, 1, 8, 128, stride=32),
        },
    ),
    "cpu": Profile(
        "cpu",
        "a laptop: pretrained all-MiniLM-L6-v2 on real subsets, minutes per notebook",
        {
            "sst2": TaskSettings(MINILM, 4000, 872, 2, 32, 128),
            "conll2003": TaskSettings(MINILM, 4000, None, 3, 16, 128),
            "squad": TaskSettings(MINILM, 1500, 500, 2, 16, 256, stride=64),
        },
    ),
    "gpu": Profile(
        "gpu",
        "a free Colab GPU (T4, 16 GB): bert-base-uncased on subsets, each chapter in about 15 minutes",
        {
            "sst2": TaskSettings(BERT_BASE, 20000, None, 2, 32, 128,
                                 recipes={"full": {**_PUBLISHED, "lr": 2e-5}}),
            "conll2003": TaskSettings(BERT_BASE, None, None, 3, 32, 128,
                                      recipes={"full": {**_PUBLISHED, "lr": 5e-5}}),
            "squad": TaskSettings(BERT_BASE, 5000, 1000, 2, 16, 384, stride=128,
                                  recipes={"full": {**_PUBLISHED, "lr": 3e-5}}),
        },
    ),
    "full": Profile(
        "full",
        "the published recipes: bert-base-uncased on the full data (hours per chapter on one GPU)",
        {
            "sst2": TaskSettings(BERT_BASE, None, None, 3, 32, 128,
                                 recipes={"full": {**_PUBLISHED, "lr": 2e-5}}),
            "conll2003": TaskSettings(BERT_BASE, None, None, 3, 32, 128,
                                      recipes={"full": {**_PUBLISHED, "lr": 5e-5}}),
            "squad": TaskSettings(BERT_BASE, None, None, 2, 12, 384, stride=128,
                                  recipes={"full": {**_PUBLISHED, "lr": 3e-5}}),
        },
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return ``name``'s profile, else $HFT_PROFILE's, else smoke under CI, gpu on CUDA, cpu otherwise."""
    name = name or os.environ.get("HFT_PROFILE") or None
    if name is None:
        if os.environ.get("CI"):
            name = "smoke"
        elif uses_cuda():
            name = "gpu"
        else:
            name = "cpu"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILE_NAMES)}")
    return PROFILES[name]
