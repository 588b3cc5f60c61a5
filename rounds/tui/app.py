"""The replay app: an episode list, an episode view, side-by-side comparison."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Sparkline, Static

from rounds.records import Episode
from rounds.storage import RunDir, atomic_write_text, iter_jsonl
from rounds.tui.export import action_language, episode_markdown
from rounds.tui.filters import FilterError, parse_filter
from rounds.tui.index import EpisodeIndex, EpisodeRow, open_index

#: Columns of the episode list: (key, label, row attribute).
COLUMNS = [
    ("line", "#", "line"),
    ("env", "env", "env_id"),
    ("task", "task", "task_id"),
    ("seed", "seed", "seed"),
    ("agent", "agent", "agent"),
    ("step", "step", "step"),
    ("outcome", "outcome", "outcome"),
    ("reward", "reward", "total_reward"),
    ("turns", "turns", "turns"),
    ("success", "ok", "success"),
]
SORTABLE = ["line", "env", "task", "outcome", "reward", "turns", "seed", "step"]
#: Training curves shown for a run with metrics.jsonl.
CURVES = [
    "reward_mean",
    "success_rate",
    "pass@1",
    "eval/pass@1",
    "loss",
    "kl",
    "entropy",
    "eval/success",
]
CHUNK = 2000
#: Rows the episode table holds at once (the window over the whole list).
PAGE = 200


def _cell(row: EpisodeRow, attribute: str) -> Any:
    value = getattr(row, attribute)
    if attribute == "success":
        return "yes" if value else "no"
    if isinstance(value, float):
        return Text(
            f"{value:+.3f}" if attribute == "total_reward" else f"{value:.3f}", justify="right"
        )
    if value is None:
        return ""
    if attribute == "env_id":
        return str(value).removeprefix("rounds/")
    return value


def _curve_id(name: str) -> str:
    return name.replace("@", "-at-").replace("_", "-").replace("/", "-")


def _sort_key(value: Any) -> Any:
    if isinstance(value, Text):
        value = value.plain
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        return (1, str(value))


class PromptScreen(ModalScreen[str | None]):
    """A one-line question (search text, filter)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, placeholder: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text)
            yield Input(value=self.value, placeholder=self.placeholder, id="prompt")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


HELP = """[b]rounds replay[/b]

[b]Episode list[/b]
  up/down, j/k   move   g/G  top/bottom   enter   open the episode
  /              search text in observations and actions
  f              filter, e.g. outcome>0 env~Diag turns<=3 success=false
  s / r          sort by the next column / reverse the order
  escape         clear the search and the filter

[b]Episode[/b]
  j/k, down/up   next / previous turn
  n/p            next / previous episode (in the list's order)
  c              compare with the best or worst episode of the same task
  e              export the episode to Markdown (RUN_DIR/exports/)
  escape         back to the list

?  this help      q  quit"""


class HelpScreen(ModalScreen[None]):
    """Every key binding."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close"),
        Binding("q", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(HELP)

    def action_close(self) -> None:
        self.dismiss(None)


def _panel(text: str, title: str, language: str = "") -> Panel:
    body: RenderableType
    if language:
        body = Syntax(text, language, word_wrap=True, theme="ansi_dark", background_color="default")
    else:
        body = Text(text)
    return Panel(body, title=title, title_align="left", border_style="dim")


def turn_details(episode: Episode, index: int) -> RenderableType:
    """A turn's reward, advantage, components and the info an env reported for it."""
    turn = episode.turns[index]
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("reward", f"{turn.reward:+.4g}")
    if turn.advantage is not None:
        table.add_row("advantage", f"{turn.advantage:+.4f}")
    for key, value in sorted(turn.reward_components.items()):
        table.add_row(f"  {key}", f"{value:+.4g}")
    for key in ("posterior_entropy", "invalid_action", "potential", "env_latency_s"):
        if key in turn.info:
            value = turn.info[key]
            table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    if turn.tokens.prompt or turn.tokens.completion:
        table.add_row("tokens", f"prompt {turn.tokens.prompt}, completion {turn.tokens.completion}")
    agent = turn.info.get("agent")
    if isinstance(agent, dict):
        table.add_row("agent", json.dumps(agent))
    return Panel(table, title="reward", title_align="left", border_style="dim")


