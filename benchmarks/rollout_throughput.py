"""Rollout throughput on the embedded tiny model: batched concurrent generation against one
episode at a time.

Usage: python benchmarks/rollout_throughput.py [--episodes 16] [--turns 4] [--tokens 32] [--repeats 3] [--json]

The ``hf`` agent on the embedded tiny model (CPU) plays ``rounds/Household-v0``
episodes of ``--turns`` turns with replies of up to ``--tokens`` tokens. ``batched``
runs every episode at once (one ``act_batch`` generation call per round, the
trainer's rollout); ``sequential`` runs them one at a time. Reports episodes/s and
generated tokens/s, each the median of ``--repeats`` runs with min and max (the model
is loaded and warmed first). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any

import rounds  # noqa: F401  (registers the envs)
from rounds.agents.loop import EpisodeSpec, run_episodes
from rounds.agents.registry import make_agent
from rounds.registration import make

ENV = "rounds/Household-v0"


def play(agent: Any, episodes: int, turns: int, concurrency: int) -> tuple[float, float]:
    """Episodes/s and generated tokens/s of one run."""
    specs = [EpisodeSpec(seed=i, agent_seed=i) for i in range(episodes)]
    started = time.perf_counter()
    rollouts = list(
        run_episodes(
            lambda: make(ENV, max_turns=turns),
            agent,
            specs,
            env_id=ENV,
            concurrency=concurrency,
            straggler_s=None,
        )
    )
    seconds = time.perf_counter() - started
    tokens = sum(t.tokens.completion for r in rollouts for t in r.episode.turns)
    return episodes / seconds, tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    env = make(ENV).unwrapped
    agent = make_agent("hf", env, model="tiny", max_new_tokens=args.tokens, seed=0)  # type: ignore[arg-type]
    play(agent, 2, 1, 2)  # load and warm
    figures: dict[str, Any] = {}
    for mode, concurrency in (("batched", args.episodes), ("sequential", 1)):
        runs = [play(agent, args.episodes, args.turns, concurrency) for _ in range(args.repeats)]
        for index, name in enumerate(("episodes_per_s", "tokens_per_s")):
            values = [run[index] for run in runs]
            figures[f"{name}/{mode}"] = {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
            }
    agent.close()
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "figures": figures,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"hf agent, tiny model, {args.episodes} episodes x {args.turns} turns on {report['machine']}"
    )
    for name, value in figures.items():
        print(f"  {name:<28} {value['median']:>9.2f}  [{value['min']:.2f}, {value['max']:.2f}]")


if __name__ == "__main__":
    main()
