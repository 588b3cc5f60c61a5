"""A lazy index of ``episodes.jsonl``: one small row per episode, full episodes read on demand.

Opening a run of 100,000 episodes must not parse every episode, so the index
keeps each line's byte offset and the fields the episode list shows. It is saved
beside the file (``.episodes.index.json``: a header line, then rows in chunks) and reused on the next open when the
file's head is unchanged; lines appended since (a run still being written) are
indexed incrementally. Lines are decoded by :func:`rounds.storage.decode_line`,
the readers' decoder: a line that is not a valid episode is never indexed (a
warning names its line and the reason), and a last line without its newline
waits until it is complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rounds.records import Episode
from rounds.storage import JsonlLine, atomic_write_text, decode_line, scan_jsonl

INDEX_VERSION = 3
HEAD_BYTES = 65_536
#: Rows per line of the saved index.
CACHE_CHUNK = 2000


@dataclass
class EpisodeRow:
    """What the episode list shows of one episode, and where its line is."""

    offset: int
    length: int
    line: int
    id: str = ""
    env_id: str = ""
    task_id: str = ""
    seed: int | None = None
    agent: str = ""
    model: str = ""
    outcome: float = 0.0
    total_reward: float = 0.0
    turns: int = 0
    truncated: bool = False
    success: bool = False
    step: int | None = None
    group: int | None = None
    #: The values of the metrics the env declared for the replay (``Episode.meta``).
    metrics: dict[str, float] = field(default_factory=dict)

    def value(self, attribute: str) -> Any:
        """A field's value, or a declared metric's for ``metric:NAME`` (``None`` if absent):
        what the list's columns, sort and filter read."""
        if attribute.startswith("metric:"):
            return self.metrics.get(attribute.removeprefix("metric:"))
        return getattr(self, attribute)


def declared_metrics(episode: Episode) -> list[str] | None:
    """The metrics the episode's env declared worth showing (``meta["replay_metrics"]``),
    or ``None`` for a record written before envs declared them."""
    names = episode.meta.get("replay_metrics")
    return [str(n) for n in names] if isinstance(names, list) else None


def _row(line: JsonlLine[Episode], episode: Episode) -> EpisodeRow:
    declared = declared_metrics(episode)
    return EpisodeRow(
        offset=line.offset,
        length=line.length,
        line=line.number,
        id=episode.id,
        env_id=episode.env_id,
        task_id=episode.task_id or "",
        seed=episode.seed,
        agent=episode.agent,
        model=episode.model or "",
        outcome=episode.outcome,
        total_reward=episode.total_reward,
        turns=episode.num_turns,
        truncated=episode.truncated,
        success=episode.success,
        step=_as_int(episode.meta.get("step")),
        group=_as_int(episode.meta.get("group")),
        metrics={k: episode.metrics[k] for k in declared or () if k in episode.metrics},
    )


