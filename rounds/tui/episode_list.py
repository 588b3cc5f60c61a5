"""The episode list: the run's summary, its training curves and a window over its episodes.

Textual's DataTable measures every cell it holds, so a run of 100,000 episodes
cannot live in it. The whole list (filtered and sorted) is ``view``; the cursor is
a position in it (``cursor``), and the table shows a window of ``PAGE`` rows from
``start`` that moves whenever the cursor leaves it. The screen owns every movement
key, so the position never depends on the order Textual delivers table messages.

Opening must show rows at once, even for a run the index has never seen: the
first ``PAGE`` episodes are indexed before the first frame, and the rest (or the
saved index) is read by a worker thread while the list is already usable.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, Label, Sparkline, Static

from rounds.storage import RunFileWarning, scan_jsonl
from rounds.tui.dialogs import PromptScreen
from rounds.tui.episode_screens import EpisodeScreen
from rounds.tui.filters import FilterError, parse_filter
from rounds.tui.index import EpisodeIndex, EpisodeRow
from rounds.tui.views import CORE_SUMMARY_METRICS, cell, summary_metrics, summary_table

if TYPE_CHECKING:
    from rounds.tui.app import ReplayApp

#: Columns every run has: (key, label, row attribute).
CORE_COLUMNS = [
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
#: Columns ``s`` sorts by, in turn (then the metric columns).
SORTABLE = ["line", "env", "task", "outcome", "reward", "turns", "seed", "step"]
#: Most metric columns the list shows (the first the run's env declared).
MAX_METRIC_COLUMNS = 4
#: Training curves shown for a run with metrics.jsonl (names the trainer writes).
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
#: Episodes the indexing worker hands to the list at a time.
CHUNK = 2000
#: Rows the episode table holds at once (the window over the whole list).
PAGE = 120
#: Warnings shown as notifications (the status line counts them all).
NOTIFIED_WARNINGS = 5


def _curve_id(name: str) -> str:
    return name.replace("@", "-at-").replace("_", "-").replace("/", "-")


def _sort_key(value: Any) -> Any:
    if isinstance(value, Text):
        value = value.plain
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        return (1, str(value))


def _finite_numbers(rows: list[dict[str, Any]], name: str) -> list[float]:
    values = [r.get(name) for r in rows]
    return [
        float(v)
        for v in values
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]


class StatusLine(Widget):
    """One line of status text. Changing it repaints the line only: a ``Static`` would lay
    out the whole screen again on every key press (tens of milliseconds per cursor move)."""

    text: reactive[str] = reactive("", layout=False)

    def render(self) -> str:
        return self.text


class EpisodeListScreen(Screen[None]):
    """The run's summary and its episodes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", priority=True),
        Binding("slash", "search", "Search"),
        Binding("f", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("escape", "clear", "Clear"),
        # Movement belongs to the screen, not the table: the cursor is a list position.
        Binding("down,j", "move(1)", "Down", show=False, priority=True),
        Binding("up,k", "move(-1)", "Up", show=False, priority=True),
        Binding("pagedown", "page(1)", "Page down", show=False, priority=True),
        Binding("pageup", "page(-1)", "Page up", show=False, priority=True),
        Binding("g,home", "jump('top')", "Top", show=False, priority=True),
        Binding("G,end", "jump('bottom')", "Bottom", show=False, priority=True),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.search_text = ""
        #: Lines whose episodes contain the search text, among the first ``searched`` rows.
        self.search_lines: set[int] | None = None
        self.searched = 0
        self.sort_column = "line"
        self.sort_reverse = False
        #: True until the first indexing pass has read the whole file.
        self.indexing = True
        self.view: list[EpisodeRow] = []
        self.cursor = 0
        self.start = 0
        self.columns: list[tuple[str, str, str]] = list(CORE_COLUMNS)
        self.warnings: list[str] = []
        self._index_busy = False
        self._search_busy = False
        self._screen_row = 0
        self._notified = 0
        self._compiled: tuple[str, Any] = ("", parse_filter(""))

    @property
    def replay(self) -> ReplayApp:
        from rounds.tui.app import ReplayApp

        app = self.app
        assert isinstance(app, ReplayApp)
        return app

    @property
    def index(self) -> EpisodeIndex:
        return self.replay.index

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        if not (self.replay.follow or self.replay.run_dir.metrics_path.exists()):
            yield DataTable(id="episodes", cursor_type="row", zebra_stripes=True)
            yield StatusLine(id="status")
            yield Footer()
            return  # an evaluation: no training curves (16 fewer widgets to lay out)
        with Vertical(id="curves"):
            for name in CURVES:
                with Horizontal(classes="curve", id=f"curve-{_curve_id(name)}"):
                    yield Label("", classes="curve-label")
                    yield Sparkline([])
        yield DataTable(id="episodes", cursor_type="row", zebra_stripes=True)
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        # The first screenful, before the first frame: a few milliseconds even for a huge run.
        self.index.update(max_rows=PAGE)
        self.add_columns()
        self.show_summary()
        self.refresh_rows()
        self.report_warnings()
        self.call_after_refresh(self.start_indexing)
        if self.replay.follow:
            self.set_interval(self.replay.refresh_s, self.follow_tick)

    def add_columns(self) -> None:
        """The core columns, then the metrics the run's env declared (those its first
        episodes hold)."""
        present = {name for row in self.index.rows for name in row.metrics}
        core = {attribute for _, _, attribute in CORE_COLUMNS} | set(CORE_SUMMARY_METRICS)
        metrics = [n for n in self.index.declared if n in present and n not in core]
        self.columns = list(CORE_COLUMNS) + [
            (f"metric:{n}", n, f"metric:{n}") for n in metrics[:MAX_METRIC_COLUMNS]
        ]
        table = self.query_one("#episodes", DataTable)
        for key, label, _ in self.columns:
            table.add_column(label, key=key)

    # --- indexing

    def start_indexing(self) -> None:
        if not self._index_busy:
            self._index_busy = True
            self.index_rest()

    @work(thread=True, exclusive=True, group="index")
    def index_rest(self) -> None:
        """Index what the list does not have yet: the saved index first (once), then new lines."""
        index = self.index
        if not self.replay.cache_checked:
            self.replay.cache_checked = True
            saved = EpisodeIndex(index.path)
            if saved.load_cache():
                known = self.app.call_from_thread(self.adopt_saved_index, saved)
                for start in range(known, len(saved.rows), CHUNK):  # the UI runs in between
                    self.app.call_from_thread(self.add_rows, saved.rows[start : start + CHUNK])
        while True:
            restarts = index.restarts
            new = index.update(max_rows=CHUNK)
            if index.restarts != restarts:  # a new run replaced the file: list it afresh
                self.app.call_from_thread(self.restart_list)
            elif new:
                self.app.call_from_thread(self.add_rows, new)
            if len(new) < CHUNK:
                break
        if self.indexing:
            index.save_cache()
        self.app.call_from_thread(self.finish_indexing)

    def adopt_saved_index(self, saved: EpisodeIndex) -> int:
        """Take the saved index's rows if it extends what the first screenful read; returns
        how many of its rows the list already holds (all of them if it was not taken)."""
        index = self.index
        if saved.end < index.end:
            return len(saved.rows)
        known = len(index.rows)
        index.rows, index.end, index.lines = saved.rows, saved.end, saved.lines
        index.warnings = saved.warnings
        index.declared += [n for n in saved.declared if n not in index.declared]
        return known

    def restart_list(self) -> None:
        """The file was replaced: the list, its search and its warnings start over."""
        self.searched = 0
        if self.search_lines is not None:
            self.search_lines = set()
        self._notified = len(self.warnings)
        self.refresh_rows()
        self.continue_search()

    def finish_indexing(self) -> None:
        self._index_busy = False
        first = self.indexing
        self.indexing = False
        self.report_warnings()
        if first and self.index.torn_tail() and not self.replay.follow:
            self.app.notify(
                "The last line of episodes.jsonl is incomplete and was skipped (a writer was "
                "interrupted; resuming the run moves it to episodes.jsonl.torn).",
                severity="warning",
            )
        self.continue_search()
        self.update_status()

    def follow_tick(self) -> None:
        """Read what a running writer appended (quietly: no indicator flips on and off)."""
        self.start_indexing()
        self.show_summary()

    def report_warnings(self) -> None:
        """Notify the first few warnings of the index and the run's files."""
        pending = [*self.warnings, *self.index.warnings]
        for warning in pending[self._notified : NOTIFIED_WARNINGS]:
            self.app.notify(warning, severity="warning", timeout=6)
        self._notified = max(self._notified, min(len(pending), NOTIFIED_WARNINGS))

    # --- the list and its window

    def matches(self, row: EpisodeRow) -> bool:
        if self._compiled[0] != self.filter_text:
            try:
                predicate = parse_filter(self.filter_text, self.index.declared)
            except FilterError:
                predicate = parse_filter("")
            self._compiled = (self.filter_text, predicate)
        return self._compiled[1](row) and (
            self.search_lines is None or row.line in self.search_lines
        )

    def add_rows(self, rows: list[EpisodeRow]) -> None:
        """Rows the indexer found: add those the filter (and search) keeps, keeping the cursor
        on its episode; rows a running search has not read yet wait for it."""
        if self.search_lines is not None:
            self.continue_search()
            self.update_status()
            return
        kept = [r for r in rows if self.matches(r)]
        if not kept:
            self.update_status()
            return
        if self.sort_column != "line" or self.sort_reverse:
            here = self.view[self.cursor] if self.view else None
            self.view += kept
            self.sort_view()
            self.cursor = next((i for i, r in enumerate(self.view) if r is here), 0)
            self.show_window(force=True)
        else:
            before = len(self.view)
            self.view += kept
            if before < self.start + PAGE:
                self.show_window(force=True)
        self.update_status()

    def refresh_rows(self, *, keep: EpisodeRow | None = None) -> None:
        """Rebuild the list from the index (after a filter, search or sort change); the cursor
        goes to ``keep`` if it is still listed, else to the top."""
        self.view = [r for r in self.index.rows if self.matches(r)]
        self.sort_view()
        positions = {id(r): i for i, r in enumerate(self.view)} if keep is not None else {}
        self.cursor = positions.get(id(keep), 0)
        self.show_window(force=True)
        self.update_status()

    def sort_view(self) -> None:
        attribute = next(a for key, _, a in self.columns if key == self.sort_column)
        self.view.sort(key=lambda r: _sort_key(r.value(attribute)), reverse=self.sort_reverse)

    def show_window(self, *, force: bool = False) -> None:
        """Put the table's cursor on list position ``cursor``, moving the window if the cursor
        left it (the rows around the cursor stay where they were on screen)."""
        table = self.query_one("#episodes", DataTable)
        self.cursor = max(0, min(self.cursor, len(self.view) - 1))
        inside = self.start <= self.cursor < self.start + table.row_count
        if inside and not force:
            table.move_cursor(row=self.cursor - self.start, animate=False)
            self.update_status()
            return
        screen_row = table.cursor_row - round(table.scroll_y) if table.row_count else 0
        if not inside:
            self.start = self.cursor - PAGE // 2
        self.start = max(0, min(self.start, len(self.view) - PAGE))
        table.clear()
        table.add_rows(
            [
                [cell(row, attribute) for _, _, attribute in self.columns]
                for row in self.view[self.start : self.start + PAGE]
            ]
        )
        if table.row_count:
            table.move_cursor(row=self.cursor - self.start, animate=False, scroll=False)
            # The table knows its new height only after a refresh; keys handled before then
            # move the cursor on, so the scroll is worked out from the state at that time.
            self._screen_row = screen_row
            self.call_after_refresh(self._keep_screen_row)
        self.update_status()

    def _keep_screen_row(self) -> None:
        """Scroll so the cursor sits on the screen line it had before the window moved."""
        table = self.query_one("#episodes", DataTable)
        if table.row_count:
            visible = max(1, table.scrollable_content_region.height - 1)
            line = max(0, min(self._screen_row, visible - 1))
            table.scroll_to(y=max(0, table.cursor_row - line), animate=False, immediate=True)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """A mouse click moved the table's cursor: follow it (key moves set ``cursor`` first)."""
        table = event.data_table
        if event.cursor_row != table.cursor_row:
            return  # an older message: the table has moved on
        if self.start + table.cursor_row != self.cursor and table.cursor_row < len(self.view):
            self.cursor = self.start + table.cursor_row
            self.update_status()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.cursor = self.start + event.cursor_row
        self.action_open()

    def update_status(self) -> None:
        index = self.index
        total = len(index.rows)
        parts = [f"0 of {total:,} episodes shown"]
        if self.view:
            parts[0] = f"{self.cursor + 1:,}/{len(self.view):,} shown, {total:,} in the run"
        if self.indexing:
            parts.append("indexing...")
        if self.filter_text:
            parts.append(f"filter: {self.filter_text}")
        if self.search_text:
            searching = " (searching...)" if self._search_busy else ""
            parts.append(f"search: {self.search_text!r}{searching}")
        sort = self.sort_column.removeprefix("metric:")
        parts.append(f"sort: {sort}{' (reversed)' if self.sort_reverse else ''}")
        problems = len(index.warnings) + len(self.warnings)
        if problems:
            parts.append(f"{problems} warnings")
        if self.replay.follow:
            parts.append("following")
        self.query_one("#status", StatusLine).text = "  |  ".join(parts)

    # --- summary and curves

    def show_summary(self) -> None:
        run = self.replay.run_dir
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RunFileWarning)
            config = run.read_config()
            summary = run.read_summary()
        problems = [str(w.message) for w in caught]
        kind = config.get("kind", "eval" if run.summary_path.exists() else "run")
        text = Text()
        text.append(f"{run.path.name}", style="bold")
        text.append(f"  ({kind})  env {config.get('env_id', '?')}")
        if config.get("agent"):
            text.append(f"  agent {config['agent']}")
        if config.get("model"):
            text.append(f"  model {config['model']}")
        entries, bad = summary_metrics(summary, self.index.declared)
        self.query_one("#summary", Static).update(
            Group(text, summary_table(entries)) if entries else text
        )
        problems += bad + self.show_curves()
        self.warnings += [p for p in problems if p not in self.warnings]
        if self.is_mounted:
            self.report_warnings()

    def show_curves(self) -> list[str]:
        """Sparklines of the training metrics over steps (hidden for a run without
        ``metrics.jsonl``); returns the problems of that file's lines."""
        run = self.replay.run_dir
        rows: list[dict[str, Any]] = []
        problems: list[str] = []
        if not self.query("#curves"):
            return problems
        if run.metrics_path.exists():
            for line in scan_jsonl(run.metrics_path):
                problems += [f"metrics.jsonl {p}" for p in line.problems]
                if line.value is not None:
                    rows.append(line.value)
        shown = 0
        for name in CURVES:
            values = _finite_numbers(rows, name)
            row = self.query_one(f"#curve-{_curve_id(name)}", Horizontal)
            row.display = bool(values)
            if values:
                shown += 1
                row.query_one(Label).update(f"{name} {values[-1]:+.3f} (step {len(values)})")
                row.query_one(Sparkline).data = values
        self.query_one("#curves", Vertical).display = shown > 0
        return problems

    # --- actions

    def action_move(self, delta: int) -> None:
        if self.view:
            self.cursor = max(0, min(self.cursor + delta, len(self.view) - 1))
            self.show_window()

    def action_page(self, direction: int) -> None:
        table = self.query_one("#episodes", DataTable)
        self.action_move(direction * max(1, table.scrollable_content_region.height - 1))

    def action_jump(self, where: str) -> None:
        """``top`` or ``bottom`` of the whole list (not of the table's window)."""
        if self.view:
            self.cursor = 0 if where == "top" else len(self.view) - 1
            self.show_window()

    def action_open(self) -> None:
        if not self.view:
            return
        order = list(self.view)
        row = order[self.cursor]
        episode = self.index.read(row)
        if episode is None:
            self.app.notify(
                f"Line {row.line} is no longer a valid episode; the file changed since it was "
                "indexed.",
                severity="warning",
            )
            return
        self.app.push_screen(EpisodeScreen(self.index, order, self.cursor, episode))

    def action_filter(self) -> None:
        def apply(value: str | None) -> None:
            if value is None:
                return
            try:
                parse_filter(value, self.index.declared)
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
            self.searched = 0
            self.search_lines = set() if self.search_text else None
            self.refresh_rows()
            self.continue_search()

        self.app.push_screen(
            PromptScreen("Search observations and actions", "text to find", self.search_text),
            apply,
        )

    def continue_search(self) -> None:
        """Search the rows indexed since the last search pass (all of them for a new search)."""
        if self.search_lines is None or self._search_busy:
            return
        if self.searched < len(self.index.rows):
            self._search_busy = True
            self.run_search(self.search_text, self.searched)
            self.update_status()

    @work(thread=True, group="search")
    def run_search(self, text: str, first: int) -> None:
        rows = self.index.rows[first:]
        lines = {row.line for row in self.index.search(text, rows)}
        self.app.call_from_thread(self.finish_search, text, lines, first + len(rows))

    def finish_search(self, text: str, lines: set[int], searched: int) -> None:
        self._search_busy = False
        if text != self.search_text or self.search_lines is None:
            self.continue_search()  # the search changed while this pass ran
            return
        self.search_lines |= lines
        self.searched = searched
        here = self.view[self.cursor] if self.view else None
        if lines:
            self.refresh_rows(keep=here)
        done = self.searched >= len(self.index.rows)
        if done and not self.indexing and not self.search_lines:
            self.app.notify(f"No episode contains {text!r}.", severity="warning")
        self.continue_search()
        self.update_status()

    def action_sort(self) -> None:
        sortable = SORTABLE + [key for key, _, _ in self.columns if key.startswith("metric:")]
        position = sortable.index(self.sort_column) if self.sort_column in sortable else -1
        self.sort_column = sortable[(position + 1) % len(sortable)]
        self.apply_sort()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.apply_sort()

    def apply_sort(self) -> None:
        here = self.view[self.cursor] if self.view else None
        self.refresh_rows(keep=here)

    def action_clear(self) -> None:
        here = self.view[self.cursor] if self.view else None
        self.filter_text = self.search_text = ""
        self.search_lines = None
        self.refresh_rows(keep=here)
