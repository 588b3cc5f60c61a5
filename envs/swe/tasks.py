"""Repository-repair tasks: the bundled set and a loader for SWE-bench-style records.

A task is a repository with a real bug, an issue text written as a user would
report it, hidden tests (``FAIL_TO_PASS`` must pass after the fix,
``PASS_TO_PASS`` must keep passing) and, for bundled tasks, the known fix that
the ``reference`` baseline applies. Hidden test files never enter the sandbox
before submission.

Bundled tasks are YAML files in ``tasks/`` beside this module (files inline).
SWE-bench records (``repo, instance_id, base_commit, problem_statement,
FAIL_TO_PASS, PASS_TO_PASS`` plus ``image_name``, optional ``test_patch`` and
``patch``) name a docker image that already holds the repository at
``base_commit`` in its work dir (``/testbed`` by default, as SWE-bench's images).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TASKS_DIR = Path(__file__).with_name("tasks")


@dataclass(frozen=True)
class Edit:
    """A string replacement in one file: the known fix, as the ``edit`` tool applies it."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class SWETask:
    """One repository-repair task."""

    instance_id: str
    repo: str
    problem_statement: str
    fail_to_pass: tuple[str, ...]
    pass_to_pass: tuple[str, ...]
    files: dict[str, str] | None = None
    """The repository (relative path -> text); None: the image holds it."""
    test_files: dict[str, str] = field(default_factory=dict)
    """Hidden test files, written into the work tree at submission."""
    test_patch: str = ""
    """Hidden tests as a patch (SWE-bench), applied with ``git apply`` at submission."""
    fix: tuple[Edit, ...] = ()
    patch: str = ""
    """The gold patch of a SWE-bench record (not used by the env, kept for reference)."""
    image: str | None = None
    workdir: str = "/work"
    base_commit: str | None = None
    bug_kind: str = ""

    @property
    def tests(self) -> tuple[str, ...]:
        return self.fail_to_pass + self.pass_to_pass

    def repo_bytes(self) -> dict[str, bytes] | None:
        """The repository files as bytes, for a sandbox's work tree."""
        if self.files is None:
            return None
        return {name: text.encode() for name, text in self.files.items()}


def _task_from_yaml(data: dict[str, Any], source: str) -> SWETask:
    try:
        return SWETask(
            instance_id=str(data["instance_id"]),
            repo=str(data["repo"]),
            problem_statement=str(data["problem_statement"]).strip(),
            fail_to_pass=tuple(data["FAIL_TO_PASS"]),
            pass_to_pass=tuple(data.get("PASS_TO_PASS") or ()),
            files={str(k): str(v) for k, v in data["files"].items()},
            test_files={str(k): str(v) for k, v in data["test_files"].items()},
            fix=tuple(Edit(e["path"], e["old"], e["new"]) for e in data["fix"]),
            bug_kind=str(data.get("bug_kind", "")),
        )
    except (KeyError, TypeError) as err:
        raise ValueError(f"{source}: not a valid task ({err!r})") from err


@cache
def bundled_tasks() -> tuple[SWETask, ...]:
    """The bundled tasks, ordered by file name."""
    tasks = []
    for path in sorted(TASKS_DIR.glob("*.yaml")):
        tasks.append(_task_from_yaml(yaml.safe_load(path.read_text()), str(path)))
    ids = [t.instance_id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError("bundled tasks have duplicate instance ids")
    return tuple(tasks)


def _id_list(value: Any, field_name: str, source: str) -> tuple[str, ...]:
    """SWE-bench stores test lists as JSON strings; accept lists too."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{source}: {field_name} must be a list of test ids")
    return tuple(value)


def load_swebench(path: str | Path, *, workdir: str = "/testbed") -> tuple[SWETask, ...]:
    """SWE-bench-style records from a JSON list or JSONL file.

    Each record needs ``repo``, ``instance_id``, ``base_commit``, ``problem_statement``,
    ``FAIL_TO_PASS``, ``PASS_TO_PASS`` and an image (``image_name`` or ``image``);
    ``test_patch`` (applied at submission) and ``patch`` are optional.

    Raises:
        ValueError: a record misses a field (the message names the record and field).
        FileNotFoundError: no such file.
    """
    source = Path(path)
    text = source.read_text()
    stripped = text.lstrip()
    if stripped.startswith("["):
        records = json.loads(text)
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    tasks = []
    for number, record in enumerate(records, 1):
        where = f"{source} record {number}"
        missing = [
            k
            for k in ("repo", "instance_id", "base_commit", "problem_statement", "FAIL_TO_PASS")
            if k not in record
        ]
        image = record.get("image_name") or record.get("image")
        if missing or not image:
            missing += [] if image else ["image_name"]
            raise ValueError(f"{where}: missing {', '.join(missing)}")
        tasks.append(
            SWETask(
                instance_id=str(record["instance_id"]),
                repo=str(record["repo"]),
                problem_statement=str(record["problem_statement"]).strip(),
                fail_to_pass=_id_list(record["FAIL_TO_PASS"], "FAIL_TO_PASS", where),
                pass_to_pass=_id_list(record.get("PASS_TO_PASS", []), "PASS_TO_PASS", where),
                test_patch=str(record.get("test_patch") or ""),
                patch=str(record.get("patch") or ""),
                image=str(image),
                workdir=str(record.get("workdir") or workdir),
                base_commit=str(record["base_commit"]),
            )
        )
    return tuple(tasks)
