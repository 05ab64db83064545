"""Task definitions: tokenizing, heads, losses and metrics for SST-2, CoNLL-2003 and SQuAD."""

from __future__ import annotations

from ..profiles import TASK_NAMES
from .base import PaddingCollator, Task, TaskModel, encode
from .sequence_classification import ClassificationHead, SequenceClassificationTask, pool

__all__ = ["get_task", "TASK_NAMES", "Task", "TaskModel", "PaddingCollator", "encode",
           "ClassificationHead", "SequenceClassificationTask", "pool"]



def get_task(name: str) -> Task:
    """The task object for ``sst2``, ``conll2003`` or ``squad``."""
    if name == "sst2":
        return SequenceClassificationTask("sst2")
    if name == "conll2003":
        from .token_classification import TokenClassificationTask

        return TokenClassificationTask()
    if name == "squad":
        from .question_answering import QuestionAnsweringTask

        return QuestionAnsweringTask()
    raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}")
