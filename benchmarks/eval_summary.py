"""Time of an evaluation's statistics (``summarize_episodes``) at scale.

Usage: python benchmarks/eval_summary.py [--shapes 200x1,200x4,200x500,100000x1]

Each shape ``TxK`` is T tasks with K episodes each, of synthetic DiagGym-like
episodes (success, outcome and six metrics; tasks of varied difficulty). Only
``summarize_episodes`` is timed: every metric's interval, pass@k, the aggregates'
intervals and the performance profile, as ``rounds eval`` writes them to
``summary.json``. A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import numpy as np

from rounds.records import Episode
from rounds.stats import summarize_episodes


def synthetic_run(tasks: int, samples: int, seed: int = 0) -> list[Episode]:
    """T tasks × K episodes; task t succeeds with its own probability."""
    rng = np.random.default_rng(seed)
    difficulty = rng.beta(0.7, 0.7, size=tasks)
    episodes = []
    for t in range(tasks):
        for _ in range(samples):
            success = float(rng.random() < difficulty[t])
            metrics = {"success": success, **{f"m{i}": float(rng.random()) for i in range(6)}}
            episodes.append(
                Episode(
                    env_id="rounds/DiagGym-v0",
                    task_id=f"task-{t}",
                    outcome=success + 0.1,
                    metrics=metrics,
                )
            )
    return episodes


def bench(tasks: int, samples: int) -> dict[str, object]:
    episodes = synthetic_run(tasks, samples)
    start = time.perf_counter()
    summary = summarize_episodes(episodes)
    seconds = time.perf_counter() - start
    return {
        "tasks": tasks,
        "samples_per_task": samples,
        "episodes": len(episodes),
        "seconds": round(seconds, 2),
        "process_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "median": summary["aggregates"]["success"]["median"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shapes", default="200x1,200x4,200x500,100000x1")
    args = parser.parse_args()
    rows = []
    for shape in args.shapes.split(","):
        tasks, samples = (int(x) for x in shape.lower().split("x"))
        rows.append(bench(tasks, samples))
        row = rows[-1]
        print(
            f"{row['tasks']:>7} tasks x {row['samples_per_task']:>4}: {row['episodes']:>7} episodes "
            f"summarised in {row['seconds']:>6} s (process peak RSS so far "
            f"{row['process_peak_rss_mib']} MiB)",
            flush=True,
        )
    print(json.dumps({"machine": platform.processor() or platform.machine(), "rows": rows}))


if __name__ == "__main__":
    main()
