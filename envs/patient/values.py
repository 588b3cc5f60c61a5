"""The value functions of a case: ``knowledge``, ``lexical`` and ``policy`` (see :mod:`.shapley`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rounds.envs.clinic.knowledge import FindingFeature, KnowledgeBase
from rounds.envs.clinic.matching import shared_diagnosis_matcher
from rounds.envs.patient.cases import PatientCase
from rounds.envs.patient.lay import LayTable
from rounds.envs.patient.retrieval import BM25Index
from rounds.envs.patient.shapley import AdditiveValue, PolicyValue

#: Log-likelihoods are floored here, so a coalition's sum never meets 0 x -inf.
LOG_FLOOR = -50.0
#: Softmax temperature of the lexical value function (BM25 scores are a few units).
LEXICAL_TEMPERATURE = 1.0


def candidates(kb: KnowledgeBase, case: PatientCase) -> tuple[list[str], int] | None:
    """The candidate diagnoses (the options', or all for a consultation) and the gold's index."""
    if case.consultation:
        if case.diagnosis_id not in kb.disease_index:
            return None
        ids = [d.id for d in kb.diseases]
        return ids, ids.index(case.diagnosis_id)
    if not case.option_ids or set(case.option_ids) != set(case.options):
        return None
    letters = sorted(case.options)
    ids = [case.option_ids[letter] for letter in letters]
    if any(i not in kb.disease_index for i in ids):
        return None
    return ids, letters.index(case.answer_idx)


def supports_knowledge(kb: KnowledgeBase, case: PatientCase) -> bool:
    """Whether every fact says what it tells the case model and the candidates are known diagnoses."""
    return (
        case.fact_info is not None
        and candidates(kb, case) is not None
        and all(key in kb.tables for info in case.fact_info for key in info.observations)
    )


def _log_likelihood(kb: KnowledgeBase, rows: list[int], observations: dict[str, str]) -> np.ndarray:
    total = np.zeros(len(rows))
    for key, level in observations.items():
        table = kb.tables[key]
        total += table.log_probs[rows, table.level_index[level]]
    return np.maximum(total, LOG_FLOOR)


def knowledge_value(kb: KnowledgeBase, case: PatientCase) -> AdditiveValue:
    """The exact posterior of the gold diagnosis among the candidates (naive Bayes case model)."""
    found = candidates(kb, case)
    if found is None or case.fact_info is None:
        raise ValueError(
            f"case {case.id}: the knowledge value function needs generated cases (fact_info and "
            "option_ids naming knowledge-base diagnoses); use value_function='lexical' or 'policy'"
        )
    ids, gold = found
    rows = [kb.disease_index[i] for i in ids]
    shown = case.shown_count
    base = np.maximum(kb.log_prior[rows], LOG_FLOOR)
    for info in case.fact_info[:shown]:
        base = base + _log_likelihood(kb, rows, info.observations)
    hidden = [_log_likelihood(kb, rows, info.observations) for info in case.fact_info[shown:]]
    contributions = np.vstack(hidden) if hidden else np.zeros((0, len(rows)))
    return AdditiveValue(base, contributions, gold)


def option_document(kb: KnowledgeBase, lay: LayTable, option: str) -> str:
    """An option's text, expanded with its knowledge-base aliases and typical findings when it names one.

    Typical: a symptom, history item or exam finding the diagnosis has with probability 0.4 or more.
    """
    resolved = shared_diagnosis_matcher(kb).resolve(option)
    if len(resolved) != 1:
        return option
    disease = kb.disease(resolved[0])
    words = [option, disease.name, *disease.aliases]
    presentation = kb.presentation
    for key, probability in disease.findings.items():
        group, _, name = key.partition(".")
        if isinstance(probability, dict) or probability < 0.4:
            continue
        feature = kb.features.get(key)
        if isinstance(feature, FindingFeature):
            words.append(feature.finding)
        item = (
            getattr(presentation, group, {}).get(name) if group in ("symptoms", "history") else None
        )
        if item is not None:
            words.append(item.text)
            entry = lay.get(key)
            if entry is not None:
                words += [entry.lay, *entry.terms]
    return " ".join(words)


def fact_document(lay: LayTable, fact: str, terms: list[str] | None = None) -> str:
    """A fact's text with its synonyms (its own, and those of the keys it mentions)."""
    return " ".join([fact, *(terms or []), *lay.expansion(fact)])


def lexical_value(kb: KnowledgeBase, lay: LayTable, case: PatientCase) -> AdditiveValue:
    """The gold option's probability under a softmax over the options' BM25 relevance to the facts.

    Needs no model, so it is the default for a dropped-in ProMed file. Its limits: it
    sees words, not medicine. A fact earns value only by sharing (stemmed) words or
    synonyms with an option's text, its aliases, or, for an option that names a
    diagnosis of the knowledge base, that diagnosis's typical findings; a lab value
    without such words is worth nothing to it.
    """
    if case.consultation or not case.options:
        raise ValueError(f"case {case.id}: the lexical value function needs answer options")
    letters = sorted(case.options)
    index = BM25Index([option_document(kb, lay, case.options[letter]) for letter in letters])
    terms = [info.terms for info in case.fact_info] if case.fact_info else [[]] * len(case.facts)
    scores = np.vstack(
        [index.scores(fact_document(lay, f, t)) for f, t in zip(case.facts, terms, strict=True)]
    )
    shown = case.shown_count
    return AdditiveValue(
        scores[:shown].sum(axis=0),
        scores[shown:],
        letters.index(case.answer_idx),
        LEXICAL_TEMPERATURE,
    )


def answer_prompt(case: PatientCase, known_hidden: list[int]) -> list[dict[str, str]]:
    """The chat a model answers from: the shown facts and the known hidden ones, then the options."""
    shown = case.shown_count
    facts = case.facts[:shown] + [case.facts[shown + i] for i in sorted(known_hidden)]
    options = "\n".join(f"{k}. {v}" for k, v in sorted(case.options.items()))
    question = case.atomic_question or "Which of the following is the most likely diagnosis?"
    return [
        {
            "role": "system",
            "content": "You are a physician. Answer the question with one option letter, as 'answer: <letter>'.",
        },
        {"role": "user", "content": f"{' '.join(facts)}\n{question}\n{options}"},
    ]


def policy_value(case: PatientCase, model: Any, tokenizer: Any) -> PolicyValue:
    """The model's teacher-forced probability of ``answer: <gold letter>`` given the known facts."""
    if case.consultation or not case.options:
        raise ValueError(f"case {case.id}: the policy value function needs answer options")
    return PolicyValue(
        model,
        tokenizer,
        lambda known: answer_prompt(case, known),
        f"answer: {case.answer_idx}",
        len(case.facts) - case.shown_count,
    )
