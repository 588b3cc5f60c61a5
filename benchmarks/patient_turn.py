"""PatientSim-v0 ``facts`` backend: latency of one doctor turn (question -> patient reply).

Usage: python benchmarks/patient_turn.py [--episodes 240] [--split test]

Each episode runs a scripted doctor (``ask-all``, ``random`` and ``greedy`` in
turn) on a case of the split; every ``env.step`` is timed, BM25 matching, the
persona's wording, the Shapley gain and the value update included. Resets are
timed apart (the first reset of a case computes its Shapley values; later ones
reuse them). A benchmark, not a test: the figure depends on the machine. The
target is a median turn under 2 ms.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import gymnasium as gym
import numpy as np

import rounds  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=240)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    env = gym.make("rounds/PatientSim-v0", split=args.split)
    base = env.unwrapped
    policies = base.scripted_policies()
    names = ["ask-all", "random", "greedy"]
    tasks = list(base.task_ids())
    first_resets: list[float] = []
    resets: list[float] = []
    turns: list[float] = []
    seen: set[str] = set()
    for episode in range(args.episodes):
        task = tasks[episode % len(tasks)]
        start = time.perf_counter_ns()
        env.reset(seed=episode, options={"task_id": task})
        (resets if task in seen else first_resets).append((time.perf_counter_ns() - start) / 1e6)
        seen.add(task)
        policy = policies[names[episode % len(names)]]
        rng = np.random.default_rng(episode)
        done = False
        while not done:
            action = policy(base, rng)
            start = time.perf_counter_ns()
            _, _, terminated, truncated, _ = env.step(action)
            turns.append((time.perf_counter_ns() - start) / 1e6)
            done = terminated or truncated
    report = {
        "env": "rounds/PatientSim-v0",
        "patient": "facts",
        "split": args.split,
        "episodes": args.episodes,
        "turns": len(turns),
        "turn_median_ms": round(float(np.median(turns)), 3),
        "turn_p99_ms": round(float(np.percentile(turns, 99)), 3),
        "reset_first_median_ms": round(float(np.median(first_resets)), 3),
        "reset_cached_median_ms": round(float(np.median(resets)), 3) if resets else None,
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
