"""Run directories and their files: append-only JSONL and atomically replaced documents.

A run directory (``DESIGN.md``) holds ``config.yaml``, ``episodes.jsonl``,
``metrics.jsonl``, ``summary.json`` and ``checkpoints/``. Writers append whole
lines and flush, so a crash loses at most the line being written; readers skip
a torn or corrupt line with a warning instead of failing, so a run that is still
being written (or was killed) can always be read. A writer that resumes a file
moves a torn last line to ``<file>.torn``, so the file is whole again.

Every JSONL line is decoded by :func:`decode_line` (the readers here and the
replay's index alike), which reports what was wrong as data (:class:`LineProblem`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Generic, TypeVar, overload

import yaml
from pydantic import BaseModel, ValidationError

from rounds.records import Episode, jsonable

CONFIG_FILE = "config.yaml"
EPISODES_FILE = "episodes.jsonl"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINTS_DIR = "checkpoints"
#: Suffix of the file a torn last line is moved to when a writer resumes a JSONL file.
TORN_SUFFIX = ".torn"

RecordT = TypeVar("RecordT")
ModelT = TypeVar("ModelT", bound=BaseModel)


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file safely (with libyaml's C loader when available: 5-10x faster)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_YAML_LOADER)


class RunFileWarning(UserWarning):
    """A line of a run file could not be read and was skipped."""


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` so readers see either the old file or the whole new one."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the whole new one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a run's files follow the umask
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
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


def _last_line_start(handle: IO[bytes], size: int) -> int:
    """The offset just after the last newline of a file (0 if it has none), read backwards."""
    end = size
    while end > 0:
        start = max(0, end - 65_536)
        handle.seek(start)
        found = handle.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


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
        """Resume cleanly after a writer was killed mid-line.

        A last line without its newline is a record cut short. Appending after it
        would glue the next record onto it, and leaving it would keep a corrupt line
        in the file forever; so a fragment that is not a whole JSON object is moved
        to ``<file>.torn`` (appended, for inspection), cut off the file, and warned
        about. A whole record that only lacks its newline gets the newline.
        """
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) == b"\n":
                return
            start = _last_line_start(handle, size)
            handle.seek(start)
            fragment = handle.read()
            if decode_line(fragment + b"\n", 0).value is not None:
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
                return
            torn = self.path.with_name(self.path.name + TORN_SUFFIX)
            with torn.open("ab") as keep:
                keep.write(fragment + b"\n")
                keep.flush()
                os.fsync(keep.fileno())
            handle.truncate(start)
        warnings.warn(
            f"{self.path}: the last line was torn (a writer was interrupted); its "
            f"{len(fragment)} bytes were moved to {torn} and the file resumes after the "
            "last whole record",
            RunFileWarning,
            stacklevel=4,
        )

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


@dataclass(frozen=True)
class LineProblem:
    """Something wrong with one line of a JSONL file, as data: the UI lists these, readers warn."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class JsonlLine(Generic[RecordT]):
    """One line of a JSONL file: where its bytes are, what it decoded to (``None`` when
    skipped or blank) and what was wrong with it."""

    number: int
    offset: int
    length: int
    value: RecordT | None
    problems: tuple[LineProblem, ...] = ()


def _validation_reason(err: ValidationError, model: type[BaseModel]) -> str:
    errors = err.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return f"skipped, not JSON ({first['msg']})"
    if first["type"] == "model_type":
        kind = type(first.get("input")).__name__
        return f"skipped, a JSON {kind} is not {_record_name(model)}"
    details = "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'record'}: {e['msg']}" for e in errors[:2]
    )
    more = f" (and {len(errors) - 2} more)" if len(errors) > 2 else ""
    return f"skipped, not {_record_name(model)} ({details}{more})"


def _record_name(model: type[BaseModel] | None) -> str:
    if model is None:
        return "a record"
    name = model.__name__.lower()
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} record"


