"""``rounds replay RUN_DIR``: a terminal UI to replay a run's episodes.

Textual is imported only by :mod:`rounds.tui.app`; the index, filters and
Markdown export here are plain Python.
"""
