"""RLPR and SAR: each formula on a hand-computed case, the std filter, and the trainer's component."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import toy_envs  # noqa: F401  (registers toys/Vowels3-v0)
from conftest import TOY_TRAINING

from rounds.trainers import GRPOConfig, GRPOTrainer
from rounds.trainers.info_gain import answer_logprobs, answer_token_logprobs
from rounds.trainers.likelihood import (
    LikelihoodRewards,
    StdFilter,
    debiased_reward,
    perplexity,
    probability_reward,
    self_aligned_reward,
)


def test_probability_reward_is_the_mean_token_probability() -> None:
    # tokens with probabilities 0.9, 0.5 and 0.1: RLPR's PR is their arithmetic mean, 0.5
    # (the sequence likelihood would be 0.045, dominated by the one unlikely token).
    logps = [math.log(0.9), math.log(0.5), math.log(0.1)]
    assert probability_reward(logps) == pytest.approx(0.5)


def test_debiased_reward_clips_to_the_unit_interval() -> None:
    assert debiased_reward(0.7, 0.2) == pytest.approx(0.5)
    assert debiased_reward(0.2, 0.7) == 0.0  # the reasoning lowered the answer's probability
    assert debiased_reward(1.5, 0.0) == 1.0


def test_self_aligned_reward_by_hand() -> None:
    # answer alone: token probs 0.25, 0.25 -> ppl 4; after the question: 0.5, 0.5 -> ppl 2.
    alone = [math.log(0.25)] * 2
    conditioned = [math.log(0.5)] * 2
    assert perplexity(alone) == pytest.approx(4.0)
    assert self_aligned_reward(alone, conditioned) == pytest.approx((4 - 2) / 4)
    # the question makes the answer less likely: negative, clipped at -1
    assert self_aligned_reward(conditioned, alone) == pytest.approx((2 - 4) / 2)
    assert self_aligned_reward([math.log(0.5)], [math.log(0.01)]) == -1.0


def test_std_filter_drops_groups_below_the_moving_threshold() -> None:
    f = StdFilter(ema=0.5)
    assert f.keep([[0.0, 1.0], [0.5, 0.5]]) == [True, True]  # the first batch sets beta
    assert f.threshold == pytest.approx((0.5 + 0.0) / 2)
    assert f.keep([[0.0, 1.0], [0.4, 0.6]]) == [True, False]  # std 0.5 >= 0.25 > std 0.1
    assert f.threshold == pytest.approx(0.5 * 0.25 + 0.5 * 0.3)


def test_one_scorer_for_igpo_rlpr_and_sar() -> None:
    """IGPO's mean log-prob is the mean of the per-token scorer's values."""
    from rounds.models.causal_lm import load_model_and_tokenizer
    from rounds.models.tiny import tiny

    model, tokenizer = load_model_and_tokenizer(str(tiny()))
    contexts = [[1, 2, 3], [4, 5, 6, 7, 8]]
    answer = [9, 10, 11]
    rows = answer_token_logprobs(model, contexts, answer, pad_id=int(tokenizer.pad_token_id))
    means = answer_logprobs(model, contexts, answer, pad_id=int(tokenizer.pad_token_id))
    assert [len(r) for r in rows] == [3, 3]
    assert means == pytest.approx([sum(r) / 3 for r in rows])


def test_trainer_adds_rlpr_and_sar_components(tmp_path: Path) -> None:
    config = GRPOConfig(
        **{
            **TOY_TRAINING,
            "env_id": "toys/Vowels3-v0",
            "steps": 1,
            "tasks_per_step": 2,
            "group_size": 2,
            "progress": False,
            "output_dir": str(tmp_path / "run"),
            "likelihood": LikelihoodRewards(rlpr_weight=1.0, sar_weight=0.5),
        }
    )
    rows: list[dict[str, float]] = []
    trainer = GRPOTrainer(config=config, on_step=rows.append)
    trainer.train()
    row = rows[0]
    assert row["likelihood_passes"] == 4 * 4  # 4 episodes, RLPR 2 + SAR 2 passes each
    assert 0.0 <= row["rlpr_mean"] <= 1.0
    assert -1.0 <= row["sar_mean"] <= 1.0
    episodes = list(trainer.run.episodes())
    assert all(0.0 <= e.turns[-1].info["rlpr"] <= 1.0 for e in episodes)
    assert all(-1.0 <= e.turns[-1].info["sar"] <= 1.0 for e in episodes)
