"""Invariants of every generated PatientSim case and of episodes over them."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rounds  # noqa: F401
from rounds.envs.clinic.knowledge import load_knowledge
from rounds.envs.patient.baselines import question_for
from rounds.envs.patient.env import PatientSimEnv
from rounds.envs.patient.generate import LETTERS, generated_bank
from rounds.envs.patient.patient import forbidden_in


def patient_env(**kwargs: object) -> PatientSimEnv:
    env = gym.make("rounds/PatientSim-v0", **kwargs).unwrapped
    assert isinstance(env, PatientSimEnv)
    return env


def test_every_case_tells_one_coherent_patient() -> None:
    kb = load_knowledge()
    for case_id, case in generated_bank().items():
        assert case.fact_info is not None and case.diagnosis_id in kb.disease_index
        seen: dict[str, str] = {}
        for info in case.fact_info:
            for key, level in info.observations.items():
                assert key in kb.tables, f"{case_id}: unknown feature {key}"
                assert level in kb.tables[key].level_index, f"{case_id}: {key}={level}"
                assert seen.setdefault(key, level) == level, f"{case_id}: {key} twice"
        assert len(set(case.facts)) == len(case.facts), f"{case_id}: a fact twice"
        disease = kb.disease(str(case.diagnosis_id))
        woman = case.facts[0].split()[2] == "woman"
        assert woman == (case.fact_info[0].observations["sex"] == "female")
        if disease.female == 1.0:
            assert woman, f"{case_id}: {disease.id} in a man"
        if disease.female == 0.0:
            assert not woman, f"{case_id}: {disease.id} in a woman"


def test_no_fact_names_the_answer_or_an_option() -> None:
    for case_id, case in generated_bank().items():
        names = [case.answer or "", *case.options.values()]
        assert case.fact_info is not None
        for text, info in zip(case.facts, case.fact_info, strict=True):
            for said in (text, info.says or "", info.says_plainly or ""):
                assert forbidden_in(said, names) is None, f"{case_id}: {said!r}"


def test_options_are_five_distinct_diagnoses_with_the_gold_one() -> None:
    for case in generated_bank().values():
        if case.consultation:
            continue
        assert sorted(case.options) == list(LETTERS)
        assert case.option_ids is not None
        assert len(set(case.option_ids.values())) == len(LETTERS)
        assert case.option_ids[case.answer_idx] == case.diagnosis_id


def test_every_case_s_shapley_values_are_exact_and_efficient() -> None:
    env = patient_env()
    for case_id in env.cases:
        env.reset(options={"task_id": case_id})
        result = env.shapley
        assert result is not None and result.method == "exact"
        assert result.phi.sum() == pytest.approx(result.v_all - result.v_empty, abs=1e-9)
        assert 0.0 <= result.v_empty <= 1.0 and 0.0 <= result.v_all <= 1.0


@pytest.mark.slow
def test_each_hidden_fact_is_found_by_a_question_about_it() -> None:
    env = patient_env()
    asked = found = 0
    for case_id, case in env.cases.items():
        for i in range(len(case.facts) - case.shown_count):
            env.reset(options={"task_id": case_id})
            env.step(question_for(env, i))
            asked += 1
            found += i in env.acquired
            # A question never reveals more than the patient's per-question limit.
            assert len(env.acquired) <= 2
    assert found / asked > 0.995


def test_snapshot_restore_replays_byte_for_byte() -> None:
    env = patient_env(split="test")
    env.reset(seed=4, options={"task_id": "consult-test-0004"})
    env.step("Any fever?")
    snapshot = env.snapshot()
    actions = ["Do you take any medications?", "Any vomiting?", "answer: viral illness, rest"]

    def play() -> list[str]:
        out = []
        for action in actions:
            observation, reward, terminated, truncated, info = env.step(action)
            out.append(repr((observation, reward, terminated, truncated, sorted(info.items()))))
        return out

    first = play()
    env.restore(snapshot)
    assert play() == first
    # A fresh env restored from the snapshot replays the same way.
    other = patient_env(split="test")
    other.reset(seed=0)
    other.restore(snapshot)
    env = other
    assert play() == first


def test_values_along_an_episode_stay_probabilities() -> None:
    env = patient_env(split="test")
    policy = env.scripted_policies()["ask-all"]
    complete = 0
    for seed, case_id in enumerate(list(env.task_ids())[:40]):
        _, info = env.reset(seed=seed, options={"task_id": case_id})
        values, done = [info["value"]], False
        rng = np.random.default_rng(seed)
        while not done:
            _, _, terminated, truncated, info = env.step(policy(env, rng))
            values.append(info["value"])
            done = terminated or truncated
        assert all(0.0 <= v <= 1.0 for v in values)
        gained = info["metrics"]["info_gain_total"]
        if info["metrics"]["facts_fraction"] == 1.0:
            # Efficiency: all hidden facts together earn v(all) - v(shown).
            assert gained == pytest.approx(values[-1] - values[0], abs=1e-9)
            complete += 1
    assert complete >= 20
