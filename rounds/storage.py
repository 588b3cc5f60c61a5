"""Run directories and their files: append-only JSONL and atomically replaced documents.

A run directory (``DESIGN.md``) holds ``config.yaml``, ``episodes.jsonl``,
``metrics.jsonl``, ``summary.json`` and ``checkpoints/``. Writers append whole
lines and flush, so a crash loses at most the line being written; readers skip
a torn or corrupt line with a warning instead of failing, so a run that is still
being written (or was killed) can always be read.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml
from pydantic import BaseModel, ValidationError

from rounds.records import Episode, jsonable

CONFIG_FILE = "config.yaml"
EPISODES_FILE = "episodes.jsonl"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINTS_DIR = "checkpoints"


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file safely (with libyaml's C loader when available: 5-10x faster)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_YAML_LOADER)


class RunFileWarning(UserWarning):
    """A line of a run file could not be read and was skipped."""


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` so readers see either the old file or the whole new one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a run's files follow the umask
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    atomic_write_text(path, json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n")


def atomic_write_yaml(path: str | os.PathLike[str], data: Any) -> None:
    """Atomically write ``data`` as YAML (keys in insertion order)."""
    atomic_write_text(path, yaml.safe_dump(jsonable(data), sort_keys=False, allow_unicode=True))


class JsonlWriter:
    """Appends one JSON document per line and flushes after each, so lines are never torn
    by a later write; opened in append mode so a resumed run extends the same file.

    Args:
        path: the file to append to (created with its parents if missing).
        fsync: also ``fsync`` after every line (durable against power loss, slower).
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._repair_torn_tail()
        self._handle: IO[str] | None = self.path.open("a", encoding="utf-8")

    def _repair_torn_tail(self) -> None:
        # A killed writer can leave a last line without its newline; appending
        # after it would glue the next record onto the torn one.
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")

    def write(self, record: BaseModel | Mapping[str, Any]) -> None:
        """Append ``record`` (a pydantic model or a mapping) as one line."""
        if self._handle is None:
            raise ValueError(f"{self.path} is closed; open a new JsonlWriter to append more")
        if isinstance(record, BaseModel):
            line = record.model_dump_json()
        else:
            line = json.dumps(jsonable(dict(record)), ensure_ascii=False)
        self._handle.write(line + "\n")
        self._handle.flush()
        if self._fsync:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close the file; further writes raise."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield each JSON object of a JSONL file, skipping unreadable lines with a warning.

    Bytes that are not UTF-8 are replaced (and warned about) rather than failing
    the whole file; a torn last line (a writer killed mid-line) is skipped.
    """
    file = Path(path)
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", "replace")
                warnings.warn(
                    f"{file}:{number}: bytes that are not UTF-8 were replaced",
                    RunFileWarning,
                    stacklevel=2,
                )
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                torn = not raw.endswith(b"\n")
                what = "torn last line (the writer was interrupted)" if torn else "not JSON"
                warnings.warn(
                    f"{file}:{number}: skipped, {what}: {err}", RunFileWarning, stacklevel=2
                )
                continue
            if not isinstance(value, dict):
                warnings.warn(
                    f"{file}:{number}: skipped, a JSON {type(value).__name__} is not a record",
                    RunFileWarning,
                    stacklevel=2,
                )
                continue
            yield value


def read_episodes(path: str | os.PathLike[str]) -> Iterator[Episode]:
    """Yield the valid :class:`Episode` records of an ``episodes.jsonl`` file."""
    for number, data in enumerate(iter_jsonl(path), start=1):
        try:
            yield Episode.model_validate(data)
        except ValidationError as err:
            warnings.warn(
                f"{path}: record {number} is not an episode, skipped: {err.errors()[0]['msg']}",
                RunFileWarning,
                stacklevel=2,
            )


class RunDir:
    """A run directory: the files one evaluation or training run writes.

    Args:
        path: the directory (created on first write).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def episodes_path(self) -> Path:
        return self.path / EPISODES_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def checkpoints_path(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    def clear(self) -> None:
        """Remove the files an earlier run wrote here (logs, summary, checkpoints, replay
        indexes, TensorBoard events), so a run that starts over does not mix its rows with
        the old ones. Files `rounds` did not write are left alone."""
        for path in (self.episodes_path, self.metrics_path, self.summary_path):
            path.unlink(missing_ok=True)
        for index in self.path.glob(".*.index.json"):
            index.unlink(missing_ok=True)
        for events in (self.path / "tensorboard").glob("events.out.tfevents.*"):
            events.unlink(missing_ok=True)
        if self.checkpoints_path.is_dir():
            for entry in self.checkpoints_path.iterdir():
                if entry.is_dir() and entry.name.startswith(("step-", ".tmp-step-")):
                    shutil.rmtree(entry, ignore_errors=True)

    def write_config(self, config: BaseModel | Mapping[str, Any]) -> None:
        """Atomically write ``config.yaml``."""
        data = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
        atomic_write_yaml(self.config_path, data)

    def read_config(self) -> dict[str, Any]:
        """The run's ``config.yaml`` as a dict (empty, with a warning, if missing or unreadable)."""
        if not self.config_path.exists():
            return {}
        try:
            data = read_yaml(self.config_path)
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            warnings.warn(
                f"{self.config_path}: unreadable, ignored: {err}", RunFileWarning, stacklevel=2
            )
            return {}
        return data if isinstance(data, dict) else {}

    def episode_writer(self, *, fsync: bool = False) -> JsonlWriter:
        """An appending writer for ``episodes.jsonl``."""
        return JsonlWriter(self.episodes_path, fsync=fsync)

    def metrics_writer(self, *, fsync: bool = False) -> JsonlWriter:
        """An appending writer for ``metrics.jsonl``."""
        return JsonlWriter(self.metrics_path, fsync=fsync)

    def episodes(self) -> Iterator[Episode]:
        """The episodes written so far (none if the file is missing)."""
        if self.episodes_path.exists():
            yield from read_episodes(self.episodes_path)

    def metrics(self) -> Iterator[dict[str, Any]]:
        """The rows of ``metrics.jsonl`` written so far (none if the file is missing)."""
        if self.metrics_path.exists():
            yield from iter_jsonl(self.metrics_path)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Atomically write ``summary.json``."""
        atomic_write_json(self.summary_path, summary)

    def read_summary(self) -> dict[str, Any]:
        """The run's ``summary.json`` (empty if missing or unreadable)."""
        if not self.summary_path.exists():
            return {}
        try:
            data = json.loads(self.summary_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            warnings.warn(
                f"{self.summary_path}: unreadable, ignored: {err}", RunFileWarning, stacklevel=2
            )
            return {}
        return data if isinstance(data, dict) else {}
