"""A lazy index of ``episodes.jsonl``: one small row per episode, full episodes read on demand.

Opening a run of 100,000 episodes must not parse every episode, so the index
keeps each line's byte offset and the fields the episode list shows. It is saved
beside the file (``.episodes.index.json``) and reused on the next open when the
file's head is unchanged; lines appended since (a run still being written) are
indexed incrementally. Unreadable lines are skipped with a warning, and a last
line without its newline waits until it is complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rounds.records import Episode
from rounds.storage import atomic_write_text

INDEX_VERSION = 1
HEAD_BYTES = 65_536


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


def _row(offset: int, length: int, line: int, data: dict[str, Any]) -> EpisodeRow:
    raw_metrics, raw_meta = data.get("metrics"), data.get("meta")
    metrics: dict[str, Any] = raw_metrics if isinstance(raw_metrics, dict) else {}
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    outcome = float(data.get("outcome") or 0.0)
    success = metrics.get("success")

    def as_int(value: Any) -> int | None:
        return (
            int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    return EpisodeRow(
        offset=offset,
        length=length,
        line=line,
        id=str(data.get("id") or ""),
        env_id=str(data.get("env_id") or ""),
        task_id=str(data.get("task_id") or ""),
        seed=as_int(data.get("seed")),
        agent=str(data.get("agent") or ""),
        model=str(data.get("model") or ""),
        outcome=outcome,
        total_reward=float(data.get("total_reward") or 0.0),
        turns=len(data.get("turns") or []),
        truncated=bool(data.get("truncated")),
        success=bool(success > 0) if isinstance(success, int | float) else outcome > 0,
        step=as_int(meta.get("step")),
        group=as_int(meta.get("group")),
    )


@dataclass
class EpisodeIndex:
    """The index of one ``episodes.jsonl`` file."""

    path: Path
    rows: list[EpisodeRow] = field(default_factory=list)
    end: int = 0
    lines: int = 0
    warnings: list[str] = field(default_factory=list)
    _head: str = ""

    @property
    def cache_path(self) -> Path:
        return self.path.with_name(f".{self.path.stem}.index.json")

    def _file_head(self) -> str:
        with self.path.open("rb") as handle:
            return hashlib.sha256(handle.read(HEAD_BYTES)).hexdigest()

    def load_cache(self) -> bool:
        """Reuse a saved index if it belongs to this file (same head, file not shorter)."""
        if not self.path.exists() or not self.cache_path.exists():
            return False
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
            if (
                data.get("version") != INDEX_VERSION
                or data.get("end", 0) > self.path.stat().st_size
            ):
                return False
            if data.get("head") != self._file_head() and self.path.stat().st_size > 0:
                return False
            columns = data["columns"]
            if list(columns) != [f.name for f in fields(EpisodeRow)]:
                return False
            self.rows = [EpisodeRow(*values) for values in zip(*columns.values(), strict=True)]
            self.end, self.lines = int(data["end"]), int(data["lines"])
            self.warnings = list(data.get("warnings", []))
            return True
        except (OSError, ValueError, KeyError, TypeError):
            self.rows, self.end, self.lines = [], 0, 0
            return False

    def save_cache(self) -> None:
        """Save the index beside the file (skipped when the directory is read-only)."""
        if not self.rows:
            return
        names = [f for f in asdict(self.rows[0])]
        columns = {name: [getattr(r, name) for r in self.rows] for name in names}
        payload = {
            "version": INDEX_VERSION,
            "head": self._file_head(),
            "end": self.end,
            "lines": self.lines,
            "warnings": self.warnings[-50:],
            "columns": columns,
        }
        with contextlib.suppress(OSError):  # a read-only run directory: no cache, no harm
            atomic_write_text(self.cache_path, json.dumps(payload))

    def update(self, max_rows: int | None = None) -> list[EpisodeRow]:
        """Index complete lines written since the last call (at most ``max_rows``); returns the new rows."""
        if not self.path.exists():
            return []
        size = self.path.stat().st_size
        if size < self.end:  # the file was replaced: start over
            self.rows, self.end, self.lines = [], 0, 0
        new: list[EpisodeRow] = []
        with self.path.open("rb") as handle:
            handle.seek(self.end)
            while max_rows is None or len(new) < max_rows:
                raw = handle.readline()
                if not raw or not raw.endswith(b"\n"):
                    break  # end of file, or a line still being written
                offset = self.end
                self.end += len(raw)
                self.lines += 1
                if not raw.strip():
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = raw.decode("utf-8", "replace")
                    self.warnings.append(
                        f"line {self.lines}: bytes that are not UTF-8 were replaced"
                    )
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as err:
                    self.warnings.append(f"line {self.lines}: skipped, not JSON ({err.msg})")
                    continue
                if not isinstance(data, dict):
                    self.warnings.append(f"line {self.lines}: skipped, not an episode record")
                    continue
                row = _row(offset, len(raw), self.lines, data)
                new.append(row)
                self.rows.append(row)
        return new

    def torn_tail(self) -> bool:
        """Whether the file ends in a line without its newline (a writer was interrupted, or is writing)."""
        return self.path.exists() and self.path.stat().st_size > self.end

    def read(self, row: EpisodeRow) -> Episode:
        """The full episode of ``row`` (unknown fields kept, bad bytes replaced)."""
        with self.path.open("rb") as handle:
            handle.seek(row.offset)
            raw = handle.read(row.length)
        return Episode.model_validate(json.loads(raw.decode("utf-8", "replace")))

    def search(self, text: str, rows: list[EpisodeRow]) -> Iterator[EpisodeRow]:
        """Rows whose line contains ``text`` (case-insensitive, in observations, actions or anything)."""
        # The text as it appears inside a JSON string (quotes and newlines escaped).
        needle = json.dumps(text, ensure_ascii=False)[1:-1].lower().encode("utf-8")
        with self.path.open("rb") as handle:
            for row in rows:
                handle.seek(row.offset)
                if needle in handle.read(row.length).lower():
                    yield row


def open_index(path: Path, *, cached: bool = True) -> EpisodeIndex:
    """An index of ``path``: the saved one if it fits (and ``cached``), else a fresh, empty one."""
    index = EpisodeIndex(Path(path))
    if cached:
        index.load_cache()
    return index


def file_size(path: Path) -> int:
    return os.path.getsize(path) if path.exists() else 0
