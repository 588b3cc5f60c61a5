"""DiagGym's presentation is a triage note; the history and the vital signs are orderable.

The triage note holds the chief complaint, age, sex and the symptoms the patient
volunteered. What the full history elicits (associated symptoms, pertinent
negatives, past medical history) and the vital signs are held back until ordered,
and they come from the same hidden case, so they never contradict the note.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from rounds.envs.clinic import cases as C
from rounds.envs.clinic.baselines import bayes_policy, expected_information_gain
from rounds.envs.clinic.env import DiagGymEnv
from rounds.envs.clinic.knowledge import KnowledgeBase, load_knowledge
from rounds.envs.clinic.posterior import Posterior

#: The goal: the posterior's top diagnosis from the presentation is right at most ~50% of the time.
TRIAGE_TOP1_BOUND = 0.55


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge()


def _mentions(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(phrase.lower())}(?![\w-])", text.lower()) is not None


def held_back(kb: KnowledgeBase, case: C.Case) -> list[str]:
    """The texts of every fact the full history reports and the triage note must not."""
    p = kb.presentation
    texts = [
        p.symptoms[s].text
        for s, v in case.symptoms.items()
        if v in ("present", "denied") and s not in case.volunteered
    ]
    texts += [p.history[h].text for h, v in case.history.items() if v in ("present", "denied")]
    return texts


def test_the_triage_note_never_shows_what_the_history_holds_back(kb: KnowledgeBase) -> None:
    checked = 0
    for note_id in list(C.bank_ids("test")) + list(C.bank_ids("validation")):
        case = C.bank_case(kb, note_id)
        summary = C.render_summary(kb, case)
        # What the note legitimately says: its fixed lines, the complaint, the volunteered symptoms.
        shown = summary.replace(kb.presentation.complaints[case.complaint], "")
        for s in case.volunteered:
            shown = shown.replace(kb.presentation.symptoms[s].text, "")
        for text in held_back(kb, case):
            assert not _mentions(shown, text), (note_id, text, summary)
            checked += 1
        assert "Vital Signs" not in summary and "°C" not in summary and "/min" not in summary
    assert checked > 1000


def test_the_history_reveals_the_held_back_facts_and_agrees_with_the_note(
    kb: KnowledgeBase,
) -> None:
    env = DiagGymEnv(split="test")
    p = kb.presentation
    revealed = 0
    for note_id in list(env.task_ids())[:60]:
        summary, _ = env.reset(options={"task_id": note_id})
        case = env.patient.case  # type: ignore[union-attr]
        assert case is not None
        observation, reward, terminated, truncated, info = env.step("exam: Medical history")
        assert not info["invalid_action"] and not terminated
        report = observation.split("Exam results:\n", 1)[1]
        hpi, pmh = report.split("\nPast medical history: ")
        reported = hpi.split(" denies ")[0]
        for text in held_back(kb, case):
            assert _mentions(report, text), (note_id, text, report)
            revealed += 1
        for s in case.volunteered:  # what the patient volunteered is reported, never denied
            assert _mentions(reported, p.symptoms[s].text), (note_id, s, report)
        for h, v in case.history.items():
            if v == "present":
                assert _mentions(pmh.split("No history of")[0], p.history[h].text)
        # The vital signs are the case's one set of values.
        observation, *_ = env.step("exam: Vital signs")
        for name, (_, value) in C.vital_signs(kb, case).items():
            formatted = C.format_value(p.vitals[name], value)
            assert f"{p.vitals[name].name}: {formatted} " in observation, (name, observation)
    assert revealed > 200


@pytest.mark.parametrize(
    ("order", "name"),
    [
        ("history", "Medical history"),
        ("take a history", "Medical history"),
        ("HPI", "Medical history"),
        ("review of systems", "Medical history"),
        ("past medical history", "Medical history"),
        ("Medical histroy", "Medical history"),
        ("vitals", "Vital signs"),
        ("vital signs", "Vital signs"),
        ("Heart rate", "Vital signs"),
    ],
)
def test_history_and_vitals_are_ordered_by_name(order: str, name: str) -> None:
    env = DiagGymEnv(split="test")
    env.reset(options={"task_id": "rounds-test-0001"})
    observation, *_, info = env.step(f"exam: {order}")
    assert not info["invalid_action"]
    assert observation.startswith(f"Exam name:\n{name}\nExam results:\n")


@pytest.mark.parametrize("order", ["histology", "family history of cancer", "vitamin D"])
def test_other_orders_never_get_the_history_or_the_vitals(order: str) -> None:
    env = DiagGymEnv(split="test")
    env.reset(options={"task_id": "rounds-test-0001"})
    observation, *_, info = env.step(f"exam: {order}")
    assert info["invalid_action"] and "not available" in observation


@pytest.fixture(scope="module")
def sampled(kb: KnowledgeBase) -> list[C.Case]:
    """A seeded sample of generated cases (the case model's own distribution)."""
    return [C.sample_case(kb, f"gen-triage-{i:05d}") for i in range(2000)]


def test_top1_from_the_triage_note_is_at_most_about_half(
    kb: KnowledgeBase, sampled: list[C.Case]
) -> None:
    """The posterior's top diagnosis from the presentation is right at most ~50% of the time,
    and the history and the vital signs each tell more."""
    stages: dict[str, list[bool]] = {"triage": [], "history": [], "vitals": []}
    for case in sampled:
        posterior = Posterior(kb)
        posterior.observe_all(case.observations())
        stages["triage"].append(posterior.top(1)[0][0] == case.diagnosis)
        for exam_id in ("history", "vitals"):
            posterior.observe_all(C.exam_observations(kb, case, exam_id))
            stages[exam_id].append(posterior.top(1)[0][0] == case.diagnosis)
    triage, history, vitals = (float(np.mean(v)) for v in stages.values())
    print(f"top-1: triage {triage:.3f}, after history {history:.3f}, and vitals {vitals:.3f}")
    assert 0.35 <= triage <= TRIAGE_TOP1_BOUND
    assert history >= triage + 0.04
    assert vitals >= history + 0.04


def test_few_symptoms_are_volunteered(sampled: list[C.Case]) -> None:
    counts = np.array([len(case.volunteered) for case in sampled])
    assert 0.05 <= np.mean(counts > 0) <= 0.3
    assert counts.max() <= 4
    # volunteered symptoms are symptoms the history records as present
    assert all(case.symptoms[s] == "present" for case in sampled for s in case.volunteered)


def test_bayes_weighs_the_history_and_orders_it_when_informative(kb: KnowledgeBase) -> None:
    env = DiagGymEnv(split="test")
    env.reset(options={"task_id": "rounds-test-0001"})
    assert env.posterior is not None
    rng = np.random.default_rng(0)
    assert expected_information_gain(env.posterior, "history", rng) > 0.05
    env.step("exam: Medical history")
    assert expected_information_gain(env.posterior, "history", rng) == 0.0
    taken = 0
    for note_id in list(env.task_ids())[:20]:
        env.reset(options={"task_id": note_id})
        while True:
            *_, terminated, truncated, info = env.step(bayes_policy(env, rng))
            if terminated or truncated:
                taken += int(info["metrics"]["history_taken"])
                break
    assert taken >= 3


def test_history_and_vitals_are_not_tests_in_the_exam_metrics() -> None:
    env = DiagGymEnv(split="test")
    env.reset(options={"task_id": "rounds-test-0001"})
    env.step("exam: Medical history")
    env.step("exam: Vital signs")
    for exam_id in env.reference:
        env.step(f"exam: {env.kb.exams[exam_id].name}")
    *_, info = env.step(f"diagnosis: {env.patient.record.final_diagnosis}")  # type: ignore[union-attr]
    metrics = info["metrics"]
    assert metrics["exam_f1"] == 1.0 and metrics["hit_ratio"] == 1.0
    assert metrics["exams_ordered"] == len(env.reference) and metrics["history_taken"] == 1.0


def test_single_step_gives_the_history_and_vitals_as_done() -> None:
    env = DiagGymEnv(split="test", single_step=True)
    observation, _ = env.reset(options={"task_id": "rounds-test-0002"})
    assert "Exam name:\nMedical history\n" in observation
    assert "Exam name:\nVital signs\n" in observation


def test_an_exported_record_answers_the_history_in_lookup_mode(tmp_path: object) -> None:
    from pathlib import Path

    kb = load_knowledge()
    case = C.bank_case(kb, "rounds-test-0002")
    record = C.to_record(kb, case, "test")
    path = Path(str(tmp_path)) / "bank.jsonl"
    path.write_text(record.model_dump_json() + "\n", encoding="utf-8")
    env = DiagGymEnv(cases=str(path))
    env.reset(options={"task_id": case.note_id})
    observation, *_ = env.step("exam: history")
    assert observation.endswith(C.render_history(kb, case))