def _as_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class EpisodeIndex:
    """The index of one ``episodes.jsonl`` file."""

    path: Path
    rows: list[EpisodeRow] = field(default_factory=list)
    end: int = 0
    lines: int = 0
    warnings: list[str] = field(default_factory=list)
    #: Every metric the run's episodes declared for the replay, in first-seen order.
    declared: list[str] = field(default_factory=list)
    #: How many times the file was replaced by a shorter one and indexing started over.
    restarts: int = 0

    @property
    def cache_path(self) -> Path:
        return self.path.with_name(f".{self.path.stem}.index.json")

    def _file_head(self) -> str:
        with self.path.open("rb") as handle:
            return hashlib.sha256(handle.read(HEAD_BYTES)).hexdigest()

    def load_cache(self) -> bool:
        """Reuse a saved index if it belongs to this file (same head, file not shorter).

        The saved index is a header line and then the rows in chunks of
        :data:`CACHE_CHUNK`, one JSON line each: a worker thread reading it lets the
        UI thread run between chunks (one big JSON document would hold the GIL for
        the whole parse, freezing the first frames of the app).
        """
        if not self.path.exists() or not self.cache_path.exists():
            return False
        try:
            with self.cache_path.open(encoding="utf-8") as handle:
                header = json.loads(handle.readline())
                if (
                    header.get("version") != INDEX_VERSION
                    or header.get("fields") != [f.name for f in fields(EpisodeRow)]
                    or header.get("end", 0) > self.path.stat().st_size
                    or (header.get("head") != self._file_head() and self.path.stat().st_size > 0)
                ):
                    return False
                rows: list[EpisodeRow] = []
                for line in handle:
                    columns = json.loads(line)
                    rows += [EpisodeRow(*values) for values in zip(*columns, strict=True)]
            if len(rows) != header["rows"]:
                return False
            self.rows, self.end, self.lines = rows, int(header["end"]), int(header["lines"])
            self.warnings = [str(w) for w in header.get("warnings", [])]
            self.declared = [str(n) for n in header.get("declared", [])]
            return True
        except (OSError, ValueError, KeyError, TypeError):
            self.rows, self.end, self.lines, self.declared = [], 0, 0, []
            return False

    def save_cache(self) -> None:
        """Save the index beside the file (skipped when the directory is read-only)."""
        if not self.rows:
            return
        names = [f.name for f in fields(EpisodeRow)]
        header = {
            "version": INDEX_VERSION,
            "head": self._file_head(),
            "end": self.end,
            "lines": self.lines,
            "rows": len(self.rows),
            "warnings": self.warnings[-50:],
            "declared": self.declared,
            "fields": names,
        }
        lines = [json.dumps(header)]
        for start in range(0, len(self.rows), CACHE_CHUNK):
            chunk = self.rows[start : start + CACHE_CHUNK]
            lines.append(json.dumps([[getattr(r, name) for r in chunk] for name in names]))
        with contextlib.suppress(OSError):  # a read-only run directory: no cache, no harm
            atomic_write_text(self.cache_path, "\n".join(lines) + "\n")

    def update(self, max_rows: int | None = None) -> list[EpisodeRow]:
        """Index complete lines written since the last call (at most ``max_rows`` episodes);
        returns the new rows. Lines that are not valid episodes are skipped with a warning."""
        if not self.path.exists():
            return []
        size = self.path.stat().st_size
        if size < self.end:  # the file was replaced: start over
            self.rows, self.end, self.lines, self.declared = [], 0, 0, []
            self.warnings = []
            self.restarts += 1
        new: list[EpisodeRow] = []
        if max_rows is not None and max_rows <= 0:
            return new
        lines = scan_jsonl(
            self.path, model=Episode, offset=self.end, first_line=self.lines + 1, complete_only=True
        )
        for line in lines:
            self.end = line.offset + line.length
            self.lines = line.number
            self.warnings += [str(problem) for problem in line.problems]
            if line.value is not None:
                for name in declared_metrics(line.value) or ():
                    if name not in self.declared:
                        self.declared.append(name)
                row = _row(line, line.value)
                new.append(row)
                self.rows.append(row)
                if max_rows is not None and len(new) >= max_rows:
                    break
        return new

    def torn_tail(self) -> bool:
        """Whether the file ends in a line without its newline (a writer was interrupted, or is writing)."""
        return self.path.exists() and self.path.stat().st_size > self.end

    def read(self, row: EpisodeRow) -> Episode | None:
        """The full episode of ``row`` (unknown fields kept, bad bytes replaced), or ``None``
        with a warning when its line no longer holds a valid episode (the file changed)."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(row.offset)
                raw = handle.read(row.length)
        except OSError as err:
            self.warnings.append(f"line {row.line}: cannot be read ({err})")
            return None
        line = decode_line(raw, row.line, Episode)
        if line.value is None:
            self.warnings += [str(problem) for problem in line.problems]
        return line.value

    def search(self, text: str, rows: list[EpisodeRow]) -> Iterator[EpisodeRow]:
        """Rows whose observations or actions contain ``text`` (case-insensitive).

        Observations include the env's last reply (``meta["final_observation"]``). A
        line is decoded only when its raw bytes could hold the text, so a search
        over 100,000 episodes reads the file once and parses the few candidates.
        """
        wanted = text.lower()
        if not wanted:
            return
        # The text as it appears inside a JSON string (quotes and newlines escaped); a
        # needle with other characters may be written as \u escapes, so decode every line.
        needle = json.dumps(wanted)[1:-1].encode("ascii") if wanted.isascii() else b""
        with self.path.open("rb") as handle:
            for row in rows:
                handle.seek(row.offset)
                raw = handle.read(row.length)
                if needle and needle not in raw.lower():
                    continue
                episode = decode_line(raw, row.line, Episode).value
                if episode is not None and wanted in _searchable_text(episode):
                    yield row


def _searchable_text(episode: Episode) -> str:
    """What the replay's search looks in: every observation and action, lower-cased."""
    parts = [t.observation for t in episode.turns] + [t.action for t in episode.turns]
    final = episode.meta.get("final_observation")
    if isinstance(final, str):
        parts.append(final)
    return "\n".join(parts).lower()


def open_index(path: Path, *, cached: bool = True) -> EpisodeIndex:
    """An index of ``path``: the saved one if it fits (and ``cached``), else a fresh, empty one."""
    index = EpisodeIndex(Path(path))
    if cached:
        index.load_cache()
    return index
