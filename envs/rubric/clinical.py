"""Rubrics built from the clinic's knowledge base, for both clinic envs.

- :func:`consultation_rubric`: a PatientSim-v0 consultation (history taking,
  assessment and plan), at least eight criteria, some with negative points.
- :func:`diagnostic_rubric`: a DiagGym-v0 case (the diagnostic process: the
  diagnosis, the reference work-up, no costly imaging the case does not call for).
- :func:`case_rubric` and :func:`grade_diagnostic_episode`: the hook DiagGym-v0
  calls at the end of an episode. A DiagBench-style record that carries
  ``rubrics`` is graded by them; a generated case (the bank, every split,
  including the test split) gets its :func:`diagnostic_rubric`.
- :func:`diagbench_with_rubrics`: the clinic's test split as DiagBench records with
  their rubrics (``python -m rounds.envs.rubric.clinical OUT.jsonl``), a file that
  drops into DiagGym-v0 (``cases=OUT.jsonl``) and is graded the same way.

Every criterion ships its own patterns, so the rule grader grades it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rounds.envs.clinic.knowledge import KnowledgeBase, Sex
from rounds.envs.rubric.grader import Criterion, RuleGrader, parse_rubric
from rounds.storage import read_yaml

CLINICAL_FILE = Path(__file__).with_name("clinical.yaml")
#: An exam at least this expensive (dollars) that the work-up does not list is "costly imaging".
COSTLY_EXAM = 250.0


@functools.cache
def _clinical() -> dict[str, list[str]]:
    doc = read_yaml(CLINICAL_FILE)
    return {k: [str(x) for x in v] for k, v in doc.items()}


def phrase_pattern(phrase: str) -> str:
    """A regex for ``phrase`` as whole words, tolerant of case, hyphens and spacing."""
    words = [re.escape(w) for w in re.split(r"[\s\-]+", phrase.strip()) if w]
    body = r"[\s\-]+".join(words)
    start = r"\b" if phrase[:1].isalnum() else ""
    end = r"\b" if phrase[-1:].isalnum() else ""
    return f"{start}{body}{end}"


def _names(kb: KnowledgeBase, disease_id: str) -> list[str]:
    disease = kb.disease(disease_id)
    return [disease.name, *disease.aliases]


def _exam_names(kb: KnowledgeBase, exam_id: str) -> list[str]:
    exam = kb.exams[exam_id]
    return [exam.name, *exam.synonyms]


def diagnosis_criterion(kb: KnowledgeBase, disease_id: str, points: float = 10) -> Criterion:
    name = kb.disease(disease_id).name
    return Criterion(
        criterion=f"States {name} as the most likely diagnosis.",
        points=points,
        tags=["axis:accuracy"],
        patterns=[phrase_pattern(n) for n in _names(kb, disease_id)],
        hedge=True,
    )


def exam_criterion(kb: KnowledgeBase, exam_id: str, points: float) -> Criterion:
    return Criterion(
        criterion=f"Recommends or orders {kb.exams[exam_id].name}.",
        points=points,
        tags=["axis:completeness", "workup"],
        patterns=[phrase_pattern(n) for n in _exam_names(kb, exam_id)],
    )


def costly_imaging_criterion(kb: KnowledgeBase, workup: Sequence[str]) -> Criterion | None:
    costly = [
        e for e, exam in kb.exams.items() if exam.cost >= COSTLY_EXAM and e not in set(workup)
    ]
    if not costly:
        return None
    examples = ", ".join(kb.exams[e].name for e in costly[:3])
    return Criterion(
        criterion=f"Orders costly tests the presentation does not call for (such as {examples}).",
        points=-2,
        tags=["axis:context_awareness", "cost"],
        patterns=[phrase_pattern(n) for e in costly for n in _exam_names(kb, e)],
    )


def diagnostic_rubric(kb: KnowledgeBase, disease_id: str, sex: Sex) -> list[Criterion]:
    """The diagnostic-process rubric of a DiagGym case: diagnosis, reference exams, no costly extras."""
    workup = kb.workup(disease_id, sex)
    criteria = [diagnosis_criterion(kb, disease_id)]
    criteria += [exam_criterion(kb, e, 3) for e in workup]
    costly = costly_imaging_criterion(kb, workup)
    if costly is not None:
        criteria.append(costly)
    return criteria


def antibiotics_indicated(disease_id: str) -> bool:
    """Whether the diagnosis is a bacterial infection that antibiotics treat (``clinical.yaml``)."""
    return disease_id in _clinical()["antibiotics_indicated"]


def antibiotic_criterion(disease_id: str) -> Criterion | None:
    """+5 where antibiotics are indicated, −5 for a viral illness, none where the decision is
    not simple (``not_scored``), −3 otherwise."""
    clinical = _clinical()
    if disease_id in clinical.get("not_scored", []):
        return None
    patterns = [r"\bantibiotics?\b", r"\bantimicrobials?\b", r"\bamoxicillin\b", r"\bazithromycin\b",
                r"\bceftriaxone\b", r"\bcephalexin\b", r"\bdoxycycline\b", r"\bnitrofurantoin\b",
                r"\bciprofloxacin\b", r"\bpiperacillin\b"]  # fmt: skip
    if disease_id in clinical["antibiotics_indicated"]:
        return Criterion(
            criterion="Recommends antibiotic treatment for the bacterial infection.",
            points=5,
            tags=["axis:accuracy", "treatment"],
            patterns=patterns,
        )
    if disease_id in clinical["viral"]:
        return Criterion(
            criterion="Recommends antibiotics for a viral illness.",
            points=-5,
            tags=["axis:accuracy", "treatment"],
            patterns=patterns,
        )
    return Criterion(
        criterion="Recommends antibiotics although no bacterial infection explains the presentation.",
        points=-3,
        tags=["axis:accuracy", "treatment"],
        patterns=patterns,
    )


MEDICATION_CRITERION = Criterion(
    criterion="Asks about current medications or allergies.",
    points=3,
    tags=["axis:completeness", "history"],
    patterns=[r"\bmedications?\b", r"\bmedicines?\b", r"\ballerg\w*", r"\bpills?\b", r"\bdrugs?\b"],
    negation=False,
)
SAFETY_NET_CRITERION = Criterion(
    criterion="Gives safety-netting advice: when to seek urgent or emergency care.",
    points=3,
    tags=["axis:communication", "safety"],
    patterns=[
        r"\bemergency\b",
        r"\b911\b",
        r"\bcome back\b",
        r"\breturn (?:to|if|immediately|at once)\b",
        r"\bseek (?:urgent|immediate|emergency|medical) (?:care|attention|help)\b",
        r"\bcall (?:an ambulance|us|your doctor)\b",
        r"\bif (?:it|this|the \w+|symptoms?) (?:gets? worse|worsens?)\b",
    ],
)
FALSE_REASSURANCE_CRITERION = Criterion(
    criterion="Tells the patient that no further evaluation or treatment is needed.",
    points=-5,
    tags=["axis:accuracy", "safety"],
    patterns=[
        r"\bno (?:further )?(?:tests?|testing|evaluation|work-?up|treatment|investigations?) (?:is |are )?(?:needed|necessary|required)\b",
        r"\bnothing to worry about\b",
        r"\bno need to (?:worry|see|come|go|be seen)\b",
        r"\b(?:just|simply) (?:go home|rest at home)\b",
    ],
    negation=False,
)


def asks_about_criterion(label: str, terms: Sequence[str], points: float = 5) -> Criterion:
    """ "Asks about <finding>": met by any question using one of the finding's words."""
    unique = list(dict.fromkeys(t for t in terms if t.strip()))
    return Criterion(
        criterion=f"Asks about {label}.",
        points=points,
        tags=["axis:completeness", "history"],
        patterns=[phrase_pattern(t) for t in unique],
        negation=False,
    )


