"""The replay app: an episode list, an episode view, side-by-side comparison.

The screens live in :mod:`rounds.tui.episode_list` and :mod:`rounds.tui.episode_screens`,
what they draw in :mod:`rounds.tui.views`, the layout in ``replay.tcss``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from rounds.storage import RunDir
from rounds.tui.dialogs import HelpScreen, PromptScreen
from rounds.tui.episode_list import EpisodeListScreen
from rounds.tui.episode_screens import CompareScreen, EpisodeScreen
from rounds.tui.index import open_index

__all__ = [
    "CompareScreen",
    "EpisodeListScreen",
    "EpisodeScreen",
    "HelpScreen",
    "PromptScreen",
    "ReplayApp",
]


class ReplayApp(App[None]):
    """Replay a run directory (``config.yaml``, ``episodes.jsonl``, ``metrics.jsonl``, ``summary.json``).

    Args:
        run_dir: the run directory.
        follow: re-read the files every ``refresh_s`` seconds (a run still being written).
    """

    CSS_PATH = "replay.tcss"
    TITLE = "rounds replay"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", show=False),
    ]

    def __init__(
        self, run_dir: str | Path, *, follow: bool = False, refresh_s: float = 1.0
    ) -> None:
        super().__init__()
        self.run_dir = RunDir(run_dir)
        self.follow = follow
        self.refresh_s = refresh_s
        # Empty at first: the list indexes its first screenful itself, and its worker
        # reads the saved index, so the first rows are drawn at once.
        self.index = open_index(self.run_dir.episodes_path, cached=False)
        self.cache_checked = False

    def on_mount(self) -> None:
        self.sub_title = self.run_dir.path.name
        self.push_screen(EpisodeListScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
