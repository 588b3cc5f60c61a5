"""PatientSim-v0: the env contract, the data, the patient, the rewards, the baselines."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rounds  # noqa: F401  (registers the envs)
from rounds.envs.clinic.knowledge import load_knowledge
from rounds.envs.patient.baselines import consultation_answer, question_for
from rounds.envs.patient.cases import PatientCase, dump_cases, load_cases, write_cases
from rounds.envs.patient.env import PatientSimEnv
from rounds.envs.patient.generate import (
    CONSULTATION_SIZES,
    MCQ_SIZES,
    consultation_case,
    generated_bank,
    mcq_case,
)
from rounds.envs.patient.lay import first_person, load_lay_table
from rounds.envs.patient.patient import Persona


def make(**kwargs: object) -> PatientSimEnv:
    env = gym.make("rounds/PatientSim-v0", **kwargs)
    assert isinstance(env.unwrapped, PatientSimEnv)
    return env.unwrapped


def most_valuable(env: PatientSimEnv) -> int:
    return int(np.argmax(env.shapley.phi))  # type: ignore[union-attr]


MEDQA_FILE = [
    {
        "question": "A 24-year-old woman presents with fever. Which of the following is the most likely diagnosis?",
        "options": {"A": "Acute pyelonephritis", "B": "Migraine", "C": "Gout", "D": "Asthma"},
        "answer_idx": "A",
        "facts": [
            "A 24-year-old woman presents with fever.",
            "She works as an accountant.",
            "She reports burning on urination and painful urination for three days.",
            "She has pain in her right flank and costovertebral angle tenderness.",
        ],
        "atomic_question": "Which of the following is the most likely diagnosis?",
    },
    {
        "question": "A 60-year-old man presents with a painful toe. Which is the most likely diagnosis?",
        "options": [{"key": "A", "value": "Cellulitis"}, {"key": "B", "value": "Acute gout flare"}],
        "answer_idx": "B",
        "facts": [
            "A 60-year-old man presents with a painful toe.",
            "He drinks beer every day.",
            "His big toe joint is painful and swollen; the pain woke him at night.",
            "Serum uric acid is 9.8 mg/dL.",
        ],
        "atomic_question": "Which is the most likely diagnosis?",
    },
]


def write_medqa(tmp_path: Path) -> Path:
    path = tmp_path / "medqa_promed.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in MEDQA_FILE))
    return path


# ------------------------------------------------------------------ contract


def test_passes_the_gymnasium_env_checker() -> None:
    check_env(gym.make("rounds/PatientSim-v0").unwrapped, skip_render_check=True)


def test_same_seed_same_episode_byte_for_byte() -> None:
    def run() -> list[str]:
        env = make(split="test")
        obs, info = env.reset(seed=7)
        policy = env.scripted_policies()["greedy"]
        texts, done = [obs, json.dumps(info, sort_keys=True, default=str)], False
        rng = np.random.default_rng(0)
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy(env, rng))
            texts += [obs, repr(reward)]
            done = terminated or truncated
        return texts

    assert run() == run()


def test_answer_is_the_gold_reply_and_never_shown() -> None:
    env = make()
    obs, info = env.reset(options={"task_id": "mcq-test-0000"})
    assert info["answer"] == f"answer: {env.case.answer_idx}"
    assert info["answer"] not in obs
    obs, *_, info = env.step("question: do you have a fever?")
    assert info["answer"] == f"answer: {env.case.answer_idx}"
    _, info = env.reset(options={"task_id": "consult-test-0000"})
    assert info["answer"] == f"answer: {env.case.answer}"


def test_declares_replay_metrics_and_series() -> None:
    env = make()
    meta = env.episode_meta()
    assert "accuracy" in meta["replay_metrics"] and "rubric_score" in meta["replay_metrics"]
    assert meta["replay_series"] == ["value"]


# ------------------------------------------------------------------ data


def test_bank_sizes_splits_and_layout() -> None:
    bank = generated_bank()
    mcq = [c for c in bank.values() if not c.consultation]
    consult = [c for c in bank.values() if c.consultation]
    assert len(mcq) == sum(MCQ_SIZES.values()) >= 300
    assert len(consult) == sum(CONSULTATION_SIZES.values()) >= 100
    for split in ("train", "validation", "test"):
        assert any(c.split == split for c in mcq) and any(c.split == split for c in consult)
    for case in mcq:
        row = json.loads(dump_cases([case]))
        assert {"question", "options", "answer_idx", "facts", "atomic_question"} <= set(row)
        assert row["options"][row["answer_idx"]] == case.answer
        assert 4 <= len(case.facts) - case.shown_count <= 12
    for case in consult:
        assert case.rubrics is not None and len(case.rubrics) >= 8
        assert any(item["points"] < 0 for item in case.rubrics)
        assert all(item["patterns"] for item in case.rubrics)


def test_generation_is_reproducible() -> None:
    kb, lay = load_knowledge(), load_lay_table()
    bank = generated_bank()
    for case_id, again in (
        ("mcq-test-0005", mcq_case(kb, lay, "test", 5)),
        ("consult-validation-0003", consultation_case(kb, lay, "validation", 3)),
    ):
        assert dump_cases([bank[case_id]]) == dump_cases([again])


def test_bank_round_trips_through_a_promed_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "bank.jsonl"
    cases = [generated_bank()[i] for i in ("mcq-test-0001", "consult-test-0002")]
    write_cases(path, cases)
    loaded = load_cases(path)
    assert dump_cases(loaded) == dump_cases(cases)
    env = make(cases=str(path), split="test")
    assert list(env.task_ids()) == ["mcq-test-0001", "consult-test-0002"]
    _, info = env.reset(options={"task_id": "mcq-test-0001"})
    assert info["value_function"] == "knowledge"


def test_a_promed_file_drops_in_with_the_lexical_value_function(tmp_path: Path) -> None:
    env = make(cases=str(write_medqa(tmp_path)))
    assert len(env.task_ids()) == 2
    obs, info = env.reset(options={"task_id": "medqa_promed-00001"})
    assert info["value_function"] == "lexical"
    # ProMed shows half the facts.
    assert "accountant" in obs and "urination" not in obs and "costovertebral" not in obs
    assert "Acute pyelonephritis" in obs


def test_bad_case_file_says_which_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps(MEDQA_FILE[0]) + "\n" + json.dumps({**MEDQA_FILE[0], "answer_idx": "Z"}) + "\n"
    )
    with pytest.raises(ValueError, match=r"bad.jsonl:2: .*answer_idx 'Z'"):
        load_cases(path)


# ------------------------------------------------------------------ rewards


def first_case_with_a_valuable_fact(env: PatientSimEnv, family: str = "mcq") -> str:
    for case_id in env.task_ids("test"):
        if case_id.startswith(family):
            env.reset(options={"task_id": case_id})
            if float(env.shapley.phi.max()) > 0.05:  # type: ignore[union-attr]
                return str(case_id)
    raise AssertionError("no test case has a hidden fact worth 0.05")


def test_asking_a_hidden_fact_that_matters_earns_its_shapley_value_once() -> None:
    env = make()
    env.reset(options={"task_id": first_case_with_a_valuable_fact(env)})
    best = most_valuable(env)
    phi = float(env.shapley.phi[best])  # type: ignore[union-attr]
    assert phi > 0.05

    question = question_for(env, best)
    _, reward, *_, info = env.step(question)
    assert info["reward_components"]["shapley_info_gain"] == pytest.approx(phi)
    assert info["reward_components"]["repeat_penalty"] == 0.0
    # The same fact again earns nothing, and the repeat is penalised.
    _, _, _, _, info = env.step(question)
    assert info["reward_components"]["shapley_info_gain"] == 0.0
    assert info["reward_components"]["repeat_penalty"] < 0


def test_a_hidden_fact_that_matters_earns_positive_gain_in_a_file(tmp_path: Path) -> None:
    env = make(cases=str(write_medqa(tmp_path)))
    env.reset(options={"task_id": "medqa_promed-00001"})
    assert env.hidden_count == 2
    obs, _, _, _, info = env.step("Do you have any pain in your flank or side?")
    assert "flank" in obs
    assert info["reward_components"]["shapley_info_gain"] > 0
    _, _, _, _, info = env.step("What is your job?")
    assert info["reward_components"]["shapley_info_gain"] <= 1e-9
    env.reset(options={"task_id": "medqa_promed-00002"})
    _, _, _, _, info = env.step("Does any joint hurt, is it swollen?")
    assert info["reward_components"]["shapley_info_gain"] > 0


def test_episode_gains_sum_to_the_value_change() -> None:
    env = make(split="test")
    _, info = env.reset(options={"task_id": "mcq-test-0007"})
    start = info["value"]
    policy, rng, done, total = (
        env.scripted_policies()["ask-all"],
        np.random.default_rng(0),
        False,
        0.0,
    )
    while not done:
        _, _, terminated, truncated, info = env.step(policy(env, rng))
        total += info["reward_components"]["shapley_info_gain"]
        done = terminated or truncated
    assert total == pytest.approx(info["metrics"]["info_gain_total"])
    assert total == pytest.approx(info["metrics"]["final_value"] - start, abs=1e-9)


def test_correct_and_wrong_answers_and_the_answer_formats() -> None:
    env = make()
    env.reset(options={"task_id": "mcq-test-0000"})
    gold = env.case.answer_idx
    _, reward, terminated, _, info = env.step(f"<think>sure</think>answer: {gold}")
    assert terminated and info["outcome"] == 1.0 and info["metrics"]["accuracy"] == 1.0
    env.reset(options={"task_id": "mcq-test-0000"})
    wrong = next(x for x in env.case.options if x != gold)
    _, _, terminated, _, info = env.step(
        json.dumps({"name": "answer", "arguments": {"answer": wrong}})
    )
    assert terminated and info["metrics"]["accuracy"] == 0.0
    env.reset(options={"task_id": "mcq-test-0000"})
    _, _, terminated, _, info = env.step(f"Answer: {env.case.options[gold]}")
    assert terminated and info["metrics"]["accuracy"] == 1.0
    env.reset(options={"task_id": "mcq-test-0000"})
    obs, _, terminated, _, info = env.step("answer: Z")
    assert not terminated and info["invalid_action"] and "not one of the options" in obs


def test_ask_tool_call_is_a_question() -> None:
    env = make()
    env.reset(options={"task_id": "mcq-test-0003"})
    obs, *_, info = env.step('{"name": "ask", "arguments": {"question": "Any chest pain?"}}')
    assert obs.startswith('Patient: "') and not info["invalid_action"]
    assert env.questions == 1


def test_question_limit_truncates_with_an_instruction_to_answer() -> None:
    env = make(max_questions=2)
    env.reset(options={"task_id": "mcq-test-0000"})
    env.step("Any cough?")
    obs, _, terminated, truncated, _ = env.step("Any headache?")
    assert "next reply must be your answer" in obs and not (terminated or truncated)
    obs, _, terminated, truncated, info = env.step("Any rash?")
    assert truncated and not terminated and info["invalid_action"]
    assert info["metrics"]["answered"] == 0.0 and info["outcome"] == 0.0
    assert "question limit (2)" in obs


def test_consultation_is_graded_by_its_rubric() -> None:
    env = make(max_questions=20)
    env.reset(options={"task_id": "consult-test-0001"})
    for i in range(env.hidden_count):
        env.step(question_for(env, i))
    env.step("Do you take any medications?")
    _, _, terminated, _, info = env.step(consultation_answer(env, str(env.case.diagnosis_id)))
    # Everything but the antibiotic criterion (met only where antibiotics are indicated).
    assert terminated and info["metrics"]["rubric_score"] >= 0.8
    assert info["outcome"] == info["metrics"]["rubric_score"]
    env.reset(options={"task_id": "consult-test-0001"})
    name = env.case.answer
    *_, info = env.step(f"answer: Possibly {name}, or something else.")
    assert info["metrics"]["rubric_score"] == 0.0  # a hedged diagnosis does not count
    env.reset(options={"task_id": "consult-test-0001"})
    _, _, _, _, info = env.step("answer: There is nothing to worry about, just go home.")
    assert info["metrics"]["rubric_score"] == 0.0


# ------------------------------------------------------------------ the patient


def test_persona_changes_wording_not_facts() -> None:
    replies = {}
    probe = make()
    probe.reset(options={"task_id": "mcq-test-0003"})
    assert probe.mind is not None
    shown = probe.case.shown_count
    fact = next(
        i
        for i in range(probe.hidden_count)
        if len(
            set(probe.mind.facts[shown + i].says.split())
            ^ set(probe.mind.facts[shown + i].says_plainly.split())
        )
        > 1
    )
    question = question_for(probe, fact)
    for literacy in ("low", "high"):
        env = make(persona={"literacy": literacy, "talkative": literacy == "low", "anxious": False})
        env.reset(options={"task_id": "mcq-test-0003"})
        obs, *_ = env.step(question)
        replies[literacy] = (obs, set(env.acquired))
    assert fact in replies["low"][1]
    assert replies["low"][1] == replies["high"][1]
    assert replies["low"][0] != replies["high"][0]
    said = probe.mind.facts[shown + fact]
    assert said.says_plainly[1:] in replies["low"][0] and said.says in replies["high"][0]


def test_unknown_things_get_i_dont_know() -> None:
    env = make(persona={"talkative": False, "anxious": False, "literacy": "high"})
    env.reset(options={"task_id": "mcq-test-0003"})
    obs, *_, info = env.step("Have you ever travelled to Antarctica?")
    assert info["patient_intent"] == "unknown"
    assert any(p in obs for p in ("don't know", "haven't noticed", "Not that I've noticed"))
    assert env.acquired == set()


def test_first_person_wording_of_file_facts() -> None:
    assert first_person("The patient reports dyspnea on exertion.") == "I have dyspnea on exertion."
    assert first_person("She has a history of asthma.") == "I have a history of asthma."
    assert first_person("Serum calcium 11.8 mg/dL.").startswith(
        "The doctor told me: serum calcium 11.8"
    )
    assert first_person("A 34-year-old man presents to the clinic with a cough.") == (
        "I'm 34, and I came in with a cough."
    )


def test_persona_is_seeded_per_episode() -> None:
    env = make()
    personas = set()
    for seed in range(12):
        env.reset(seed=seed)
        personas.add(env.persona)
    env.reset(seed=3)
    first = env.persona
    env.reset(seed=3)
    assert env.persona == first and len(personas) > 2
    assert isinstance(first, Persona)


# ------------------------------------------------------------------ baselines


@pytest.mark.slow
def test_scripted_doctors_rank_as_expected_on_the_test_split() -> None:
    env = make(split="test", family="mcq")
    scores: dict[str, list[float]] = {}
    acquired: list[float] = []
    for name in ("random", "ask-all", "greedy"):
        policy = env.scripted_policies()[name]
        for i, task in enumerate(list(env.task_ids())[:30]):
            env.reset(seed=i, options={"task_id": task})
            rng, done = np.random.default_rng(i), False
            while not done:
                _, _, terminated, truncated, info = env.step(policy(env, rng))
                done = terminated or truncated
            scores.setdefault(name, []).append(info["metrics"]["accuracy"])
            if name == "ask-all":
                acquired.append(info["metrics"]["facts_fraction"])
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    assert mean["ask-all"] > mean["random"] + 0.3
    assert mean["greedy"] > mean["random"] + 0.3
    # The matcher finds the fact each of ask-all's questions is about.
    assert float(np.mean(acquired)) > 0.9


def test_case_model_rejects_inconsistent_cases() -> None:
    with pytest.raises(ValueError, match="answer_idx"):
        PatientCase(facts=["x"], options={"A": "a"}, answer_idx="B")
    with pytest.raises(ValueError, match="at least one fact"):
        PatientCase(facts=[" "], options={"A": "a"}, answer_idx="A")


def test_greedy_never_looks_at_the_gold_answer(tmp_path: Path) -> None:
    case = generated_bank()["mcq-test-0002"]
    other = next(letter for letter in case.options if letter != case.answer_idx)
    relabelled = case.model_copy(update={"id": "relabelled", "answer_idx": other, "answer": None})
    relabelled = PatientCase.model_validate(relabelled.model_dump())
    path = tmp_path / "two.jsonl"
    write_cases(path, [case, relabelled])
    env = make(cases=str(path))
    policy = env.scripted_policies()["greedy"]
    runs = []
    for task in (str(case.id), "relabelled"):
        env.reset(seed=0, options={"task_id": task})
        actions, done = [], False
        while not done:
            actions.append(policy(env, np.random.default_rng(0)))
            *_, terminated, truncated, _ = env.step(actions[-1])
            done = terminated or truncated
        runs.append(actions)
    assert runs[0] == runs[1] and len(runs[0]) > 1


def test_value_function_choice_and_argument_errors() -> None:
    env = make(value_function="lexical")
    _, info = env.reset(options={"task_id": "mcq-test-0000"})
    assert info["value_function"] == "lexical"
    _, info = env.reset(options={"task_id": "consult-test-0000"})
    assert info["value_function"] == "knowledge"  # lexical scores options; a consultation has none
    with pytest.raises(ValueError, match="only value_function='policy' takes"):
        make(value_options={"model": "tiny"})
    with pytest.raises(ValueError, match="unknown value_function"):
        make(value_function="oracle")
    with pytest.raises(ValueError, match="persona must be"):
        make(persona="grumpy")
    with pytest.raises(TypeError):
        make(persona={"mood": "grumpy"})
    with pytest.raises(ValueError, match="unknown family"):
        make(family="surgery")


def test_cases_above_the_exact_limit_use_monte_carlo_within_tolerance() -> None:
    exact = make()
    exact.reset(options={"task_id": "mcq-test-0004"})
    sampled = make(exact_max_facts=2, shapley_tolerance=0.01)
    _, info = sampled.reset(options={"task_id": "mcq-test-0004"})
    assert info["shapley_method"] == "monte_carlo"
    assert exact.shapley is not None and sampled.shapley is not None
    assert np.abs(sampled.shapley.phi - exact.shapley.phi).max() <= 0.02
    assert float(sampled.shapley.half_width.max()) <= 0.01 or sampled.shapley.permutations >= 4000