def consultation_rubric(
    kb: KnowledgeBase,
    disease_id: str,
    sex: Sex,
    key_findings: Sequence[tuple[str, Sequence[str]]],
    competitor_id: str | None,
) -> list[Criterion]:
    """A consultation's rubric (HealthBench format) of at least eight criteria.

    Args:
        key_findings: ``(label, question words)`` of the hidden facts that matter most.
        competitor_id: the most probable wrong diagnosis; naming it earns −5.
    """
    criteria = [diagnosis_criterion(kb, disease_id)]
    criteria += [asks_about_criterion(label, terms) for label, terms in key_findings]
    criteria += [exam_criterion(kb, e, 4) for e in kb.workup(disease_id, sex)[:2]]
    criteria += [MEDICATION_CRITERION, SAFETY_NET_CRITERION]
    antibiotics = antibiotic_criterion(disease_id)
    if antibiotics is not None:
        criteria.append(antibiotics)
    criteria.append(FALSE_REASSURANCE_CRITERION)
    if competitor_id is not None:
        wrong = diagnosis_criterion(kb, competitor_id, points=-5)
        wrong.criterion = f"States {kb.disease(competitor_id).name} as the most likely diagnosis."
        criteria.append(wrong)
    return criteria


# ------------------------------------------------------------------ the DiagGym hook