@overload
def decode_line(
    raw: bytes, number: int, model: None = None, *, offset: int = 0
) -> JsonlLine[dict[str, Any]]: ...
@overload
def decode_line(
    raw: bytes, number: int, model: type[ModelT], *, offset: int = 0
) -> JsonlLine[ModelT]: ...
def decode_line(
    raw: bytes, number: int, model: type[BaseModel] | None = None, *, offset: int = 0
) -> JsonlLine[Any]:
    """Decode one line (its bytes, newline included) into a JSON object, or a validated
    ``model`` (e.g. :class:`~rounds.records.Episode`), reporting every problem as data.

    This is the one place run files are decoded: the readers below and the replay's
    index both call it, so a line one accepts the other accepts too. Bytes that are
    not UTF-8 are replaced (a problem, the record is kept); a line that is not JSON,
    not an object or not a valid ``model`` is skipped (``value`` is ``None``); a last
    line without its newline that does not decode is reported as torn.
    """
    problems: list[LineProblem] = []
    length = len(raw)
    if not raw.strip():
        return JsonlLine(number, offset, length, None)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        problems.append(LineProblem(number, "bytes that are not UTF-8 were replaced"))
    torn = not raw.endswith(b"\n")
    value: Any = None
    if model is not None:
        try:
            value = model.model_validate_json(text)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            if torn and first["type"] == "json_invalid":
                reason = f"skipped, torn last line (the writer was interrupted): {first['msg']}"
            else:
                reason = _validation_reason(err, model)
            problems.append(LineProblem(number, reason))
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            what = "torn last line (the writer was interrupted)" if torn else "not JSON"
            problems.append(LineProblem(number, f"skipped, {what}: {err}"))
        else:
            if isinstance(data, dict):
                value = data
            else:
                problems.append(
                    LineProblem(
                        number, f"skipped, a JSON {type(data).__name__} is not {_record_name(None)}"
                    )
                )
    return JsonlLine(number, offset, length, value, tuple(problems))


@overload
def scan_jsonl(
    path: str | os.PathLike[str],
    *,
    model: None = None,
    offset: int = 0,
    first_line: int = 1,
    complete_only: bool = False,
) -> Iterator[JsonlLine[dict[str, Any]]]: ...
@overload
def scan_jsonl(
    path: str | os.PathLike[str],
    *,
    model: type[ModelT],
    offset: int = 0,
    first_line: int = 1,
    complete_only: bool = False,
) -> Iterator[JsonlLine[ModelT]]: ...
def scan_jsonl(
    path: str | os.PathLike[str],
    *,
    model: type[BaseModel] | None = None,
    offset: int = 0,
    first_line: int = 1,
    complete_only: bool = False,
) -> Iterator[JsonlLine[Any]]:
    """Every line of a JSONL file from byte ``offset`` (line number ``first_line``), decoded
    by :func:`decode_line`, blank lines included (``value`` ``None``, no problem).

    ``complete_only`` stops before a last line without its newline: a file still being
    written (the replay's index waits for the rest); otherwise that line is decoded too.
    """
    with Path(path).open("rb") as handle:
        handle.seek(offset)
        number = first_line
        while True:
            raw = handle.readline()
            if not raw or (complete_only and not raw.endswith(b"\n")):
                return
            yield decode_line(raw, number, model, offset=offset)
            offset += len(raw)
            number += 1


def _warn_problems(path: str | os.PathLike[str], problems: tuple[LineProblem, ...]) -> None:
    for problem in problems:
        warnings.warn(f"{path}:{problem.line}: {problem.reason}", RunFileWarning, stacklevel=3)


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield each JSON object of a JSONL file, skipping unreadable lines with a warning.

    Bytes that are not UTF-8 are replaced (and warned about) rather than failing
    the whole file; a torn last line (a writer killed mid-line) is skipped.
    """
    for line in scan_jsonl(path):
        _warn_problems(path, line.problems)
        if line.value is not None:
            yield line.value


def read_episodes(path: str | os.PathLike[str]) -> Iterator[Episode]:
    """Yield the valid :class:`Episode` records of an ``episodes.jsonl`` file (others are
    skipped with a warning that names the line and the reason)."""
    for line in scan_jsonl(path, model=Episode):
        _warn_problems(path, line.problems)
        if line.value is not None:
            yield line.value


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
        """Remove the files an earlier run wrote here (logs and their torn fragments, summary,
        checkpoints, replay indexes, TensorBoard events), so a run that starts over does not
        mix its rows with the old ones. Files `rounds` did not write are left alone."""
        for path in (self.episodes_path, self.metrics_path, self.summary_path):
            path.unlink(missing_ok=True)
        for log in (self.episodes_path, self.metrics_path):
            log.with_name(log.name + TORN_SUFFIX).unlink(missing_ok=True)
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
