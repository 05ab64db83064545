"""Checkers for the chapters' coding exercises, one module per topic. Each checker runs the learner's function
against a reference, prints one line, ``right`` or ``wrong: <what differs>`` (never the answer), and returns
whether it was right. A scaffold that still raises ``NotImplementedError`` gets
``wrong: not implemented yet``.
"""

from .base import attempt, close_to, verdict
from .optim import check_sgd_momentum

__all__ = ["attempt", "close_to", "verdict", "check_sgd_momentum"]