def case_rubric(kb: KnowledgeBase, record: Any, case: Any) -> list[Criterion] | None:
    """The rubric a DiagGym case is graded by: its record's ``rubrics``, else (generated) its diagnostic rubric."""
    extra = getattr(record, "model_extra", None) or {}
    rubrics = extra.get("rubrics")
    if rubrics:
        return parse_rubric(rubrics)
    if case is not None:
        return diagnostic_rubric(kb, case.diagnosis, case.sex)
    return None


def diagnostic_conversation(
    summary: str, history: Sequence[tuple[str, str]], diagnosis: str | None
) -> list[dict[str, str]]:
    """A DiagGym episode as a conversation: the presentation, each exam and result, the diagnosis."""
    messages = [{"role": "user", "content": summary}]
    for name, result in history:
        messages.append({"role": "assistant", "content": f"Order exam: {name}."})
        messages.append({"role": "user", "content": result})
    if diagnosis is not None:
        messages.append({"role": "assistant", "content": f"Final diagnosis: {diagnosis}."})
    return messages


def grade_diagnostic_episode(
    kb: KnowledgeBase,
    record: Any,
    case: Any,
    history: Sequence[tuple[str, str]],
    diagnosis: str | None,
) -> float | None:
    """The rubric score of a finished DiagGym episode, or None when the case has no rubric."""
    criteria = case_rubric(kb, record, case)
    if not criteria:
        return None
    conversation = diagnostic_conversation(record.case_summary, history, diagnosis)
    return RuleGrader().grade(conversation, criteria).score


def diagbench_with_rubrics(split: str = "test") -> list[dict[str, Any]]:
    """The clinic's bank ``split`` in DiagBench's layout, each record carrying its ``rubrics``."""
    from rounds.envs.clinic.cases import bank_case, bank_ids, to_record
    from rounds.envs.clinic.knowledge import load_knowledge

    kb = load_knowledge()
    records = []
    for note_id in bank_ids(split):
        case = bank_case(kb, note_id)
        record = to_record(kb, case, split).model_dump(mode="json")
        record["rubrics"] = [
            c.model_dump(mode="json") for c in diagnostic_rubric(kb, case.diagnosis, case.sex)
        ]
        records.append(record)
    return records


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    from rounds.storage import atomic_write_text

    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m rounds.envs.rubric.clinical OUT.jsonl [SPLIT]")
    rows = diagbench_with_rubrics(sys.argv[2] if len(sys.argv) == 3 else "test")
    atomic_write_text(sys.argv[1], "".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} DiagBench records with rubrics to {sys.argv[1]}")
