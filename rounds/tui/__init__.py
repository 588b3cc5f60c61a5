"""``rounds replay RUN_DIR``: a terminal UI to replay a run's episodes.

Textual is imported only by the screens (:mod:`rounds.tui.app`, ``episode_list``,
``episode_screens``, ``dialogs``); the index, filters, views and Markdown export
are plain Python (and Rich), testable without a terminal.
"""
