"""The shared rubric grader: HealthBench's score, rules with negation and hedges, the DiagGym hook."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rounds  # noqa: F401
from rounds.envs.clinic.cases import bank_case, to_record
from rounds.envs.clinic.knowledge import load_knowledge
from rounds.envs.rubric.clinical import (
    case_rubric,
    diagnostic_rubric,
    grade_diagnostic_episode,
    phrase_pattern,
)
from rounds.envs.rubric.grader import Criterion, RuleGrader, make_grader, mention_met, rubric_score


def said(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": "I feel unwell."}, {"role": "assistant", "content": text}]


def test_score_is_met_points_over_positive_points_clipped() -> None:
    criteria = [
        Criterion(criterion="a", points=10),
        Criterion(criterion="b", points=5),
        Criterion(criterion="c", points=-5),
    ]
    assert rubric_score(criteria, [True, False, False]) == pytest.approx(10 / 15)
    assert rubric_score(criteria, [True, True, True]) == pytest.approx(10 / 15)
    assert rubric_score(criteria, [False, False, True]) == 0.0  # clipped at 0
    assert rubric_score([Criterion(criterion="x", points=-1)], [True]) == 0.0


ANTIBIOTICS = Criterion(
    criterion="Recommends antibiotics.", points=-5, patterns=[r"\bantibiotics?\b"]
)


@pytest.mark.parametrize(
    ("text", "met"),
    [
        ("I will prescribe antibiotics.", True),
        ("Start antibiotics today; rest and fluids.", True),
        ("You do not need antibiotics for a viral illness.", False),
        ("No antibiotics are needed.", False),
        ("Antibiotics are not indicated here.", False),
        ("Avoid antibiotics, this is viral.", False),
        ("This is a virus, so antibiotics won't help.", False),
        ("Antibiotics aren't needed.", False),
        ("Without a fever, antibiotics are reasonable.", True),  # the cue is in another clause
        ("No fever today. Start antibiotics.", True),
    ],
)
def test_negation_is_handled_per_clause(text: str, met: bool) -> None:
    assert mention_met(ANTIBIOTICS, text) is met


def test_hedged_diagnosis_does_not_count() -> None:
    kb = load_knowledge()
    dx = diagnostic_rubric(kb, "pneumonia", "male")[0]
    assert dx.hedge and dx.points > 0
    assert mention_met(dx, "Diagnosis: community-acquired pneumonia.")
    assert not mention_met(dx, "Possibly pneumonia, or maybe influenza.")
    assert not mention_met(dx, "Pneumonia versus pulmonary embolism")
    assert not mention_met(dx, "This is not pneumonia.")


def test_phrase_pattern_matches_whole_words_across_hyphens() -> None:
    import re

    pattern = phrase_pattern("ST-elevation myocardial infarction")
    assert re.search(pattern, "an ST elevation  myocardial infarction", re.IGNORECASE)
    assert not re.search(phrase_pattern("CAP"), "capsule", re.IGNORECASE)


def test_rule_grader_reports_unpatterned_criteria() -> None:
    result = RuleGrader().grade(said("Take rest."), [Criterion(criterion="Is kind.", points=2)])
    assert result.met == [False] and "LLM grader" in result.explanations[0]
    with pytest.raises(ValueError, match="unknown rubric grader"):
        make_grader("vibes")
    with pytest.raises(ValueError, match="not a regular expression"):
        Criterion(criterion="x", points=1, patterns=["("])


def test_diaggym_episode_is_graded_by_its_rubric() -> None:
    env = gym.make("rounds/DiagGym-v0", split="test").unwrapped
    rng = np.random.default_rng(0)
    scores: dict[str, list[float]] = {"reference": [], "random": []}
    for name in scores:
        policy = env.scripted_policies()[name]
        for seed in range(6):
            env.reset(seed=seed)
            done = False
            while not done:
                _, _, terminated, truncated, info = env.step(policy(env, rng))
                done = terminated or truncated
            assert info["reward_components"]["rubric"] == info["metrics"]["rubric_score"]
            scores[name].append(info["metrics"]["rubric_score"])
    assert min(scores["reference"]) == 1.0
    assert np.mean(scores["random"]) < 0.5
    assert env.reward_weights["rubric"] == 0.0  # DiagAgent's reward is unchanged by default


def test_diagbench_record_with_rubrics_is_graded_by_them(tmp_path: Path) -> None:
    kb = load_knowledge()
    record = to_record(kb, bank_case(kb, "rounds-test-0000"), "test").model_dump()
    record["rubrics"] = [
        {
            "criterion": "Orders a complete blood count.",
            "points": 4,
            "patterns": [r"complete blood count"],
        },
        {"criterion": "Orders a CT of the head.", "points": -2, "patterns": [r"\bCT head\b"]},
    ]
    path = tmp_path / "diagbench.jsonl"
    path.write_text(json.dumps(record) + "\n")
    env = gym.make("rounds/DiagGym-v0", cases=str(path)).unwrapped
    env.reset(options={"task_id": record["note_id"]})
    env.step("exam: Complete blood count")
    *_, info = env.step("diagnosis: something")
    assert info["metrics"]["rubric_score"] == 1.0
    env.reset(options={"task_id": record["note_id"]})
    *_, info = env.step("diagnosis: something")
    assert info["metrics"]["rubric_score"] == 0.0


def test_every_test_split_diagnosis_has_a_rubric() -> None:
    kb = load_knowledge()
    env = gym.make("rounds/DiagGym-v0", split="test").unwrapped
    for task_id in list(env.task_ids())[:200]:
        case = bank_case(kb, task_id)
        criteria = case_rubric(kb, to_record(kb, case, "test"), case)
        assert criteria and criteria[0].points > 0 and all(c.patterns for c in criteria)
    record = to_record(kb, bank_case(kb, "rounds-test-0001"), "test")
    assert grade_diagnostic_episode(kb, record, None, [], None) is None


def test_antibiotic_lists_name_knowledge_base_diagnoses() -> None:
    from rounds.envs.rubric.clinical import _clinical, antibiotic_criterion

    kb = load_knowledge()
    lists = _clinical()
    for name, ids in lists.items():
        assert set(ids) <= set(kb.disease_index), f"{name}: {set(ids) - set(kb.disease_index)}"
    indicated = antibiotic_criterion("pneumonia")
    viral = antibiotic_criterion("influenza")
    assert indicated is not None and indicated.points > 0
    assert viral is not None and viral.points == -5
    assert antibiotic_criterion("hsv_encephalitis") is None


def test_exported_test_split_with_rubrics_grades_like_the_bank(tmp_path: Path) -> None:
    from rounds.envs.rubric.clinical import diagbench_with_rubrics

    rows = diagbench_with_rubrics("test")
    assert len(rows) == len(gym.make("rounds/DiagGym-v0").unwrapped.task_ids("test"))
    assert all(len(r["rubrics"]) >= 3 and r["rubrics"][0]["points"] > 0 for r in rows)
    path = tmp_path / "diagbench_test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))
    bank = gym.make("rounds/DiagGym-v0", split="test").unwrapped
    from_file = gym.make("rounds/DiagGym-v0", cases=str(path)).unwrapped
    policy = bank.scripted_policies()["reference"]
    rng = np.random.default_rng(0)
    for row in rows[:5]:
        scores = []
        for env in (bank, from_file):
            env.reset(options={"task_id": row["note_id"]})
            done = False
            while not done:
                *_, terminated, truncated, info = env.step(policy(env, rng))
                done = terminated or truncated
            scores.append(info["metrics"]["rubric_score"])
        assert scores[0] == scores[1] == 1.0
