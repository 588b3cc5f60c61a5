"""DiagGym-v0 with a set of candidate diagnoses (``diagnoses=``, variant ``five-diagnoses``) and
its choice action mode: the cases drawn, the numbered commands, the exact posterior over the
candidates and the scripted baselines answering by number."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from test_clinic_env import write_diagbench

from rounds.envs.clinic.baselines import bayes_policy, random_policy
from rounds.envs.clinic.cases import bank_case
from rounds.envs.clinic.env import FIVE_DIAGNOSES, DiagGymEnv
from rounds.envs.clinic.posterior import Posterior
from rounds.registration import make


@pytest.fixture(scope="module")
def five() -> DiagGymEnv:
    env = make("rounds/DiagGym-v0", variant="five-diagnoses", max_turns=4).unwrapped
    assert isinstance(env, DiagGymEnv)
    return env


def test_only_cases_of_the_candidates_are_drawn_and_splits_stay_apart(five: DiagGymEnv) -> None:
    ids = {split: list(five.task_ids(split)) for split in ("train", "validation", "test")}
    assert {k: len(v) for k, v in ids.items()} == {"train": 91, "validation": 28, "test": 22}
    assert not set(ids["train"]) & set(ids["validation"])
    for split, split_ids in ids.items():
        diagnoses = {bank_case(five.kb, i).diagnosis for i in split_ids}
        assert diagnoses <= set(FIVE_DIAGNOSES), split
    assert {bank_case(five.kb, i).diagnosis for i in ids["train"]} == set(FIVE_DIAGNOSES)
    for seed in range(40):
        five.reset(seed=seed)
        assert five.patient is not None and five.patient.case is not None
        assert five.patient.case.diagnosis in FIVE_DIAGNOSES


def test_a_case_of_another_diagnosis_is_refused_by_name(five: DiagGymEnv) -> None:
    full = DiagGymEnv()
    other = next(i for i in full.task_ids("train") if i not in set(five.task_ids("train")))
    with pytest.raises(ValueError, match="not one of this env's diagnoses"):
        five.reset(options={"task_id": other})


def test_the_numbered_commands_are_the_history_vitals_and_candidates(five: DiagGymEnv) -> None:
    observation, _ = five.reset(seed=3)
    names = [five.kb.disease(d).name for d in FIVE_DIAGNOSES]
    expected = ["exam: Medical history", "exam: Vital signs"] + [f"diagnosis: {n}" for n in names]
    listing = observation.split("Commands:\n", 1)[1].splitlines()
    assert listing[:-1] == [f"{n}. {c}" for n, c in enumerate(expected, start=1)]
    assert listing[-1] == "Reply with the number of one command."
    assert five.choice_commands() == expected
    assert "The diagnosis is one of: " + ", ".join(names) + "." in five.system_prompt
    assert "Reply with the number of one command" in five.system_prompt
    assert "Examinations available" not in five.system_prompt
    # A number acts as its command; the numbers do not change between turns.
    observation, *_ = five.step("1")
    assert "Exam name:\nMedical history" in observation
    assert observation.split("Commands:\n", 1)[1].splitlines()[:-1] == listing[:-1]
    truth = five.patient.case.diagnosis  # type: ignore[union-attr]
    number = 3 + list(FIVE_DIAGNOSES).index(truth)
    _, reward, terminated, _, info = five.step(str(number))
    assert terminated and info["metrics"]["success"] == 1.0
    assert reward == pytest.approx(1.1)  # outcome 1 + completion 0.1 (history is no test: F1 0)


def test_numbers_out_of_range_and_other_exams_as_text(five: DiagGymEnv) -> None:
    five.reset(seed=4)
    observation, reward, terminated, _, info = five.step("8")
    assert info["invalid_action"] and not terminated and reward == pytest.approx(-0.1)
    assert "reply with a number from 1 to 7" in observation
    observation, _, _, _, info = five.step("exam: urinalysis")
    assert not info["invalid_action"] and "Exam name:\nUrinalysis" in observation


def test_the_posterior_is_exact_over_the_candidates(five: DiagGymEnv) -> None:
    for seed in range(20):
        five.reset(seed=seed)
        assert five.posterior is not None and five.patient is not None
        full = Posterior(five.kb)
        full.observe_all(five.patient.case.observations())  # type: ignore[union-attr]
        keep = np.array([d.id in FIVE_DIAGNOSES for d in five.kb.diseases])
        expected = np.where(keep, full.probs, 0.0)
        np.testing.assert_allclose(five.posterior.probs, expected / expected.sum(), atol=1e-12)


def play(env: DiagGymEnv, policy: object, episodes: int, split: str) -> tuple[float, set[str]]:
    rng = np.random.default_rng(0)
    wins, replies = [], set()
    ids = list(env.task_ids(split))
    for n in range(episodes):
        env.reset(options={"task_id": ids[n % len(ids)]})
        info: dict[str, object] = {}
        while not env.episode_ended:
            reply = env.present_action(policy(env, rng))  # type: ignore[operator]
            replies.add(reply)
            _, _, _, _, info = env.step(reply)
        wins.append(info["metrics"]["success"])  # type: ignore[index]
    return float(np.mean(wins)), replies


def test_the_baselines_answer_by_number(five: DiagGymEnv) -> None:
    chance, replies = play(five, random_policy, 300, "train")
    assert replies <= {str(n) for n in range(1, 8)}
    assert 0.12 <= chance <= 0.3  # a random candidate (1 in 5), when it answers in time
    accuracy, replies = play(five, bayes_policy, 28, "validation")
    assert replies <= {str(n) for n in range(1, 8)}
    assert accuracy >= 0.9


def test_bad_diagnoses_are_refused_with_what_to_use() -> None:
    with pytest.raises(ValueError, match=r"'cystits' \(did you mean cystitis"):
        DiagGymEnv(diagnoses=["cystits"])
    with pytest.raises(ValueError, match="non-empty list"):
        DiagGymEnv(diagnoses="cystitis")
    with pytest.raises(ValueError, match="cases='bank'"):
        DiagGymEnv(cases="generated", diagnoses=["cystitis"])


def test_a_case_file_is_filtered_by_its_final_diagnosis(tmp_path: Path) -> None:
    env = DiagGymEnv(cases=str(write_diagbench(tmp_path)), diagnoses=["appendicitis"])
    assert list(env.task_ids("test")) == ["101"]
    observation, _ = env.reset(options={"task_id": "101"})
    assert "right lower quadrant" in observation


def test_the_full_env_is_unchanged_by_the_candidates() -> None:
    env = DiagGymEnv()
    assert env.candidates == [d.id for d in env.kb.diseases]
    assert env.system_prompt.count("Examinations available") == 1
    assert "The diagnosis is one of" not in env.system_prompt


def test_the_variant_passes_gymnasiums_env_checker() -> None:
    from gymnasium.utils.env_checker import check_env

    env = make("rounds/DiagGym-v0", variant="five-diagnoses").unwrapped
    check_env(env, skip_render_check=True)


#: Replies a choice-mode reader might trip on: numbers out of range or malformed, and text.
NUMBERS = ["0", "-1", "8", "07", " 7 ", "3.5", "1e3", "99999999999999999999999", "٣", "3 4", "#3"]


def test_hostile_replies_never_raise_in_the_choice_mode(five: DiagGymEnv) -> None:
    from test_hostile_inputs import ALWAYS_INVALID, HOSTILE

    for name, reply in {**HOSTILE, **{f"number {n!r}": n for n in NUMBERS}}.items():
        five.reset(seed=7)
        observation, reward, terminated, truncated, info = five.step(reply)
        assert isinstance(observation, str) and observation, name
        assert math.isfinite(reward), name
        if name in ALWAYS_INVALID:
            assert info["invalid_action"] and not terminated, name
        if not (terminated or truncated):  # the listing is still offered after a bad reply
            assert observation.rstrip().endswith("Reply with the number of one command."), name


def test_invariants_over_thousands_of_sampled_episodes(five: DiagGymEnv) -> None:
    """2,000 episodes of a policy that mixes the random baseline's numbers with stray
    numbers and text: one hidden case of a candidate diagnosis per episode, an exact
    posterior with no mass off the candidates, and a verifier that pays for the truth only."""
    rng = np.random.default_rng(11)
    candidate = np.array([d.id in FIVE_DIAGNOSES for d in five.kb.diseases])
    numbers = {f"diagnosis: {five.kb.disease(d).name}": d for d in FIVE_DIAGNOSES}
    splits = ("train", "validation", "test")
    for n in range(2000):
        split = splits[n % 3]
        ids = five.task_ids(split)
        five.reset(options={"task_id": ids[int(rng.integers(len(ids)))]})
        case = five.patient.case  # type: ignore[union-attr]
        assert case is not None and case.diagnosis in FIVE_DIAGNOSES
        info: dict[str, object] = {}
        named: str | None = None
        while not five.episode_ended:
            roll = rng.random()
            if roll < 0.8:
                reply = five.present_action(random_policy(five, rng))
            elif roll < 0.9:
                reply = str(int(rng.integers(-2, 12)))
            else:
                reply = "diagnosis: Acute asthma exacerbation"
            if reply.isdigit() and 3 <= int(reply) <= 7:
                named = five.choice_commands()[int(reply) - 1]
            elif reply.startswith("diagnosis: "):
                named = reply
            _, _, _, _, info = five.step(reply)
            posterior = five.posterior
            assert posterior is not None
            assert abs(posterior.probs.sum() - 1.0) < 1e-9
            assert not posterior.probs[~candidate].any()
            assert posterior.probability(case.diagnosis) > 0
        metrics = info["metrics"]  # type: ignore[index]
        assert five.turn <= 4
        given = metrics["diagnosis_given"] == 1.0
        assert given == (named is not None and five.diagnosis is not None)
        correct = given and numbers.get(str(named)) == case.diagnosis
        assert metrics["success"] == float(correct), (named, case.diagnosis)
        components = info["reward_components"]  # type: ignore[index]
        assert components["outcome"] == float(correct)
        assert components["completion"] == pytest.approx(0.1 * given)
        assert components["exam_f1"] == 0.0  # only the history and vital signs: no tests
