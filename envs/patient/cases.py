"""PatientSim cases in ProMed's JSONL layout, and how they are read and written.

A case is one line: ``question`` (the stem as first shown), ``options``
(``{"A": ..., ...}``), ``answer_idx`` (the gold letter), ``facts`` (atomic
facts, the case's whole truth), ``atomic_question`` (the question without the
case, e.g. "Which of the following is the most likely diagnosis?"). Optional
fields add what a dropped-in ProMed/MediQ file lacks: ``id``, ``split``,
``answer`` (the gold text), ``shown`` (how many leading facts the doctor sees
at the start; default half, as ProMed), ``fact_info`` (per fact: the
knowledge-base observations it carries, its plain phrase and synonyms),
``option_ids`` (the knowledge-base diagnosis behind each option) and, for
open consultations, ``rubrics`` (HealthBench criteria), ``opening`` (the
patient's first words) and ``diagnosis_id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rounds.storage import atomic_write_text


class FactInfo(BaseModel):
    """What the generator knows about one fact (absent for a dropped-in file)."""

    model_config = ConfigDict(extra="allow")

    observations: dict[str, str] = Field(default_factory=dict)
    """Knowledge-base feature key -> observed level (what the fact tells the case model)."""
    says: str | None = None
    """The patient's words, high health literacy."""
    says_plainly: str | None = None
    """The patient's words, low health literacy."""
    terms: list[str] = Field(default_factory=list)
    """Extra words a question about this fact may use."""


class PatientCase(BaseModel):
    """One case, in ProMed's layout plus the optional fields above (unknown fields are kept)."""

    model_config = ConfigDict(extra="allow")

    question: str = ""
    options: dict[str, str] = Field(default_factory=dict)
    answer_idx: str = ""
    facts: list[str]
    atomic_question: str = ""
    id: str | None = None
    split: str | None = None
    answer: str | None = None
    shown: int | None = None
    fact_info: list[FactInfo] | None = None
    option_ids: dict[str, str] | None = None
    rubrics: list[dict[str, Any]] | None = None
    opening: str | None = None
    diagnosis_id: str | None = None

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_dict(cls, value: Any) -> Any:
        # MedQA variants store options as a list of {"key": "A", "value": ...} or of texts.
        if isinstance(value, list):
            if all(isinstance(v, dict) and "key" in v and "value" in v for v in value):
                return {str(v["key"]): str(v["value"]) for v in value}
            return {chr(ord("A") + i): str(v) for i, v in enumerate(value)}
        return value

    @field_validator("facts", mode="before")
    @classmethod
    def _facts_as_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        return value

    @model_validator(mode="after")
    def _check(self) -> PatientCase:
        self.facts = [" ".join(f.split()) for f in self.facts if f and f.strip()]
        if not self.facts:
            raise ValueError("a case needs at least one fact")
        if self.rubrics is None:
            if not self.options:
                raise ValueError(
                    "a multiple-choice case needs options (or rubrics, for a consultation)"
                )
            if self.answer_idx not in self.options:
                raise ValueError(
                    f"answer_idx {self.answer_idx!r} is not one of the options {sorted(self.options)}"
                )
        if self.fact_info is not None and len(self.fact_info) != len(self.facts):
            raise ValueError(f"{len(self.fact_info)} fact_info entries for {len(self.facts)} facts")
        if self.shown is not None and not 0 <= self.shown <= len(self.facts):
            raise ValueError(f"shown={self.shown} is outside 0..{len(self.facts)}")
        if self.answer is None and self.options:
            self.answer = self.options[self.answer_idx]
        return self

    @property
    def consultation(self) -> bool:
        """An open consultation (graded by its rubric), not a multiple-choice question."""
        return self.rubrics is not None

    @property
    def shown_count(self) -> int:
        """How many leading facts the doctor sees at the start (ProMed: half, at least one)."""
        if self.shown is not None:
            return self.shown
        return max(1, len(self.facts) // 2)


def load_cases(path: str | Path) -> list[PatientCase]:
    """Read a ProMed-layout JSONL file (or a JSON list); ids default to ``<file stem>-<line>``.

    Raises:
        ValueError: the file is missing or a line is not a case; the message names the line.
    """
    file = Path(path)
    if not file.exists():
        raise ValueError(f"case file {file} does not exist")
    text = file.read_text(encoding="utf-8", errors="replace")
    raw: list[tuple[int, Any]] = []
    if file.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{file}: not JSON ({err}); use .jsonl for one case per line") from err
        items = data if isinstance(data, list) else data.get("cases", [])
        raw = list(enumerate(items, start=1))
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    raw.append((number, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{file}:{number}: not JSON ({err})") from err
    cases = []
    seen: set[str] = set()
    for number, item in raw:
        try:
            case = PatientCase.model_validate(item)
        except ValidationError as err:
            problem = err.errors()[0]
            where = ".".join(str(x) for x in problem["loc"]) or "case"
            raise ValueError(f"{file}:{number}: {where}: {problem['msg']}") from err
        if case.id is None:
            case.id = f"{file.stem}-{number:05d}"
        if case.id in seen:
            raise ValueError(f"{file}:{number}: duplicate case id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise ValueError(f"{file}: no cases found")
    return cases


def dump_cases(cases: Iterable[PatientCase]) -> str:
    """Cases as JSONL text (one case per line, fields in a fixed order, unset fields left out)."""
    return "".join(
        json.dumps(case.model_dump(mode="json", exclude_none=True), ensure_ascii=False) + "\n"
        for case in cases
    )


def write_cases(path: str | Path, cases: Iterable[PatientCase]) -> None:
    """Write cases as a ProMed-layout JSONL file, atomically."""
    atomic_write_text(Path(path), dump_cases(cases))
