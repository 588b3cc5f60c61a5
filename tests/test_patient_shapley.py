"""Shapley information gain: exact enumeration, Monte Carlo, efficiency, the value functions."""

from __future__ import annotations

import numpy as np
import pytest

from rounds.envs.clinic.knowledge import load_knowledge
from rounds.envs.patient.generate import generated_bank
from rounds.envs.patient.lay import load_lay_table
from rounds.envs.patient.shapley import (
    AdditiveValue,
    brute_force_shapley,
    exact_shapley,
    fact_weights,
    monte_carlo_shapley,
    shapley_values,
)
from rounds.envs.patient.values import knowledge_value, lexical_value


def random_game(n: int, k: int = 4, seed: int = 0) -> AdditiveValue:
    rng = np.random.default_rng(seed)
    return AdditiveValue(rng.normal(size=k), rng.normal(scale=1.5, size=(n, k)), gold=1)


def small_generated_case(max_hidden: int = 6):  # type: ignore[no-untyped-def]
    for case in generated_bank().values():
        if not case.consultation and 3 <= len(case.facts) - case.shown_count <= max_hidden:
            return case
    raise AssertionError("no small generated case")


@pytest.mark.parametrize("n", [1, 3, 6])
def test_exact_shapley_equals_brute_force_over_all_orders(n: int) -> None:
    game = random_game(n, seed=n)
    np.testing.assert_allclose(exact_shapley(game).phi, brute_force_shapley(game), atol=1e-12)


def test_exact_shapley_equals_brute_force_on_a_generated_case() -> None:
    case = small_generated_case()
    value = knowledge_value(load_knowledge(), case)
    np.testing.assert_allclose(exact_shapley(value).phi, brute_force_shapley(value), atol=1e-12)


def test_hand_computed_two_player_game() -> None:
    # v(∅)=σ(0)=0.5 with two candidates; fact 0 adds +ln 3 to gold's logit, fact 1 nothing.
    game = AdditiveValue(np.zeros(2), np.array([[np.log(3.0), 0.0], [0.0, 0.0]]), gold=0)
    result = exact_shapley(game)
    assert result.v_empty == pytest.approx(0.5)
    assert result.phi[0] == pytest.approx(0.75 - 0.5)
    assert result.phi[1] == pytest.approx(0.0)


@pytest.mark.parametrize("n", [4, 9, 12])
def test_values_are_efficient(n: int) -> None:
    game = random_game(n, seed=10 + n)
    exact = exact_shapley(game)
    assert exact.phi.sum() == pytest.approx(exact.v_all - exact.v_empty, abs=1e-10)
    mc = monte_carlo_shapley(game, np.random.default_rng(0), max_permutations=128)
    assert mc.phi.sum() == pytest.approx(mc.v_all - mc.v_empty, abs=1e-10)


def test_monte_carlo_converges_to_exact_within_its_tolerance() -> None:
    game = random_game(9, seed=3)
    exact = exact_shapley(game).phi
    coarse = monte_carlo_shapley(game, np.random.default_rng(1), tolerance=0.05)
    fine = monte_carlo_shapley(
        game, np.random.default_rng(1), tolerance=0.005, max_permutations=20_000
    )
    assert fine.method == "monte_carlo"
    assert float(fine.half_width.max()) <= 0.005
    assert np.abs(fine.phi - exact).max() <= 0.01
    assert np.abs(fine.phi - exact).max() < np.abs(coarse.phi - exact).max() + 1e-9
    assert fine.permutations > coarse.permutations


def test_above_the_exact_limit_monte_carlo_is_used() -> None:
    game = random_game(14, seed=5)
    result = shapley_values(game, exact_max_facts=12, tolerance=0.02)
    assert result.method == "monte_carlo"
    assert result.phi.sum() == pytest.approx(result.v_all - result.v_empty, abs=1e-10)
    assert shapley_values(random_game(5), exact_max_facts=12).method == "exact"


def test_softmax_weights_are_promed_s() -> None:
    phi = np.array([0.2, -0.1, 0.0])
    weights = fact_weights(phi, "softmax")
    expected = np.exp(phi / 2) / np.exp(phi / 2).sum()
    np.testing.assert_allclose(weights, expected)
    np.testing.assert_allclose(fact_weights(phi, "shapley"), phi)
    with pytest.raises(ValueError, match="unknown gain weighting"):
        fact_weights(phi, "mean")


def test_knowledge_value_is_the_exact_posterior_among_the_options() -> None:
    from rounds.envs.clinic.posterior import Posterior

    kb = load_knowledge()
    case = small_generated_case()
    value = knowledge_value(kb, case)
    assert case.fact_info is not None and case.option_ids is not None
    posterior = Posterior(kb)
    for info in case.fact_info:
        posterior.observe_all(info.observations)
    letters = sorted(case.options)
    probs = np.array([posterior.probability(case.option_ids[x]) for x in letters])
    expected = probs[letters.index(case.answer_idx)] / probs.sum()
    assert value.values(np.array([(1 << value.n) - 1]))[0] == pytest.approx(expected, rel=1e-9)


def test_lexical_value_rewards_a_fact_that_names_the_gold_option_s_findings() -> None:
    from rounds.envs.patient.cases import PatientCase

    case = PatientCase(
        question="",
        options={"A": "Migraine", "B": "Acute appendicitis", "C": "Influenza"},
        answer_idx="B",
        facts=[
            "A 19-year-old man presents with abdominal pain.",
            "The pain moved to the right lower abdomen.",
            "He works as a teacher.",
        ],
        atomic_question="Which of the following is the most likely diagnosis?",
        shown=1,
    )
    value = lexical_value(load_knowledge(), load_lay_table(), case)
    phi = exact_shapley(value).phi
    assert phi[0] > 0.01
    assert phi[0] > phi[1]


@pytest.mark.slow
def test_policy_value_uses_the_trainers_teacher_forcing_scorer() -> None:
    import math

    from rounds.envs.patient.values import answer_prompt, policy_value
    from rounds.models import load_causal_lm, load_tokenizer
    from rounds.trainers.info_gain import answer_logprobs

    model, tokenizer = load_causal_lm("tiny"), load_tokenizer("tiny")
    case = small_generated_case(max_hidden=4)
    value = policy_value(case, model, tokenizer)
    masks = np.arange(1 << value.n)
    values = value.values(masks)
    assert ((values > 0) & (values < 1)).all()
    # The value of the full coalition is exp of the trainer scorer's mean log-prob.
    ids = tokenizer.apply_chat_template(
        answer_prompt(case, list(range(value.n))), add_generation_prompt=True, tokenize=True
    )
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "input_ids") else ids
    answer_ids = tokenizer(f"answer: {case.answer_idx}", add_special_tokens=False).input_ids
    (logp,) = answer_logprobs(model, [list(ids)], answer_ids, pad_id=int(tokenizer.pad_token_id))
    assert values[-1] == pytest.approx(math.exp(logp), rel=1e-5)
    result = exact_shapley(value)
    assert result.phi.sum() == pytest.approx(result.v_all - result.v_empty, abs=1e-9)
