"""World models: where an ordered exam's result comes from. One interface, three backends.

- ``knowledge``: drawn from the case model (generated cases only); the result
  carries feature levels, so the exact posterior can be updated.
- ``lookup``: the case record's ``key_pertinent_results_dict``; exams the
  record lacks have no result.
- ``llm``: a DiagGym-style generative world model prompted with the case summary
  and the results so far, stopping at ``<SEP>`` (see :mod:`.llm_world_model`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from rounds.envs.clinic.cases import (
    Case,
    CaseRecord,
    FeatureResult,
    exam_observations,
    exam_report,
    exam_result,
)
from rounds.envs.clinic.knowledge import KnowledgeBase

NOT_PERFORMED = "Not performed for this patient: no result is available."


@dataclass
class ExamRequest:
    """An exam the agent ordered: its catalogue id (if any) and the name reported back."""

    exam_id: str | None
    name: str
    record_name: str | None = None
    """The case record's own name for this exam, when the record has a result for it."""


@dataclass
class ExamOutcome:
    """An exam's result text, whether the exam had one, and (knowledge backend) its feature levels."""

    text: str
    available: bool = True
    results: list[FeatureResult] = field(default_factory=list)
    observations: dict[str, str] = field(default_factory=dict)
    """The latent levels the result reveals (knowledge backend), for the exact posterior."""


@dataclass
class ClinicCase:
    """What a world model may know about the current patient."""

    record: CaseRecord
    case: Case | None
    history: list[tuple[str, str]] = field(default_factory=list)
    """Exams done so far and their result texts, in order."""


class WorldModel(ABC):
    """Produces exam results for the current case."""

    name: str = ""

    @abstractmethod
    def examine(self, patient: ClinicCase, request: ExamRequest) -> ExamOutcome:
        """The result of ``request`` for ``patient``."""

    def close(self) -> None:
        """Release the backend's resources (model weights, HTTP clients)."""
        return None


class KnowledgeWorldModel(WorldModel):
    """Results drawn from the knowledge base's case model."""

    name = "knowledge"

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb

    def examine(self, patient: ClinicCase, request: ExamRequest) -> ExamOutcome:
        if patient.case is None:
            raise ValueError(
                "the knowledge world model needs generated cases (cases='bank' or 'generated')"
            )
        if request.exam_id is None:
            return ExamOutcome(NOT_PERFORMED, available=False)
        results = exam_result(self.kb, patient.case, request.exam_id)
        return ExamOutcome(
            exam_report(self.kb, patient.case, request.exam_id),
            results=results,
            observations=exam_observations(self.kb, patient.case, request.exam_id),
        )


class LookupWorldModel(WorldModel):
    """Results looked up in the case record (DiagBench's ``key_pertinent_results_dict``)."""

    name = "lookup"

    def examine(self, patient: ClinicCase, request: ExamRequest) -> ExamOutcome:
        if request.record_name is None:
            return ExamOutcome(NOT_PERFORMED, available=False)
        return ExamOutcome(patient.record.key_pertinent_results_dict[request.record_name])
