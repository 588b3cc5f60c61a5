"""Scripted agents for DiagGym-v0: ``reference``, ``random`` and ``bayes``.

- ``reference`` orders the case's reference exams, then names the true
  diagnosis: an upper bound on accuracy and exam F1.
- ``random`` orders random catalogue exams and stops with probability 0.3 per
  turn, then names a random diagnosis: the chance floor.
- ``bayes`` chooses the exam with the largest expected information gain about
  the diagnosis under the exact posterior, and names the most probable
  diagnosis once it is confident enough or no exam is informative.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rounds.envs.clinic.posterior import Posterior, normalise_log

if TYPE_CHECKING:
    from rounds.envs.clinic.env import DiagGymEnv
    from rounds.text_env import TextEnv

#: ``bayes`` diagnoses once the most probable diagnosis has this probability.
BAYES_CONFIDENCE = 0.9
#: ``bayes`` diagnoses once no exam is expected to gain this many nats.
BAYES_MIN_GAIN = 0.02
#: Outcomes sampled per exam to estimate its expected information gain.
BAYES_SAMPLES = 96


def _clinic(env: TextEnv) -> DiagGymEnv:
    from rounds.envs.clinic.env import DiagGymEnv

    if not isinstance(env, DiagGymEnv):
        raise TypeError(f"this policy is for DiagGym-v0, not {type(env).__name__}")
    return env


def _last_turn(env: DiagGymEnv) -> bool:
    """Whether this reply must be the diagnosis (never in the single-step variant: one free move)."""
    return not env.single_step and env.turn + 1 >= env.max_turns


def reference_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """Order each reference exam not yet done, then name the true diagnosis."""
    clinic = _clinic(env)
    assert clinic.patient is not None
    record = clinic.patient.record
    if not _last_turn(clinic):
        if clinic.patient.case is not None:
            for exam_id in clinic.reference:
                if exam_id not in clinic.ordered:
                    return f"exam: {clinic.kb.exams[exam_id].name}"
        else:
            for name in record.recommended_exam_names:
                if clinic._exam_key(name) not in clinic.ordered:
                    return f"exam: {name}"
    return f"diagnosis: {record.final_diagnosis}"


def random_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """Random exams, stopping with probability 0.3 each turn, then a random candidate
    diagnosis. In the choice action mode the exams are the listed ones, so a policy cloned
    from it learns the action format and nothing of the task."""
    clinic = _clinic(env)
    if _last_turn(clinic) or ((clinic.turn > 0 or clinic.single_step) and rng.random() < 0.3):
        diagnoses = clinic.diagnosis_commands()
        return diagnoses[int(rng.integers(len(diagnoses)))]
    if clinic.action_mode == "choice":
        exams = [c for c in clinic.choice_commands() if c.startswith("exam: ")]
    else:
        exams = [f"exam: {exam.name}" for exam in clinic.kb.exams.values()]
    return exams[int(rng.integers(len(exams)))]


def expected_information_gain(
    posterior: Posterior, exam_id: str, rng: np.random.Generator, samples: int = BAYES_SAMPLES
) -> float:
    """``H(D) − E_y[H(D | y)]`` for what the exam can still tell, by Monte Carlo over outcomes.

    Outcomes are drawn from the posterior predictive: a diagnosis from the
    posterior, then each feature's level given it and what is already known of
    the feature (the full history can still tell whether a symptom the patient did
    not volunteer is present, denied or not mentioned).
    """
    kb = posterior.kb
    complaint, sex = posterior.observed.get("complaint"), posterior.observed.get("sex")
    keys = (
        kb.exam_keys(exam_id, complaint, "female" if sex == "female" else "male")
        if complaint is not None and sex is not None
        else kb.exam_features[exam_id]
    )
    pending = [table for table in map(posterior.pending, keys) if table is not None]
    if not pending:
        return 0.0
    probs = posterior.probs
    diagnoses = rng.choice(len(probs), size=samples, p=probs)
    log_after = np.tile(posterior.log_weights, (samples, 1))
    for conditional in pending:
        cumulative = np.cumsum(conditional[diagnoses], axis=1)
        u = rng.random(samples)[:, None] * cumulative[:, -1:]
        levels = np.minimum((cumulative <= u).sum(axis=1), conditional.shape[1] - 1)
        with np.errstate(divide="ignore"):
            log_after += np.log(conditional[:, levels]).T
    top = log_after.max(axis=1, keepdims=True)
    weights = np.exp(log_after - top)
    after = weights / weights.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropies = -np.where(after > 0, after * np.log(after), 0.0).sum(axis=1)
    return posterior.entropy - float(entropies.mean())


def bayes_choice(env: DiagGymEnv, rng: np.random.Generator) -> tuple[str, str, float]:
    """``("exam", exam_id, gain)`` or ``("diagnose", disease_id, probability)``."""
    posterior = env.posterior
    if posterior is None:
        raise ValueError(
            "the bayes agent needs the exact posterior: use generated cases (cases='bank' or "
            "'generated') with world_model='knowledge'"
        )
    best_disease, confidence = posterior.top(1)[0]
    if _last_turn(env) or confidence >= BAYES_CONFIDENCE:
        return "diagnose", best_disease, confidence
    sex = env.patient.case.sex if env.patient is not None and env.patient.case else None
    # In the choice action mode, only the listed exams (a clone learns to answer by number).
    listed = set(env.choice_commands()) if env.action_mode == "choice" else None
    gains = {
        exam_id: expected_information_gain(posterior, exam_id, rng)
        for exam_id, exam in env.kb.exams.items()
        if exam_id not in env.ordered
        and exam.sex in (None, sex)
        and (listed is None or f"exam: {exam.name}" in listed)
    }
    exam_id = max(gains, key=lambda e: (gains[e], -env.kb.exams[e].cost), default=None)
    if exam_id is None or gains[exam_id] < BAYES_MIN_GAIN:
        return "diagnose", best_disease, confidence
    return "exam", exam_id, gains[exam_id]


def bayes_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """Greedy expected-information-gain exams, then the most probable diagnosis."""
    clinic = _clinic(env)
    kind, choice, _ = bayes_choice(clinic, rng)
    if kind == "diagnose":
        return f"diagnosis: {clinic.kb.disease(choice).name}"
    return f"exam: {clinic.kb.exams[choice].name}"


__all__ = [
    "bayes_choice",
    "bayes_policy",
    "expected_information_gain",
    "normalise_log",
    "random_policy",
    "reference_policy",
]
