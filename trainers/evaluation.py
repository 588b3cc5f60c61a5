"""Held-out evaluation during training, computed exactly as ``rounds eval`` computes it.

The episodes are planned by :func:`rounds.agents.evaluate.plan_episodes` (the split's
first ``eval_tasks`` tasks, ``eval_samples_per_task`` samples each, env seeds
``seed + slot``: the one seed scheme) and summarised by
:func:`rounds.stats.summarize_episodes`, so ``eval/pass@1`` at a step is the
``pass@1`` that ``rounds eval --agent hf --tasks T --samples K --seed SEED`` reports
for that checkpoint's weights, up to generation batching.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rounds.agents.evaluate import EvalConfig, plan_episodes
from rounds.agents.loop import EpisodeSpec
from rounds.records import Episode
from rounds.stats import summarize_episodes
from rounds.text_env import TextEnv
from rounds.trainers.config import GRPOConfig


def eval_config(config: GRPOConfig) -> EvalConfig:
    """The ``rounds eval`` settings that the trainer's held-out evaluation corresponds to."""
    return EvalConfig(
        env_id=config.env_id,
        env_kwargs=config_env_kwargs(config),
        agent=config.rollout_agent,
        agent_options={"model": config.model, **config.rollout_agent_options},
        split=config.eval_split,
        tasks=config.eval_tasks,
        samples_per_task=config.eval_samples_per_task,
        seed=config.seed,
        step_timeout_s=config.step_timeout_s,
    )


def config_env_kwargs(config: GRPOConfig) -> dict[str, Any]:
    """``gym.make`` keyword arguments of the run's envs (``env_kwargs`` plus ``max_turns``)."""
    kwargs = dict(config.env_kwargs)
    if config.max_turns is not None:
        kwargs["max_turns"] = config.max_turns
    return kwargs


def plan_evaluation(config: GRPOConfig, env: TextEnv) -> list[EpisodeSpec]:
    """The evaluation's episodes, as ``rounds eval`` plans them."""
    return plan_episodes(eval_config(config), env)


def evaluation_metrics(
    episodes: Sequence[Episode], *, derived: Mapping[str, Any], seed: int
) -> dict[str, float]:
    """``eval/``-prefixed values of :func:`summarize_episodes`: every metric's mean (success,
    the env's metrics and derived metrics), pass@k for k = 1, 2, 4, ... K, and the answer
    entropy where the env reports final answers."""
    summary = summarize_episodes(list(episodes), derived=dict(derived), seed=seed)
    result = {
        f"eval/{name}": float(interval["value"])
        for name, interval in summary.get("metrics", {}).items()
    }
    if "eval/success" not in result and episodes:
        result["eval/success"] = sum(float(e.success) for e in episodes) / len(episodes)
    success = summary.get("metrics", {}).get("success")
    if success is not None:  # its interval, for a run's before -> after (rounds.trainers.curves)
        for bound in ("low", "high"):
            if success.get(bound) is not None:
                result[f"eval/success_{bound}"] = float(success[bound])
    result["eval/episodes"] = float(len(episodes))
    for k, interval in summary.get("pass_at_k", {}).items():
        result[f"eval/pass@{k}"] = float(interval["value"])
    if "answer_entropy" in summary:
        result["eval/answer_entropy"] = float(summary["answer_entropy"]["value"])
    return result
