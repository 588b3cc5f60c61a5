"""Step and reset latency of rounds/GUI-v0: built-in apps (with and without screenshots) and MiniWoB.

Usage: python benchmarks/gui_step.py [--episodes 200] [--miniwob-episodes 30] [--skip-miniwob]

The built-in backend is driven by the scripted expert over random task ids
(realistic screens: forms, long lists, dialogs); only ``env.step`` and
``env.reset`` are timed. Targets from the issue: median step under 2 ms
without a screenshot, under 20 ms with one. The MiniWoB backend is driven by
random actions in one pooled headless Chromium (needs the ``[gui]`` extra and
Debian's ``chromium`` and ``chromium-driver``); its first reset includes the
browser start and is reported apart. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import time

import gymnasium as gym
import numpy as np

import rounds  # noqa: F401  (registers the envs)


def _ms(values: list[float]) -> dict[str, float]:
    array = np.asarray(values) * 1000
    return {
        "median_ms": round(float(np.median(array)), 3),
        "p90_ms": round(float(np.percentile(array, 90)), 3),
        "p99_ms": round(float(np.percentile(array, 99)), 3),
        "n": len(values),
    }


def bench_builtin(observation: str, episodes: int) -> dict[str, object]:
    env = gym.make("rounds/GUI-v0", observation=observation).unwrapped
    expert = env.scripted_policies()["expert"]
    ids = env.task_ids("train")
    rng = np.random.default_rng(0)
    resets: list[float] = []
    steps: list[float] = []
    successes = 0
    for _ in range(episodes):
        task = ids[int(rng.integers(len(ids)))]
        start = time.perf_counter()
        env.reset(options={"task_id": task})
        resets.append(time.perf_counter() - start)
        while True:
            action = expert(env, rng)
            start = time.perf_counter()
            _, _, terminated, truncated, info = env.step(action)
            steps.append(time.perf_counter() - start)
            if terminated or truncated:
                successes += int(info["metrics"]["success"])
                break
    return {
        "backend": "apps",
        "observation": observation,
        "step": _ms(steps),
        "reset": _ms(resets),
        "expert_success": successes / episodes,
    }


def bench_floor(episodes: int) -> dict[str, float]:
    """Success of the expert and of random actions on the validation split (turn limit 30)."""
    env = gym.make("rounds/GUI-v0").unwrapped
    policies = env.scripted_policies()
    ids = env.task_ids("validation")
    out: dict[str, float] = {}
    for name in ("expert", "random"):
        rng = np.random.default_rng(1)
        wins, turns = 0, []
        for index in rng.choice(len(ids), episodes, replace=False):
            env.reset(options={"task_id": ids[int(index)]})
            while True:
                _, _, terminated, truncated, info = env.step(policies[name](env, rng))
                if terminated or truncated:
                    wins += int(info["metrics"]["success"])
                    turns.append(env.turn)
                    break
        out[f"{name}_success"] = wins / episodes
        out[f"{name}_mean_turns"] = round(statistics.fmean(turns), 2)
    return out


def bench_miniwob(episodes: int) -> dict[str, object]:
    from rounds.envs.gui.browser import POOL

    env = gym.make("rounds/GUI-v0", backend="miniwob").unwrapped
    random_policy = env.scripted_policies()["random"]
    ids = env.task_ids("train")
    rng = np.random.default_rng(0)
    resets: list[float] = []
    steps: list[float] = []
    first_reset = 0.0
    try:
        for episode in range(episodes):
            start = time.perf_counter()
            env.reset(options={"task_id": ids[int(rng.integers(len(ids)))]})
            elapsed = time.perf_counter() - start
            if episode == 0:
                first_reset = elapsed
            else:
                resets.append(elapsed)
            for _ in range(5):
                action = random_policy(env, rng)
                if action.startswith("finish"):
                    continue
                start = time.perf_counter()
                _, _, terminated, truncated, _ = env.step(action)
                steps.append(time.perf_counter() - start)
                if terminated or truncated:
                    break
    finally:
        env.close()
        POOL.close_all()
    return {
        "backend": "miniwob",
        "observation": "a11y",
        "first_reset_s_with_browser_start": round(first_reset, 3),
        "reset": _ms(resets),
        "step": _ms(steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--miniwob-episodes", type=int, default=30)
    parser.add_argument("--skip-miniwob", action="store_true")
    args = parser.parse_args()
    results: list[dict[str, object]] = [
        bench_builtin("a11y", args.episodes),
        bench_builtin("both", args.episodes // 2),
    ]
    floor = bench_floor(min(args.episodes, 200))
    has_browser = shutil.which("chromium") and shutil.which("chromedriver")
    if not args.skip_miniwob and has_browser:
        results.append(bench_miniwob(args.miniwob_episodes))
    print(f"rounds/GUI-v0 on {platform.processor() or platform.machine()}")
    for result in results:
        step, reset = result["step"], result["reset"]
        print(
            f"  {result['backend']:8} {result['observation']:5}  step median "
            f"{step['median_ms']:.3f} ms (p99 {step['p99_ms']:.3f})  reset median "  # type: ignore[index]
            f"{reset['median_ms']:.3f} ms"  # type: ignore[index]
        )
    print(f"  validation success: {floor}")
    print(json.dumps({"gui": results, "baselines": floor}))


if __name__ == "__main__":
    main()
