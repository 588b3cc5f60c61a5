"""Where cases come from: the built-in bank, the generator, or a DiagBench-layout file."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rounds.envs.clinic.cases import (
    BANK_SIZES,
    Case,
    CaseRecord,
    IdRange,
    bank_case,
    bank_ids,
    load_records,
    to_record,
)
from rounds.envs.clinic.knowledge import KnowledgeBase

if TYPE_CHECKING:
    from rounds.envs.clinic.matching import DiagnosisMatcher

#: How many ids each split of the unlimited generator exposes.
GENERATED_PER_SPLIT = 10_000_000


class CaseSource(ABC):
    """The task ids of each split and the case behind each id."""

    generated = False

    @abstractmethod
    def task_ids(self, split: str) -> Sequence[str]:
        """The ids of ``split``'s cases, in a fixed order."""

    @abstractmethod
    def get(self, task_id: str) -> tuple[CaseRecord, Case | None]:
        """The record of ``task_id`` and, for generated cases, the case behind it."""


class GeneratedCases(CaseSource):
    """Cases from the case model: the fixed bank (``rounds-<split>-NNNN``) or unlimited (``gen-<split>-NNNNNNN``)."""

    generated = True

    def __init__(self, kb: KnowledgeBase, *, unlimited: bool) -> None:
        self.kb = kb
        self.unlimited = unlimited

    def task_ids(self, split: str) -> Sequence[str]:
        if self.unlimited:
            return IdRange(f"gen-{split}-", GENERATED_PER_SPLIT, width=7)
        return bank_ids(split)

    def get(self, task_id: str) -> tuple[CaseRecord, Case | None]:
        prefix, _, rest = task_id.partition("-")
        split = rest.rsplit("-", 1)[0]
        if (
            prefix not in ("rounds", "gen")
            or split not in BANK_SIZES
            or not task_id.rsplit("-", 1)[-1].isdigit()
        ):
            raise ValueError(
                f"bad DiagGym task id {task_id!r}: expected 'rounds-<split>-NNNN' (the bank) or "
                "'gen-<split>-NNNNNNN' (generated), e.g. 'rounds-test-0042'"
            )
        case = bank_case(self.kb, task_id)
        return to_record(self.kb, case, split), case


class FileCases(CaseSource):
    """Cases from a DiagBench-layout JSON/JSONL file.

    Records with a ``split`` field form the splits; a file without one puts every
    record in every split.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records = {r.note_id: r for r in load_records(path)}
        if len(self.records) == 0:
            raise ValueError(f"{path}: no cases")
        self._splits: dict[str, list[str]] = {}
        for record in self.records.values():
            if record.split is not None:
                self._splits.setdefault(record.split, []).append(record.note_id)

    def task_ids(self, split: str) -> Sequence[str]:
        if not self._splits:
            return list(self.records)
        return self._splits.get(split, [])

    def get(self, task_id: str) -> tuple[CaseRecord, Case | None]:
        if task_id not in self.records:
            raise ValueError(f"{self.path} has no case with note_id {task_id!r}")
        return self.records[task_id], None


def make_source(kb: KnowledgeBase, cases: str) -> CaseSource:
    """``"bank"``, ``"generated"`` or the path of a DiagBench-layout file."""
    if cases == "bank":
        return GeneratedCases(kb, unlimited=False)
    if cases == "generated":
        return GeneratedCases(kb, unlimited=True)
    return FileCases(cases)


class RestrictedCases(CaseSource):
    """The cases of another source whose diagnosis is one of ``diagnoses`` (ids), in the
    source's order; each split is listed once, on first use."""

    def __init__(self, source: CaseSource, diagnoses: set[str], matcher: DiagnosisMatcher) -> None:
        self.source = source
        self.diagnoses = diagnoses
        self.matcher = matcher
        self.generated = source.generated
        self._ids: dict[str, list[str]] = {}

    def _keeps(self, task_id: str, record: CaseRecord | None = None) -> bool:
        """Whether ``task_id``'s case is one of the diagnoses (``record``: its record, when
        the caller has it already, so a file's record is read once)."""
        if isinstance(self.source, GeneratedCases):  # the case alone (cached), no record text
            return bank_case(self.source.kb, task_id).diagnosis in self.diagnoses
        if record is None:
            record, _ = self.source.get(task_id)
        return bool(set(self.matcher.resolve(record.final_diagnosis)) & self.diagnoses)

    def task_ids(self, split: str) -> Sequence[str]:
        if split not in self._ids:
            self._ids[split] = [i for i in self.source.task_ids(split) if self._keeps(i)]
        return self._ids[split]

    def get(self, task_id: str) -> tuple[CaseRecord, Case | None]:
        record, case = self.source.get(task_id)
        if not self._keeps(task_id, record):
            raise ValueError(
                f"case {task_id!r} is not one of this env's diagnoses ({', '.join(sorted(self.diagnoses))})"
            )
        return record, case


def restrict_source(
    source: CaseSource, diagnoses: set[str], matcher: DiagnosisMatcher
) -> CaseSource:
    """``source`` limited to cases of ``diagnoses``; the unlimited generator cannot be listed
    that way, so it is refused with what to use instead."""
    if isinstance(source, GeneratedCases) and source.unlimited:
        raise ValueError(
            "diagnoses= needs a listable case source: use cases='bank' (the default) or a case file"
        )
    return RestrictedCases(source, diagnoses, matcher)