def turn_view(episode: Episode, index: int) -> RenderableType:
    """Observation, action and reward details of turn ``index``."""
    if not episode.turns:
        return Text("This episode has no turns.")
    turn = episode.turns[index]
    parts: list[RenderableType] = [
        _panel(turn.observation, f"observation (turn {index + 1}/{episode.num_turns})"),
        _panel(turn.action or "(empty)", "action", action_language(turn.action)),
        turn_details(episode, index),
    ]
    if index == episode.num_turns - 1 and episode.meta.get("final_observation"):
        parts.append(_panel(str(episode.meta["final_observation"]), "final observation"))
    return Group(*parts)


def episode_header(episode: Episode) -> Text:
    text = Text()
    text.append(f"{episode.env_id}", style="bold cyan")
    text.append(f"   task {episode.task_id}  seed {episode.seed}  agent {episode.agent}")
    if episode.model:
        text.append(f"  model {episode.model}")
    text.append(
        f"\noutcome {episode.outcome:g}  total reward {episode.total_reward:+.3f}  turns {episode.num_turns}"
    )
    if episode.truncated:
        reason = episode.meta.get("truncation_reason")
        text.append(f"  truncated{': ' + str(reason) if reason else ''}", style="yellow")
    if episode.metrics:
        text.append(
            "\n" + "  ".join(f"{k} {v:.3g}" for k, v in sorted(episode.metrics.items())),
            style="dim",
        )
    return text


