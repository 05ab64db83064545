"""Hybrid Fine-Tuning, from scratch: the course's canonical code, imported by every chapter."""

import warnings as _warnings

# Notebooks print text progress bars; without ipywidgets, tqdm.auto warns once per kernel. Keep it quiet.
_warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
