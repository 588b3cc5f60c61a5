"""The LLM patient and the LLM rubric judge on CPU: the embedded tiny model and a fake local endpoint."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import pytest
from fake_openai import chat_body, fake_openai_server

import rounds  # noqa: F401
from rounds.envs.patient.baselines import question_for
from rounds.envs.patient.env import PatientSimEnv
from rounds.envs.patient.patient import LLM_SYSTEM_PROMPT, LLMPatient, guard
from rounds.envs.rubric.grader import Criterion, LLMGrader, grader_prompt, parse_verdict


def llm_env(**patient_options: Any) -> PatientSimEnv:
    env = gym.make(
        "rounds/PatientSim-v0",
        patient="llm",
        patient_options=patient_options,
        persona={"talkative": False, "anxious": False, "literacy": "high"},
    ).unwrapped
    assert isinstance(env, PatientSimEnv)
    return env


def hidden_fact_text(env: PatientSimEnv, index: int) -> str:
    return env.case.facts[env.case.shown_count + index]


def test_endpoint_reply_is_used_when_the_guard_passes() -> None:
    replies = ["Yes, I think so, doctor."]

    def handler(path: str, payload: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        return 200, chat_body(replies[0]), {}

    with fake_openai_server(handler) as (base_url, received):
        env = llm_env(model="patient-model", backend="openai", base_url=base_url)
        env.reset(seed=0, options={"task_id": "mcq-test-0003"})
        question = question_for(env, 0)
        observation, *_, info = env.step(question)
        assert observation == f'Patient: "{replies[0]}"'
        assert info["patient_fallback"] is False
        assert env.acquired  # the question's facts are acquired either way
        path, payload = received[0]
        assert path == "/chat/completions"
        system = payload["messages"][0]["content"]
        assert system.startswith(LLM_SYSTEM_PROMPT.split("{")[0])
        assert payload["messages"][-1] == {"role": "user", "content": question}
        # The model plays the patient: earlier questions are the user's, its replies its own.
        env.step("Do you smoke?")
        messages = received[1][1]["messages"]
        assert messages[1:] == [
            {"role": "user", "content": question},
            {"role": "assistant", "content": replies[0]},
            {"role": "user", "content": "Do you smoke?"},
        ]
        env.close()


def test_a_leaking_or_answer_naming_reply_falls_back_to_the_facts_reply() -> None:
    env = llm_env(model="m", backend="openai", base_url="http://127.0.0.1:9/v1")
    env.reset(seed=0, options={"task_id": "mcq-test-0003"})
    leak = " ".join(hidden_fact_text(env, i) for i in range(env.hidden_count))

    def handler(path: str, payload: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        question = payload["messages"][-1]["content"]
        if "job" in question:
            return 200, chat_body(f"I think I have {env.case.answer}."), {}
        if "AI" in question:
            return 200, chat_body("As an AI language model I cannot say."), {}
        return 200, chat_body(f"Well, {leak}"), {}

    with fake_openai_server(handler) as (base_url, _):
        env = llm_env(model="patient-model", backend="openai", base_url=base_url, max_retries=0)
        env.reset(seed=0, options={"task_id": "mcq-test-0003"})
        for question in (question_for(env, 0), "What is your job?", "Are you an AI?"):
            observation, *_, info = env.step(question)
            assert info["patient_fallback"] is True
            assert str(env.case.answer) not in observation
            assert "AI" not in observation
        assert isinstance(env.patient, LLMPatient) and env.patient.fallbacks == 3
        obs, *_, info = env.step(f"answer: {env.case.answer_idx}")
        assert info["metrics"]["llm_fallbacks"] == 3.0
        env.close()


def test_guard_names_what_is_wrong() -> None:
    env = llm_env(model="m", backend="openai", base_url="http://127.0.0.1:9/v1")
    env.reset(seed=0, options={"task_id": "mcq-test-0003"})
    assert env.mind is not None
    assert guard(env.mind, "", set(), "q") == "empty reply"
    assert guard(env.mind, "I am a simulation.", set(), "q") == "breaks character"
    assert "names the answer" in str(guard(env.mind, f"Maybe {env.case.answer}?", set(), "q"))
    assert guard(env.mind, "I'm not sure, doctor.", set(), "q") is None


@pytest.mark.slow
def test_embedded_tiny_model_patient_is_deterministic_and_guarded() -> None:
    def run() -> list[str]:
        env = llm_env(model="tiny", max_new_tokens=12)
        env.reset(seed=0, options={"task_id": "mcq-test-0003"})
        texts = []
        for question in (question_for(env, 0), "Do you smoke?"):
            observation, *_, info = env.step(question)
            texts.append(observation)
            if not info["patient_fallback"]:
                assert env.mind is not None
                reply = observation.removeprefix('Patient: "').removesuffix('"')
                assert guard(env.mind, reply, set(range(len(env.mind.facts))), question) in (
                    None,
                    "reveals facts not asked about ([])",
                )
        env.close()
        return texts

    assert run() == run()


# ------------------------------------------------------------------ the LLM judge

CRITERIA = [
    Criterion(criterion="Recommends antibiotics.", points=5, patterns=[r"\bantibiotics?\b"]),
    Criterion(criterion="Is rude.", points=-3, patterns=[r"\bidiot\b"]),
]
CONVERSATION = [
    {"role": "user", "content": "I have a cough and fever."},
    {"role": "assistant", "content": "You need antibiotics for pneumonia."},
]


def test_grader_prompt_has_healthbench_s_shape() -> None:
    prompt = grader_prompt(CONVERSATION, CRITERIA[1])
    assert "# Conversation\nuser: I have a cough and fever.\n\nassistant: You need" in prompt
    assert "# Rubric item\n[-3] Is rude." in prompt
    assert '"criteria_met"' in prompt
    assert parse_verdict('```json\n{"explanation": "ok", "criteria_met": true}\n```') == (
        True,
        "ok",
    )
    assert parse_verdict('{"criteria_met": "yes"}') is None
    assert parse_verdict("no json") is None


def test_llm_judge_retries_malformed_verdicts_then_falls_back() -> None:
    calls = {"n": 0}

    def handler(path: str, payload: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        calls["n"] += 1
        prompt = payload["messages"][0]["content"]
        if "[5] Recommends antibiotics." in prompt:
            # Malformed once, then a valid verdict that disagrees with the rules.
            if calls["n"] == 1:
                return 200, chat_body("I think it is met."), {}
            return 200, chat_body('{"explanation": "no", "criteria_met": false}'), {}
        return 200, chat_body("never json"), {}

    with fake_openai_server(handler) as (base_url, received):
        grader = LLMGrader(
            "judge", backend="openai", base_url=base_url, max_attempts=3, max_retries=0
        )
        result = grader.grade(CONVERSATION, CRITERIA)
        grader.close()
    assert result.met == [False, False]
    assert result.fallbacks == 1  # the second criterion: three malformed replies, rule verdict
    assert len(received) == 2 + 3
    assert result.score == 0.0


@pytest.mark.slow
def test_llm_judge_on_the_tiny_model_is_deterministic() -> None:
    grader = LLMGrader("tiny", max_new_tokens=8, max_attempts=2)
    first = grader.grade(CONVERSATION, CRITERIA)
    second = grader.grade(CONVERSATION, CRITERIA)
    assert first.met == second.met and first.explanations == second.explanations
    assert first.fallbacks == second.fallbacks
    # An untrained model writes no JSON verdict: every criterion falls back to the rules.
    assert first.fallbacks == len(CRITERIA) and first.met == [True, False]


def test_consultation_graded_by_the_llm_judge_through_the_env() -> None:
    def handler(path: str, payload: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        prompt = payload["messages"][0]["content"]
        met = "most likely diagnosis" in prompt.split("# Rubric item")[1].split("# Instructions")[0]
        return 200, chat_body(json.dumps({"explanation": "judged", "criteria_met": met})), {}

    with fake_openai_server(handler) as (base_url, received):
        env = gym.make(
            "rounds/PatientSim-v0",
            rubric_grader="llm",
            rubric_options={"model": "judge", "backend": "openai", "base_url": base_url},
        ).unwrapped
        assert isinstance(env, PatientSimEnv)
        env.reset(options={"task_id": "consult-test-0001"})
        *_, info = env.step("answer: I am not sure.")
        env.close()
    criteria = env.case.rubrics or []
    assert len(received) == len(criteria)
    positive = sum(c["points"] for c in criteria if c["points"] > 0)
    met = sum(c["points"] for c in criteria if c["criterion"].startswith("States "))
    assert info["metrics"]["rubric_score"] == pytest.approx(max(0.0, met / positive))


@pytest.mark.slow
def test_policy_value_function_in_the_env() -> None:
    env = gym.make(
        "rounds/PatientSim-v0",
        family="mcq",
        value_function="policy",
        value_options={"model": "tiny"},
    ).unwrapped
    assert isinstance(env, PatientSimEnv)
    small = next(i for i, c in env.cases.items() if len(c.facts) - c.shown_count == 4)
    _, info = env.reset(options={"task_id": small})
    assert info["value_function"] == "policy" and 0.0 < info["value"] < 1.0
    result = env.shapley
    assert result is not None and result.method == "exact"
    assert result.phi.sum() == pytest.approx(result.v_all - result.v_empty, abs=1e-9)
    from rounds.envs.patient.baselines import question_for

    best = int(abs(result.phi).argmax())
    *_, info = env.step(question_for(env, best))
    assert best in env.acquired
    assert info["reward_components"]["shapley_info_gain"] == pytest.approx(result.phi[best])
