"""Error analysis for the application chapters, one module per task.

- ``analysis.sentiment``: confusion matrices, slices such as negation and contrast, the confident mistakes
  (SST-2);
- ``analysis.entities``: per-type entity scores and their plot, sentences with errors highlighted
  (CoNLL-2003);
- ``analysis.answers``: per-question predictions, the worst errors, scores by question type (SQuAD).
"""