class EpisodeScreen(Screen[None]):
    """One episode, turn by turn."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "turn(1)", "Next turn"),
        Binding("k,up", "turn(-1)", "Previous turn"),
        Binding("n", "episode(1)", "Next episode"),
        Binding("p", "episode(-1)", "Previous episode"),
        Binding("c", "compare", "Compare"),
        Binding("e", "export", "Export"),
        Binding("escape", "back", "Back"),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self, index: EpisodeIndex, order: list[EpisodeRow], position: int) -> None:
        super().__init__()
        self.index = index
        self.order = order
        self.position = position
        self.turn = 0
        self.episode = index.read(order[position])

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="episode-head")
        with Vertical(id="lines"):
            with Horizontal(classes="line"):
                yield Label("reward / turn")
                yield Sparkline([], id="reward-line")
            with Horizontal(classes="line", id="entropy-row"):
                yield Label("posterior entropy")
                yield Sparkline([], id="entropy-line")
        with VerticalScroll(id="turn"):
            yield Static(id="turn-body")
        yield Footer()

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        episode = self.episode
        self.turn = max(0, min(self.turn, episode.num_turns - 1))
        self.query_one("#episode-head", Static).update(episode_header(episode))
        self.query_one("#reward-line", Sparkline).data = [t.reward for t in episode.turns] or [0.0]
        entropies = [
            float(t.info["posterior_entropy"])
            for t in episode.turns
            if isinstance(t.info.get("posterior_entropy"), int | float)
        ]
        self.query_one("#entropy-row").display = bool(entropies)
        self.query_one("#entropy-line", Sparkline).data = entropies or [0.0]
        self.query_one("#turn-body", Static).update(turn_view(episode, self.turn))
        self.sub_title = f"episode {self.position + 1}/{len(self.order)}  turn {self.turn + 1}/{episode.num_turns}"

    def action_turn(self, delta: int) -> None:
        self.turn = max(0, min(self.turn + delta, self.episode.num_turns - 1))
        self.show()

    def action_episode(self, delta: int) -> None:
        position = self.position + delta
        if 0 <= position < len(self.order):
            self.position = position
            self.episode = self.index.read(self.order[position])
            self.turn = 0
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
        other = worst if current.total_reward >= best.total_reward else best
        self.app.push_screen(CompareScreen(self.episode, self.index.read(other)))

    def action_export(self) -> None:
        run = RunDir(self.index.path.parent)
        target = run.path / "exports" / f"{self.episode.id}.md"
        try:
            atomic_write_text(target, episode_markdown(self.episode))
        except OSError as err:
            self.app.notify(f"Cannot write {target}: {err}", severity="error")
            return
        self.app.notify(f"Exported to {target}")

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


class EpisodeListScreen(Screen[None]):
    """The run's summary and its episodes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open"),
        Binding("slash", "search", "Search"),
        Binding("f", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("escape", "clear", "Clear"),
        Binding("j", "cursor(1)", "Down", show=False),
        Binding("k", "cursor(-1)", "Up", show=False),
        Binding("g", "jump('top')", "Top", show=False),
        Binding("G", "jump('bottom')", "Bottom", show=False),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.search_text = ""
        self.search_lines: set[int] | None = None
        self.sort_column = "line"
        self.sort_reverse = False
        self.loading = True
        self.view: list[EpisodeRow] = []
        self.start = 0
        self._moving = False
        self._compiled: tuple[str, Any] = ("", parse_filter(""))

    @property
    def replay(self) -> ReplayApp:
        app = self.app
        assert isinstance(app, ReplayApp)
        return app

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        with Vertical(id="curves"):
            for name in CURVES:
                with Horizontal(classes="curve", id=f"curve-{_curve_id(name)}"):
                    yield Label("", classes="curve-label")
                    yield Sparkline([])
        table: DataTable[Any] = DataTable(id="episodes", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#episodes", DataTable)
        for key, label, _ in COLUMNS:
            table.add_column(label, key=key)
        self.show_summary()
        self.refresh_rows()  # rows a cached index already knows; the worker adds the rest
        self.load_index()
        if self.replay.follow:
            self.set_interval(self.replay.refresh_s, self.follow_tick)

    # --- loading

    @work(thread=True, exclusive=True, group="index")
    def load_index(self) -> None:
        index = self.replay.index
        if not self.replay.cache_checked:
            self.replay.cache_checked = True
            if index.load_cache():
                rows = list(index.rows)
                self.app.call_from_thread(self.add_rows, rows[:CHUNK])
                if rows[CHUNK:]:
                    self.app.call_from_thread(self.add_rows, rows[CHUNK:])
        while True:
            new = index.update(max_rows=CHUNK)
            if new:
                self.app.call_from_thread(self.add_rows, new)
            if len(new) < CHUNK:
                break
        index.save_cache()
        self.app.call_from_thread(self.finish_loading)

    def finish_loading(self) -> None:
        self.loading = False
        index = self.replay.index
        for warning in index.warnings[:5]:
            self.app.notify(warning, severity="warning", timeout=6)
        if index.torn_tail() and not self.replay.follow:
            self.app.notify(
                "The last line of episodes.jsonl is incomplete and was skipped.", severity="warning"
            )
        self.update_status()

    def follow_tick(self) -> None:
        if not self.loading:
            self.loading = True
            self.load_index()
            self.show_summary()

    # --- rows
    #
    # Textual's DataTable measures every cell it holds, so a run of 100,000
    # episodes cannot live in it. The full list (filtered and sorted) stays here
    # in ``self.view``; the table shows a window of PAGE rows from ``self.start``
    # and moves the window when the cursor reaches its edge.

    def matches(self, row: EpisodeRow) -> bool:
        if self._compiled[0] != self.filter_text:
            try:
                self._compiled = (self.filter_text, parse_filter(self.filter_text))
            except FilterError:
                self._compiled = (self.filter_text, parse_filter(""))
        return self._compiled[1](row) and (
            self.search_lines is None or row.line in self.search_lines
        )

    def add_rows(self, rows: list[EpisodeRow]) -> None:
        """Rows the indexer found: add those the filter keeps, and show them if they fall in the window."""
        before = len(self.view)
        self.view += [r for r in rows if self.matches(r)]
        if self.sort_column != "line" or self.sort_reverse:
            self.sort_view()
            self.show_window(self.start)
        elif before < self.start + PAGE:
            self.show_window(self.start, keep_cursor=True)
        self.update_status()

    def refresh_rows(self) -> None:
        """Rebuild the list from the index (after a filter, search or sort change)."""
        self.view = [r for r in self.replay.index.rows if self.matches(r)]
        self.sort_view()
        self.show_window(0)
        self.update_status()

    def sort_view(self) -> None:
        attribute = next(a for key, _, a in COLUMNS if key == self.sort_column)
        self.view.sort(key=lambda r: _sort_key(getattr(r, attribute)), reverse=self.sort_reverse)

    def show_window(
        self, start: int, *, cursor: int | None = None, keep_cursor: bool = False
    ) -> None:
        """Show ``PAGE`` rows of the list from ``start``, the cursor on list position ``cursor``."""
        table = self.query_one("#episodes", DataTable)
        previous = self.start + table.cursor_row if table.row_count else 0
        self.start = max(0, min(start, max(0, len(self.view) - PAGE)))
        self._moving = True
        table.clear()
        table.add_rows(
            [
                [_cell(row, attribute) for _, _, attribute in COLUMNS]
                for row in self.view[self.start : self.start + PAGE]
            ]
        )
        target = previous if keep_cursor else (cursor if cursor is not None else self.start)
        if table.row_count:
            table.move_cursor(
                row=max(0, min(target - self.start, table.row_count - 1)), animate=False
            )
        self._moving = False

    def position(self) -> int:
        """The cursor's position in the whole list."""
        return self.start + self.query_one("#episodes", DataTable).cursor_row

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self._moving:
            return
        here = self.start + event.cursor_row
        table = self.query_one("#episodes", DataTable)
        at_end = event.cursor_row >= table.row_count - 1 and self.start + table.row_count < len(
            self.view
        )
        at_start = event.cursor_row == 0 and self.start > 0
        if at_end or at_start:
            self.show_window(here - PAGE // 2, cursor=here)
        self.update_status()

    def apply_sort(self) -> None:
        here = self.view[self.position()] if self.view else None
        self.sort_view()
        position = self.view.index(here) if here is not None else 0
        self.show_window(position - PAGE // 2, cursor=position)

    def ordered_rows(self) -> list[EpisodeRow]:
        return self.view

    def update_status(self) -> None:
        index = self.replay.index
        table = self.query_one("#episodes", DataTable)
        parts = [f"{len(self.view)} of {len(index.rows)} episodes"]
        if self.view:
            parts[0] = (
                f"{self.start + table.cursor_row + 1}/{len(self.view)} shown, {len(index.rows)} in the run"
            )
        if self.loading:
            parts.append("indexing...")
        if self.filter_text:
            parts.append(f"filter: {self.filter_text}")
        if self.search_text:
            parts.append(f"search: {self.search_text!r}")
        parts.append(f"sort: {self.sort_column}{' (reversed)' if self.sort_reverse else ''}")
        if index.warnings:
            parts.append(f"{len(index.warnings)} warnings")
        if self.replay.follow:
            parts.append("following")
        self.query_one("#status", Static).update("  |  ".join(parts))

    # --- summary and curves

    def show_summary(self) -> None:
        run = self.replay.run_dir
        config = run.read_config()
        kind = config.get("kind", "eval" if run.summary_path.exists() else "run")
        text = Text()
        text.append(f"{run.path.name}", style="bold")
        text.append(f"  ({kind})  env {config.get('env_id', '?')}")
        if config.get("agent"):
            text.append(f"  agent {config['agent']}")
        if config.get("model"):
            text.append(f"  model {config['model']}")
        summary = run.read_summary()
        metrics = summary.get("metrics", {}) if isinstance(summary.get("metrics"), dict) else {}
        shown = [
            m
            for m in (
                "success",
                "diagnosis_correct",
                "outcome",
                "total_reward",
                "num_turns",
                "exam_f1_e2e",
                "exam_precision",
                "exam_recall",
                "hit_ratio",
            )
            if m in metrics
        ]
        for name in shown[:8]:
            stat = metrics[name]
            low, high = stat.get("low"), stat.get("high")
            interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
            text.append(
                f"\n{name:<18} {stat.get('value', math.nan):.3f}{interval}  (n={stat.get('n', '?')})"
            )
        self.query_one("#summary", Static).update(text)
        self.show_curves()

    def show_curves(self) -> None:
        """Sparklines of the training metrics over steps (hidden for a run without metrics.jsonl)."""
        run = self.replay.run_dir
        rows = list(iter_jsonl(run.metrics_path)) if run.metrics_path.exists() else []
        shown = 0
        for name in CURVES:
            values = [
                float(r[name])
                for r in rows
                if isinstance(r.get(name), int | float) and math.isfinite(float(r[name]))
            ]
            row = self.query_one(f"#curve-{_curve_id(name)}", Horizontal)
            row.display = bool(values)
            if values:
                shown += 1
                row.query_one(Label).update(f"{name} {values[-1]:+.3f} (step {len(values)})")
                row.query_one(Sparkline).data = values
        self.query_one("#curves", Vertical).display = shown > 0

    # --- actions

    def action_cursor(self, delta: int) -> None:
        table = self.query_one("#episodes", DataTable)
        table.move_cursor(row=max(0, table.cursor_row + delta))

    def action_open(self) -> None:
        table = self.query_one("#episodes", DataTable)
        order = self.ordered_rows()
        if not order:
            return
        self.app.push_screen(
            EpisodeScreen(self.replay.index, order, min(table.cursor_row, len(order) - 1))
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_filter(self) -> None:
        def apply(value: str | None) -> None:
            if value is None:
                return
            try:
                parse_filter(value)
            except FilterError as err:
                self.app.notify(str(err), severity="error", timeout=8)
                return
            self.filter_text = value.strip()
            self.refresh_rows()

        self.app.push_screen(
            PromptScreen("Filter episodes", "outcome>0 env~Diag turns<=3", self.filter_text), apply
        )

    def action_search(self) -> None:
        def apply(value: str | None) -> None:
            if value is None:
                return
            self.search_text = value.strip()
            if not self.search_text:
                self.search_lines = None
                self.refresh_rows()
                return
            self.run_search(self.search_text)

        self.app.push_screen(
            PromptScreen("Search observations and actions", "text to find", self.search_text), apply
        )

    @work(thread=True, exclusive=True, group="search")
    def run_search(self, text: str) -> None:
        index = self.replay.index
        lines = {row.line for row in index.search(text, list(index.rows))}
        self.app.call_from_thread(self.finish_search, lines)

    def finish_search(self, lines: set[int]) -> None:
        self.search_lines = lines
        self.refresh_rows()
        if not lines:
            self.app.notify(f"No episode contains {self.search_text!r}.", severity="warning")

    def action_sort(self) -> None:
        position = SORTABLE.index(self.sort_column) if self.sort_column in SORTABLE else -1
        self.sort_column = SORTABLE[(position + 1) % len(SORTABLE)]
        self.apply_sort()
        self.update_status()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.apply_sort()
        self.update_status()

    def action_clear(self) -> None:
        self.filter_text = self.search_text = ""
        self.search_lines = None
        self.refresh_rows()


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
        # The saved index is read by the list's indexing worker, so the UI draws at once.
        self.index = open_index(self.run_dir.episodes_path, cached=False)
        self.cache_checked = False

    def on_mount(self) -> None:
        self.sub_title = self.run_dir.path.name
        self.push_screen(EpisodeListScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
