"""Build the recorded runs the replay tests use (deterministic: fixed ids and timestamps).

python tests/data/make_runs.py   (from the repository root) rewrites tests/data/eval_run and tests/data/train_run.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import gymnasium as gym

import rounds  # noqa: F401
from rounds.agents import EpisodeSpec, make_agent, run_episodes
from rounds.stats import summarize_episodes
from rounds.storage import RunDir

HERE = Path(__file__).parent
STAMP = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def record(env_id: str, agent_name: str, specs: list[EpisodeSpec], prefix: str) -> list:
    env = gym.make(env_id)
    agent = make_agent(agent_name, env.unwrapped)
    episodes = []
    for n, rollout in enumerate(
        run_episodes(lambda: gym.make(env_id), agent, specs, env_id=env_id)
    ):
        episode = rollout.episode
        episode.id = f"{prefix}{n:02d}"
        episode.created_at = STAMP
        for turn in episode.turns:
            turn.info.pop("env_latency_s", None)
            turn.latency_s = 0.0
        episodes.append(episode)
    return sorted(
        episodes,
        key=lambda e: (e.env_id, e.task_id or "", e.meta.get("group", 0), e.meta.get("member", 0)),
    )


def main() -> None:
    for name in ("eval_run", "train_run"):
        shutil.rmtree(HERE / name, ignore_errors=True)
    evaluation = RunDir(HERE / "eval_run")
    episodes = record(
        "rounds/DiagGym-v0",
        "bayes",
        [EpisodeSpec(task_id=f"rounds-test-{i:04d}", seed=i) for i in range(6)],
        "dg",
    )
    episodes += record(
        "rounds/Household-v0",
        "expert",
        [
            EpisodeSpec(task_id=t, seed=i)
            for i, t in enumerate(["heat-test-0001", "pick_two-test-0002"])
        ],
        "hh",
    )
    evaluation.write_config({"kind": "eval", "env_id": "rounds/DiagGym-v0", "agent": "bayes"})
    with evaluation.episode_writer() as writer:
        for episode in episodes:
            writer.write(episode)
    evaluation.write_summary(summarize_episodes(episodes))

    training = RunDir(HERE / "train_run")
    training.write_config({"kind": "train", "env_id": "rounds/DiagGym-v0", "model": "tiny"})
    specs = [
        EpisodeSpec(
            task_id="rounds-test-0003",
            seed=k,
            agent_seed=k,
            meta={"step": 0, "group": 0, "member": k},
        )
        for k in range(3)
    ]
    group = record("rounds/DiagGym-v0", "random", specs, "tr")
    for k, episode in enumerate(group):
        for turn in episode.turns:
            turn.advantage = round((k - 1) * 0.7, 3)
    with training.episode_writer() as writer:
        for episode in group:
            writer.write(episode)
    with training.metrics_writer() as writer:
        for step in range(12):
            writer.write(
                {
                    "step": step,
                    "reward_mean": -0.4 + 0.05 * step,
                    "success_rate": min(1.0, 0.08 * step),
                    "pass@1": min(1.0, 0.08 * step),
                    "loss": 0.1 / (step + 1),
                    "kl": 0.001 * step,
                    "entropy": 6.7 - 0.2 * step,
                }
            )


if __name__ == "__main__":
    main()
