"""Opt-in CPU speed-ups for training (``--fast-cpu``): the same maths, a different random stream and rounding.

:mod:`.kernels` holds the pieces, each checked against the plain computation in ``tests/test_speedups.py``;
:class:`.plugin.FastCpu` plugs them into the trainer through its one hook
(:class:`hft_lessons.training.TrainingPlugin`). A run without ``fast_cpu`` never imports this package.
"""

from .kernels import *  # noqa: F403
from .kernels import __all__ as _kernels
from .plugin import FastCpu

__all__ = [*_kernels, "FastCpu"]
