"""One episode turn by turn, and two episodes of the same task side by side."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, Sparkline, Static

from rounds.records import Episode
from rounds.storage import RunDir, atomic_write_bytes, atomic_write_text
from rounds.tui.export import episode_markdown
from rounds.tui.index import EpisodeIndex, EpisodeRow
from rounds.tui.screenshots import (
    ScreenshotUnavailable,
    rebuild_screens,
    screen_hash,
    turn_screenshot,
)
from rounds.tui.views import episode_header, series_names, series_values, turn_view


class EpisodeScreen(Screen[None]):
    """One episode, turn by turn: a reward sparkline, one for each series the env declared,
    and the turn's observation, action and reward details."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "turn(1)", "Next turn"),
        Binding("k,up", "turn(-1)", "Previous turn"),
        Binding("n", "episode(1)", "Next episode"),
        Binding("p", "episode(-1)", "Previous episode"),
        Binding("c", "compare", "Compare"),
        Binding("e", "export", "Export"),
        Binding("s", "screenshot", "Save screenshot"),
        Binding("escape", "back", "Back"),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(
        self, index: EpisodeIndex, order: list[EpisodeRow], position: int, episode: Episode
    ) -> None:
        """``episode`` is ``order[position]``, already read (the caller checks it is valid)."""
        super().__init__()
        self.index = index
        self.order = order
        self.position = position
        self.turn = 0
        self.episode = episode
        self._series: list[str] | None = None
        #: Rebuilt screens of the episodes whose screenshots were saved, by episode id.
        self._screens: dict[str, list[bytes]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="episode-head")
        yield Vertical(id="lines")
        with VerticalScroll(id="turn"):
            yield Static(id="turn-body")
        yield Footer()

    def on_mount(self) -> None:
        self.show()

    def _show_series(self) -> None:
        """Sparklines of the reward and of each declared series (rebuilt when they change)."""
        episode = self.episode
        names = [n for n in series_names(episode) if series_values(episode, n)]
        lines = self.query_one("#lines", Vertical)
        if names != self._series:
            self._series = names
            lines.remove_children()
            lines.mount_all(
                Horizontal(Label(label), Sparkline([], id=f"series-{number}"), classes="line")
                for number, label in enumerate(
                    ["reward / turn", *(n.replace("_", " ") for n in names)]
                )
            )
        data = [[t.reward for t in episode.turns] or [0.0]]
        data += [series_values(episode, name) for name in names]
        for number, values in enumerate(data):
            for sparkline in lines.query(f"#series-{number}").results(Sparkline):
                sparkline.data = values

    def show(self) -> None:
        episode = self.episode
        self.turn = max(0, min(self.turn, episode.num_turns - 1))
        self.query_one("#episode-head", Static).update(episode_header(episode))
        self._show_series()
        self.query_one("#turn-body", Static).update(turn_view(episode, self.turn))
        self.sub_title = f"episode {self.position + 1}/{len(self.order)}  turn {self.turn + 1}/{episode.num_turns}"

    def action_turn(self, delta: int) -> None:
        self.turn = max(0, min(self.turn + delta, self.episode.num_turns - 1))
        self.show()

    def action_episode(self, delta: int) -> None:
        position = self.position + delta
        if not 0 <= position < len(self.order):
            return
        episode = self.index.read(self.order[position])
        if episode is None:
            self.app.notify(
                f"Line {self.order[position].line} is no longer a valid episode; "
                "the file changed since it was indexed.",
                severity="warning",
            )
            return
        self.position, self.episode, self.turn = position, episode, 0
        self.show()

    def action_compare(self) -> None:
        current = self.order[self.position]
        same = [
            r
            for r in self.index.rows
            if r.task_id == current.task_id and r.step == current.step and r.line != current.line
        ]
        if not same:
            self.app.notify("No other episode of this task to compare with.", severity="warning")
            return
        best = max(same, key=lambda r: r.total_reward)
        worst = min(same, key=lambda r: r.total_reward)
        other = self.index.read(worst if current.total_reward >= best.total_reward else best)
        if other is None:
            self.app.notify(
                "The episode to compare with can no longer be read.", severity="warning"
            )
            return
        self.app.push_screen(CompareScreen(self.episode, other))

    def action_export(self) -> None:
        run = RunDir(self.index.path.parent)
        target = run.path / "exports" / f"{self.episode.id}.md"
        try:
            atomic_write_text(target, episode_markdown(self.episode))
        except OSError as err:
            self.app.notify(f"Cannot write {target}: {err}", severity="error")
            return
        self.app.notify(f"Exported to {target}")

    def action_screenshot(self) -> None:
        """Write the screenshot the agent saw at this turn to ``RUN_DIR/exports/``, rebuilt
        by the env's hook and checked against the recorded hash."""
        episode, turn = self.episode, self.turn
        if screen_hash(episode, turn) is None:
            self.app.notify(f"Turn {turn + 1} had no screenshot.", severity="warning")
            return
        try:
            if episode.id not in self._screens:
                self._screens[episode.id] = rebuild_screens(episode)
            png = turn_screenshot(self._screens[episode.id], episode, turn)
        except ScreenshotUnavailable as err:
            self.app.notify(f"Cannot show this screenshot: {err}", severity="error")
            return
        target = (
            RunDir(self.index.path.parent).path / "exports" / f"{episode.id}-turn{turn + 1}.png"
        )
        try:
            atomic_write_bytes(target, png)
        except OSError as err:
            self.app.notify(f"Cannot write {target}: {err}", severity="error")
            return
        self.app.notify(f"Screenshot saved to {target}")

    def action_back(self) -> None:
        self.app.pop_screen()


class CompareScreen(Screen[None]):
    """Two episodes of the same task side by side, turn by turn."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "turn(1)", "Next turn"),
        Binding("k,up", "turn(-1)", "Previous turn"),
        Binding("escape", "back", "Back"),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self, left: Episode, right: Episode) -> None:
        super().__init__()
        self.left, self.right = left, right
        self.turn = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="turn"):
            with VerticalScroll(classes="pane"):
                yield Static(id="left")
            with VerticalScroll(classes="pane"):
                yield Static(id="right")
        yield Footer()

    def on_mount(self) -> None:
        self.show()

    def _side(self, episode: Episode) -> RenderableType:
        if self.turn >= episode.num_turns:
            return Group(
                episode_header(episode),
                Text(f"(no turn {self.turn + 1}: the episode ended)", style="dim"),
            )
        return Group(episode_header(episode), turn_view(episode, self.turn))

    def show(self) -> None:
        self.query_one("#left", Static).update(self._side(self.left))
        self.query_one("#right", Static).update(self._side(self.right))
        self.sub_title = f"compare: task {self.left.task_id}, turn {self.turn + 1}"

    def action_turn(self, delta: int) -> None:
        longest = max(self.left.num_turns, self.right.num_turns)
        self.turn = max(0, min(self.turn + delta, longest - 1))
        self.show()

    def action_back(self) -> None:
        self.app.pop_screen()
