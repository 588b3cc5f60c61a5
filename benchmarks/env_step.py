"""Step and reset latency of every registered env.

Usage: python benchmarks/env_step.py [--episodes 200] [--policy random] [--env rounds/Household-v0]

Each env is driven by one of its scripted policies; only ``env.step`` and
``env.reset`` are timed (the policy is not). Reports median and p99 latency and
steps per second. A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np

import rounds
from rounds.text_env import TextEnv


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_env(
    env_id: str, episodes: int, policy_name: str, env_kwargs: dict[str, Any]
) -> dict[str, object]:
    env = gym.make(env_id, **env_kwargs)
    base = env.unwrapped
    assert isinstance(base, TextEnv)
    policies = base.scripted_policies()
    policy = policies.get(policy_name) or next(iter(policies.values()))
    rng = np.random.default_rng(0)
    resets: list[float] = []
    steps: list[float] = []
    for episode in range(episodes):
        start = time.perf_counter_ns()
        env.reset(seed=episode)
        resets.append((time.perf_counter_ns() - start) / 1e6)
        done = False
        while not done:
            action = policy(base, rng)
            start = time.perf_counter_ns()
            _, _, terminated, truncated, _ = env.step(action)
            steps.append((time.perf_counter_ns() - start) / 1e6)
            done = terminated or truncated
    env.close()
    return {
        "env": env_id,
        "policy": policy_name,
        "episodes": episodes,
        "steps": len(steps),
        "step_median_ms": statistics.median(steps),
        "step_p99_ms": percentile(steps, 99),
        "steps_per_s": 1000.0 / statistics.fmean(steps),
        "reset_median_ms": statistics.median(resets),
        "reset_p99_ms": percentile(resets, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--policy", default="random", help="scripted policy that picks the actions")
    parser.add_argument("--env", action="append", help="env id (default: every registered env)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    args = parser.parse_args()
    env_ids = args.env or [entry.id for entry in rounds.list_envs()]
    rows = [bench_env(env_id, args.episodes, args.policy, {}) for env_id in env_ids]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"# env step benchmark ({platform.processor() or platform.machine()}, python {platform.python_version()})"
    )
    print(
        f"{'env':<24} {'policy':<8} {'steps':>7} {'step med ms':>12} {'step p99 ms':>12} {'steps/s':>10} {'reset med ms':>13} {'reset p99 ms':>13}"
    )
    for r in rows:
        print(
            f"{r['env']:<24} {r['policy']:<8} {r['steps']:>7} {r['step_median_ms']:>12.4f} {r['step_p99_ms']:>12.4f} "
            f"{r['steps_per_s']:>10.0f} {r['reset_median_ms']:>13.3f} {r['reset_p99_ms']:>13.3f}"
        )


if __name__ == "__main__":
    main()
