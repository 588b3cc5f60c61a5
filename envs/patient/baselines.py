"""Scripted doctors for PatientSim-v0: ``random``, ``ask-all`` and ``greedy``.

- ``random`` asks random history questions (any symptom or history item of the
  knowledge base, most of which the patient does not have), stops with
  probability 0.3 after each, then picks a random option (or names a random
  diagnosis): the chance floor.
- ``ask-all`` asks about every hidden fact in turn (up to the question limit),
  then answers what the value function ranks highest given what it learnt.
- ``greedy`` asks about the hidden fact with the highest expected Shapley gain,
  ``E_a[|φ_i(a)|] = Σ_a P(a | facts known) |φ_i(a)|``: fact ``i``'s Shapley value
  for candidate answer ``a`` as the target, in magnitude (how much the fact
  matters to the question if ``a`` is right), weighted by the doctor's current
  belief that ``a`` is right. Like every scripted policy it acts from the true
  state (it knows what each fact says), but it never uses which answer is right
  (weighing signed values instead only confirms the current favourite). It stops
  once the top answer has probability :data:`GREEDY_CONFIDENCE` or no fact is
  expected to gain :data:`GREEDY_MIN_GAIN`, then answers the top answer.

A consultation answer names the top diagnosis, its first reference exams, the
antibiotic decision where the diagnosis calls for one, and return precautions.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from rounds.envs.clinic.knowledge import Sex
from rounds.envs.patient.retrieval import STOPWORDS
from rounds.envs.patient.shapley import AdditiveValue, coalition_mask
from rounds.envs.patient.values import candidates

if TYPE_CHECKING:
    from rounds.envs.patient.env import PatientSimEnv
    from rounds.text_env import TextEnv

#: ``greedy`` answers once the top answer has this probability under the value function.
GREEDY_CONFIDENCE = 0.9
#: ``greedy`` answers once no remaining fact is expected to move the belief this much.
GREEDY_MIN_GAIN = 0.01
#: ``random`` stops asking with this probability after each question.
RANDOM_STOP = 0.3

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+(?:\.\d+)?")
_FACT_FILLER = frozenset(
    [
        "patient",
        "reports",
        "denies",
        "history",
        "has",
        "had",
        "have",
        "presents",
        "with",
        "the",
        "a",
        "an",
        "of",
        "no",
    ]
)


def _patient_env(env: TextEnv) -> PatientSimEnv:
    from rounds.envs.patient.env import PatientSimEnv

    if not isinstance(env, PatientSimEnv):
        raise TypeError(f"this policy is for PatientSim-v0, not {type(env).__name__}")
    return env


def question_for(env: PatientSimEnv, hidden_index: int) -> str:
    """A plain question about hidden fact ``hidden_index`` (its first synonym, or its words)."""
    case = env.case
    i = case.shown_count + hidden_index
    info = case.fact_info[i] if case.fact_info is not None else None
    if info is not None and info.terms:
        return f"Can you tell me about any {info.terms[0].lower()}?"
    words = [w for w in _WORD.findall(case.facts[i]) if w.lower() not in STOPWORDS | _FACT_FILLER]
    return f"Can you tell me about {' '.join(words[:8])}?"


def ranking(env: PatientSimEnv) -> tuple[list[str], np.ndarray] | None:
    """The answers (option letters, or diagnosis ids in a consultation) and their probabilities now."""
    value = env.value
    if not isinstance(value, AdditiveValue) or env.value_kind == "none":
        return None
    probs = value.probabilities(np.array([coalition_mask(sorted(env.acquired))]))[0]
    case = env.case
    if case.consultation:
        found = candidates(env.kb, case)
        if found is None:
            return None
        return found[0], probs
    return sorted(case.options), probs


def final_answer(env: PatientSimEnv, rng: np.random.Generator) -> str:
    """The top-ranked answer (a random one when the value function cannot rank)."""
    ranked = ranking(env)
    case = env.case
    if case.consultation:
        if ranked is None:
            disease = env.kb.diseases[int(rng.integers(len(env.kb.diseases)))].id
        else:
            disease = ranked[0][int(np.argmax(ranked[1]))]
        return consultation_answer(env, disease)
    if ranked is None:
        letters = sorted(case.options)
        return f"answer: {letters[int(rng.integers(len(letters)))]}"
    return f"answer: {ranked[0][int(np.argmax(ranked[1]))]}"


def consultation_answer(env: PatientSimEnv, disease_id: str) -> str:
    """An assessment and plan for ``disease_id`` from the knowledge base."""
    from rounds.envs.rubric.clinical import antibiotics_indicated

    kb = env.kb
    disease = kb.disease(disease_id)
    info = env.case.fact_info[0] if env.case.fact_info else None
    sex: Sex = "female" if info is not None and info.observations.get("sex") == "female" else "male"
    exams = [kb.exams[e].name for e in kb.workup(disease_id, sex)[:3]]
    plan = f"I recommend {', '.join(exams)}" if exams else "I recommend an examination"
    treatment = " and antibiotics" if antibiotics_indicated(disease_id) else ""
    return (
        f"answer: Assessment: the most likely diagnosis is {disease.name}. Plan: {plan}{treatment}. "
        "Please seek emergency care at once if your symptoms get worse."
    )


def _unasked(env: PatientSimEnv) -> list[int]:
    asked = set(env.asked)
    return [
        i
        for i in range(env.hidden_count)
        if i not in env.acquired and question_for(env, i) not in asked
    ]


def _out_of_questions(env: PatientSimEnv) -> bool:
    return env.questions >= env.max_questions or env.turn + 1 >= env.max_turns


def random_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """Random history questions, stopping with probability 0.3 each turn, then a random answer."""
    patient = _patient_env(env)
    if _out_of_questions(patient) or (patient.questions > 0 and rng.random() < RANDOM_STOP):
        case = patient.case
        if case.consultation:
            disease = patient.kb.diseases[int(rng.integers(len(patient.kb.diseases)))].id
            return consultation_answer(patient, disease)
        letters = sorted(case.options)
        return f"answer: {letters[int(rng.integers(len(letters)))]}"
    keys = list(patient.lay.entries)
    entry = patient.lay.entries[keys[int(rng.integers(len(keys)))]]
    return f"Have you had {entry.lay}?"


def ask_all_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """Ask about every hidden fact, then answer the value function's top answer."""
    patient = _patient_env(env)
    remaining = _unasked(patient)
    if remaining and not _out_of_questions(patient):
        return question_for(patient, remaining[0])
    return final_answer(patient, rng)


def greedy_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """Ask the most valuable hidden fact until confident or nothing valuable is left."""
    patient = _patient_env(env)
    ranked = ranking(patient)
    matrix = patient.candidate_shapley()
    if ranked is None or matrix is None:
        return ask_all_policy(env, rng)  # no belief to weigh by: ask in order
    confident = float(ranked[1].max()) >= GREEDY_CONFIDENCE
    expected = np.abs(matrix) @ ranked[1]
    remaining = [i for i in _unasked(patient) if expected[i] > GREEDY_MIN_GAIN]
    if remaining and not confident and not _out_of_questions(patient):
        best = max(remaining, key=lambda i: float(expected[i]))
        return question_for(patient, best)
    return final_answer(patient, rng)
