"""PatientSim cases generated from the clinic's knowledge base, reproducibly.

Each case is a patient sampled from the clinic's case model
(:func:`rounds.envs.clinic.cases.sample_case`, diagnoses cycled so every one
appears), told as atomic facts: who the patient is and why they came (shown),
then up to :data:`MAX_HIDDEN_FACTS` hidden facts (reported and denied symptoms,
history, abnormal vital signs, abnormal results of the diagnosis's reference
labs; normal vital signs and more denials when fewer than
:data:`MIN_HIDDEN_FACTS`). A multiple-choice case asks for the most likely diagnosis among the gold
one and the four most probable others given what is shown; a consultation case
carries a rubric (:func:`rounds.envs.rubric.clinical.consultation_rubric`).

Everything follows from the knowledge base and the case id, so the bank is the
same on every machine; :func:`write_bank` writes it as ProMed-layout JSONL.
Run ``python -m rounds.envs.patient.generate OUT.jsonl`` to export it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rounds.envs.clinic.cases import (
    Case,
    exam_result,
    format_value,
    sample_case,
    stable_seed,
    vital_signs,
)
from rounds.envs.clinic.knowledge import KnowledgeBase, NumericFeature, load_knowledge
from rounds.envs.clinic.posterior import Posterior
from rounds.envs.patient.cases import FactInfo, PatientCase, write_cases
from rounds.envs.patient.lay import LayTable, load_lay_table
from rounds.envs.patient.patient import forbidden_in
from rounds.envs.patient.shapley import exact_shapley
from rounds.envs.patient.values import knowledge_value
from rounds.envs.rubric.clinical import consultation_rubric

GENERATOR_VERSION = "v0"
MCQ_SIZES = {"train": 240, "validation": 60, "test": 60}
CONSULTATION_SIZES = {"train": 80, "validation": 20, "test": 20}
MAX_HIDDEN_FACTS = 12
MIN_HIDDEN_FACTS = 4
ATOMIC_QUESTION = "Which of the following is the most likely diagnosis?"
LETTERS = "ABCDE"
LEVEL_WORDS = {"very_low": "very low", "low": "low", "high": "high", "very_high": "very high"}


def _wording(lay: LayTable, key: str, text: str) -> tuple[str, list[str]]:
    """The lay wording of a presentation item (its clinical text where none is listed) and
    every term a question may use for it."""
    entry = lay.get(key)
    if entry is None:
        return text, [text]
    return entry.lay, [text, *entry.terms]


def _symptom_fact(kb: KnowledgeBase, lay: LayTable, name: str, state: str) -> tuple[str, FactInfo]:
    text = kb.presentation.symptoms[name].text
    key = f"symptoms.{name}"
    plain, terms = _wording(lay, key, text)
    if state == "present":
        return f"The patient reports {text}.", FactInfo(
            observations={key: state},
            says=f"Yes, I've had {text}.",
            says_plainly=f"Yes, I've had {plain}.",
            terms=terms,
        )
    return f"The patient denies {text}.", FactInfo(
        observations={key: state},
        says=f"No, I haven't had {text}.",
        says_plainly=f"No, I haven't had {plain}.",
        terms=terms,
    )


def _history_fact(kb: KnowledgeBase, lay: LayTable, name: str, state: str) -> tuple[str, FactInfo]:
    text = kb.presentation.history[name].text
    key = f"history.{name}"
    plain, terms = _wording(lay, key, text)
    if state == "present":
        return f"The patient has a history of {text}.", FactInfo(
            observations={key: state},
            says=f"Yes, I have a history of {text}.",
            says_plainly=f"Yes, I've got {plain}.",
            terms=terms,
        )
    return f"The patient has no history of {text}.", FactInfo(
        observations={key: state},
        says=f"No, I have no history of {text}.",
        says_plainly=f"No, I haven't got {plain}.",
        terms=terms,
    )


def _measured_fact(
    kb: KnowledgeBase,
    lay: LayTable,
    key: str,
    feature: NumericFeature,
    level: str,
    value: float,
    who: str,
) -> tuple[str, FactInfo]:
    entry = lay.get(key)
    plain = entry.lay if entry is not None else feature.name.lower()
    unit = feature.unit if feature.unit in ("%", "/min") else f" {feature.unit}"
    reading = f"{format_value(feature, value)}{unit}"
    name = feature.name.split(" (")[0]
    terms = [name, *(entry.terms if entry is not None else ())]
    # A derived value (e.g. oxygen saturation from the PaO2) tells the case model nothing directly.
    table = kb.tables.get(key)
    known = table is not None and level in table.level_index
    return f"{name} {reading}.", FactInfo(
        observations={key: level} if known else {},
        says=f"The {who} told me my {name[0].lower() + name[1:]} {_was(name)} {reading}.",
        says_plainly=f"The {who} said my {plain} {_was(plain)} {LEVEL_WORDS.get(level, 'normal')}.",
        terms=terms,
    )


def _was(name: str) -> str:
    """ "were" after a plural name ("platelets", "white blood cells"), else "was"."""
    last = name.split()[-1].lower() if name.split() else ""
    return "were" if last.endswith("s") and not last.endswith(("ss", "us", "is")) else "was"


def case_facts(
    kb: KnowledgeBase, lay: LayTable, case: Case, avoid: Sequence[str] = ()
) -> tuple[list[str], list[FactInfo]]:
    """A case's atomic facts: the shown presentation first, then the hidden facts (shuffled).

    A fact that would say one of the ``avoid`` names (the answer, an option: a past
    "migraine" in a migraine case) is left out, so the patient never has to say it.
    """
    p = kb.presentation
    complaint = p.complaints[case.complaint]
    person = "woman" if case.sex == "female" else "man"
    facts = [f"A {case.age}-year-old {person} presents with {complaint}."]
    infos = [
        FactInfo(
            observations={"complaint": case.complaint, "age_band": case.age_band, "sex": case.sex},
            says=f"I'm {case.age}, and I came in because of {complaint}.",
            says_plainly=f"I'm {case.age}, and I came in because of {complaint}.",
        )
    ]
    present = [
        s for s, v in case.symptoms.items() if v == "present" and p.symptoms[s].text != complaint
    ]
    denied = [
        s for s, v in case.symptoms.items() if v == "denied" and p.symptoms[s].text != complaint
    ]
    history = [h for h, v in case.history.items() if v == "present"]
    no_history = [h for h, v in case.history.items() if v == "denied"]
    ranked: list[tuple[str, FactInfo]] = [_symptom_fact(kb, lay, s, "present") for s in present]
    padding: list[tuple[str, FactInfo]] = []
    for name, (level, value) in vital_signs(kb, case).items():
        fact = _measured_fact(kb, lay, f"vitals.{name}", p.vitals[name], level, value, "nurse")
        (ranked if level != "normal" else padding).append(fact)
    labs = []
    for exam_id in kb.workup(case.diagnosis, case.sex):
        for result in exam_result(kb, case, exam_id):
            feature = kb.features.get(result.key)
            if (
                isinstance(feature, NumericFeature)
                and result.level != "normal"
                and result.value is not None
                and result.key in lay.entries
            ):
                labs.append(
                    _measured_fact(
                        kb, lay, result.key, feature, result.level, result.value, "doctor"
                    )
                )
    ranked += labs[:2]
    ranked += [_history_fact(kb, lay, h, "present") for h in history]
    ranked += [_symptom_fact(kb, lay, s, "denied") for s in denied[:3]]
    ranked += [_history_fact(kb, lay, h, "denied") for h in no_history[:2]]
    # A patient with little to tell still has a few facts to find: normal vital signs, more denials.
    padding += [_symptom_fact(kb, lay, s, "denied") for s in denied[3:]]
    padding += [_history_fact(kb, lay, h, "denied") for h in no_history[2:]]
    ranked += padding[: max(0, MIN_HIDDEN_FACTS - len(ranked))]
    ranked = [
        (text, info)
        for text, info in ranked
        if not any(forbidden_in(t, avoid) for t in (text, info.says or "", info.says_plainly or ""))
    ]
    hidden = ranked[:MAX_HIDDEN_FACTS]
    order = np.random.default_rng(
        stable_seed(GENERATOR_VERSION, case.note_id, "order")
    ).permutation(len(hidden))
    for i in order:
        facts.append(hidden[i][0])
        infos.append(hidden[i][1])
    return facts, infos


def _competitors(kb: KnowledgeBase, case: Case, k: int) -> list[str]:
    """The ``k`` most probable other diagnoses given who the patient is and why they came."""
    posterior = Posterior(kb)
    posterior.observe_all({"complaint": case.complaint, "age_band": case.age_band, "sex": case.sex})
    ranked = [d for d, _ in posterior.top(len(kb.diseases)) if d != case.diagnosis]
    return ranked[:k]


def _names(kb: KnowledgeBase, disease_ids: Sequence[str]) -> list[str]:
    """The names the patient must not say: each diagnosis's name (the first is the gold one,
    whose aliases count too)."""
    names = [kb.disease(d).name for d in disease_ids]
    if disease_ids:
        names += kb.disease(disease_ids[0]).aliases
    return names


def _disease_for(kb: KnowledgeBase, split: str, index: int, family: str) -> str:
    offset = stable_seed(GENERATOR_VERSION, family, split) % len(kb.diseases)
    return kb.diseases[(index + offset) % len(kb.diseases)].id


def mcq_case(kb: KnowledgeBase, lay: LayTable, split: str, index: int) -> PatientCase:
    """Multiple-choice case ``mcq-<split>-NNNN``."""
    case_id = f"mcq-{split}-{index:04d}"
    case = sample_case(kb, case_id, disease_id=_disease_for(kb, split, index, "mcq"))
    choices = [case.diagnosis, *_competitors(kb, case, len(LETTERS) - 1)]
    facts, infos = case_facts(kb, lay, case, _names(kb, choices))
    order = np.random.default_rng(stable_seed(GENERATOR_VERSION, case_id, "options")).permutation(
        len(choices)
    )
    option_ids = {LETTERS[slot]: choices[i] for slot, i in enumerate(order)}
    options = {letter: kb.disease(d).name for letter, d in option_ids.items()}
    gold = next(letter for letter, d in option_ids.items() if d == case.diagnosis)
    return PatientCase(
        id=case_id,
        split=split,
        question=f"{facts[0]} {ATOMIC_QUESTION}",
        options=options,
        answer_idx=gold,
        answer=options[gold],
        facts=facts,
        atomic_question=ATOMIC_QUESTION,
        shown=1,
        fact_info=infos,
        option_ids=option_ids,
        diagnosis_id=case.diagnosis,
    )


def consultation_case(kb: KnowledgeBase, lay: LayTable, split: str, index: int) -> PatientCase:
    """Open consultation ``consult-<split>-NNNN`` with its rubric."""
    case_id = f"consult-{split}-{index:04d}"
    case = sample_case(kb, case_id, disease_id=_disease_for(kb, split, index, "consult"))
    competitor = _competitors(kb, case, 1)
    facts, infos = case_facts(kb, lay, case, _names(kb, [case.diagnosis, *competitor]))
    draft = PatientCase(
        id=case_id,
        split=split,
        facts=facts,
        fact_info=infos,
        shown=1,
        rubrics=[],
        diagnosis_id=case.diagnosis,
    )
    phi = exact_shapley(knowledge_value(kb, draft)).phi
    key_findings = []
    for i in np.argsort(-phi, kind="stable")[:3]:
        info = infos[1 + int(i)]
        words = list(info.terms)
        for key in info.observations:
            entry = lay.get(key)
            if entry is not None:
                words.append(entry.lay)
        key_findings.append((f"the finding: {facts[1 + int(i)].rstrip('.')}", words))
    rubric = consultation_rubric(
        kb, case.diagnosis, case.sex, key_findings, competitor[0] if competitor else None
    )
    return draft.model_copy(
        update={
            "question": facts[0],
            "atomic_question": "Take a history, then give your assessment and plan.",
            "answer": kb.disease(case.diagnosis).name,
            "opening": infos[0].says_plainly,
            "rubrics": [c.model_dump(exclude_defaults=False) for c in rubric],
        }
    )


@functools.cache
def generated_bank() -> dict[str, PatientCase]:
    """Every generated case by id (built once per process, about a second)."""
    kb = load_knowledge()
    lay = load_lay_table()
    bank: dict[str, PatientCase] = {}
    for split, size in MCQ_SIZES.items():
        for i in range(size):
            case = mcq_case(kb, lay, split, i)
            bank[str(case.id)] = case
    for split, size in CONSULTATION_SIZES.items():
        for i in range(size):
            case = consultation_case(kb, lay, split, i)
            bank[str(case.id)] = case
    return bank


def write_bank(path: str | Path) -> int:
    """Write the generated bank as ProMed-layout JSONL; returns the number of cases."""
    cases = list(generated_bank().values())
    write_cases(path, cases)
    return len(cases)


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 2:
        sys.exit("usage: python -m rounds.envs.patient.generate OUT.jsonl")
    print(f"wrote {write_bank(sys.argv[1])} cases to {sys.argv[1]}")
