"""Hybrid Fine-Tuning, from scratch: the course's canonical code, imported by every chapter."""

__version__ = "0.1.0"
