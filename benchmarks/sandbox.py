"""Sandbox and SWE env speed, and the SWE baselines' metrics.

Usage: python benchmarks/sandbox.py [--commands 200] [--resets 50] [--episodes 5]
                                    [--backends docker,process] [--baselines] [--json]

Per backend: the warm command round trip (``exec("true")``: median and p99; goal under
50 ms for docker), a reset through the pool (``acquire`` of a warm sandbox with a
task's files after ``release``: median and p99; goal under 300 ms), and the wall time
of a full ``reference`` episode of ``rounds/SWE-v0`` (view, edit, run tests, submit
with the hidden tests). ``--baselines`` also runs ``reference``, ``noop`` and ``busy``
over every bundled task under direct and gated shaping and reports resolved rate,
completion, modification, mean turns, tool-output tokens and mean return.
A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

import rounds  # noqa: F401  (registers the envs)
from rounds.envs.swe.env import SWEEnv
from rounds.envs.swe.tasks import bundled_tasks
from rounds.sandboxes import Sandbox, SandboxPool, SandboxUnavailable, make_sandbox


def summary(values_s: list[float]) -> dict[str, float]:
    ms = np.asarray(values_s) * 1000
    return {
        "median_ms": round(float(np.median(ms)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def bench_backend(backend: str, commands: int, resets: int, episodes: int) -> dict[str, Any]:
    tasks = bundled_tasks()
    repo = tasks[0].repo_bytes()

    def factory(files: Mapping[str, bytes] | None) -> Sandbox:
        return make_sandbox(backend, files=files)

    pool = SandboxPool(factory, max_size=1)
    start = time.perf_counter()
    sandbox = pool.acquire(repo)
    cold_start = time.perf_counter() - start
    for _ in range(5):
        sandbox.exec("true")
    exec_times = []
    for _ in range(commands):
        began = time.perf_counter()
        result = sandbox.exec("true")
        exec_times.append(time.perf_counter() - began)
        assert result.exit_code == 0
    reset_times = []
    for index in range(resets):
        sandbox.exec("echo change >> README.md")
        pool.release(sandbox)
        files = tasks[index % len(tasks)].repo_bytes()
        began = time.perf_counter()
        sandbox = pool.acquire(files)
        reset_times.append(time.perf_counter() - began)
    pool.release(sandbox)
    pool.close()

    env = SWEEnv(backend=backend, shaping="direct")
    episode_times, turn_counts = [], []
    rng = np.random.default_rng(0)
    policy = env.scripted_policies()["reference"]
    env.reset(options={"task_id": tasks[0].instance_id})  # warm the env's pool
    for index in range(episodes):
        began = time.perf_counter()
        env.reset(options={"task_id": tasks[index % len(tasks)].instance_id})
        done, info = False, {}
        while not done:
            _, _, terminated, truncated, info = env.step(policy(env, rng))
            done = terminated or truncated
        episode_times.append(time.perf_counter() - began)
        turn_counts.append(env.turn)
        assert info["metrics"]["resolved"] == 1.0
    env.close()
    return {
        "backend": backend,
        "cold_start_s": round(cold_start, 3),
        "exec_roundtrip": summary(exec_times),
        "pool_reset": summary(reset_times),
        "reference_episode_s": round(statistics.median(episode_times), 3),
        "reference_turns": statistics.median(turn_counts),
    }


def bench_baselines(backend: str) -> list[dict[str, Any]]:
    rows = []
    tasks = bundled_tasks()
    for shaping in ("direct", "gated"):
        env = SWEEnv(backend=backend, shaping=shaping)
        for name in ("reference", "noop", "busy"):
            rng = np.random.default_rng(0)
            policy = env.scripted_policies()[name]
            metrics: dict[str, list[float]] = {}
            returns = []
            for task in tasks:
                env.reset(options={"task_id": task.instance_id})
                total, done, info = 0.0, False, {}
                while not done:
                    _, reward, terminated, truncated, info = env.step(policy(env, rng))
                    total += float(reward)
                    done = terminated or truncated
                returns.append(total)
                for key, value in info["metrics"].items():
                    metrics.setdefault(key, []).append(float(value))
            rows.append(
                {
                    "name": f"{name}/{shaping}",
                    "resolved_rate": statistics.mean(metrics["resolved"]),
                    "completion_rate": statistics.mean(metrics["submitted"]),
                    "modification_rate": statistics.mean(metrics["modified"]),
                    "mean_turns": round(statistics.mean(metrics["turns"]), 2),
                    "tool_output_tokens": round(statistics.mean(metrics["tool_output_tokens"]), 1),
                    "mean_return": round(statistics.mean(returns), 4),
                }
            )
        env.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--resets", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--backends", default="docker,process")
    parser.add_argument("--baselines", action="store_true")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    results: dict[str, Any] = {"backends": [], "tasks": len(bundled_tasks())}
    for backend in args.backends.split(","):
        try:
            results["backends"].append(
                bench_backend(backend, args.commands, args.resets, args.episodes)
            )
        except SandboxUnavailable as err:
            results["backends"].append({"backend": backend, "unavailable": str(err)})
    if args.baselines:
        results["baselines"] = bench_baselines(args.backends.split(",")[0])
    if args.json:
        print(json.dumps(results))
        return
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
