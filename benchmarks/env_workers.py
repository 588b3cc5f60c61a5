"""Env workers: thread vs process vs Ray on a CPU-heavy pure-Python env, and their overhead.

Usage: python benchmarks/env_workers.py [--episodes 16] [--workers 4] [--repeats 3] [--json]

- throughput: ``run_episodes`` with ``--workers`` concurrent episodes of
  ``bench/Busy-v0`` (about 8 ms of GIL-holding Python per step, 10 steps) and an
  agent that answers at once, on each backend: ``thread`` (the chat loop's thread
  pool, one process), ``process`` (worker processes) and ``ray`` (actors on a local
  Ray instance). Threads share one GIL; workers do not, so with N cores the workers
  approach N times the thread figure.
- overhead: the median round trip of one ``rounds/Household-v0`` step (a step of
  about 30 us) locally and through each backend's worker.

Each figure is the median of ``--repeats`` runs, with min and max. Workers are
started (and warmed with one episode) before the clock starts. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from rounds.agents.base import Action, BaseAgent, Chat
from rounds.agents.loop import EpisodeSpec, run_episodes
from rounds.distributed.workers import EnvWorkers

BUSY = "benchmarks.busy_env:bench/Busy-v0"


class Instant(BaseAgent):
    """Answers at once, so the env is all the time there is."""

    name = "instant"

    def act(self, chat: Chat) -> Action:
        return Action(text="tick")


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def throughput(workers: EnvWorkers, episodes: int, concurrency: int) -> float:
    """Episodes per second of ``episodes`` Busy episodes, ``concurrency`` at a time."""
    specs = [EpisodeSpec(seed=i, agent_seed=i) for i in range(episodes)]
    started = time.perf_counter()
    done = list(
        run_episodes(
            lambda: workers.make(BUSY),
            Instant(),
            specs,
            env_id="bench/Busy-v0",
            concurrency=concurrency,
        )
    )
    cut = [
        r.episode.meta["truncation_reason"] for r in done if "truncation_reason" in r.episode.meta
    ]
    assert not cut, cut
    return episodes / (time.perf_counter() - started)


def step_round_trip_ms(workers: EnvWorkers, steps: int = 300) -> float:
    env = workers.make("rounds/Household-v0")
    env.reset(seed=0)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        _, _, terminated, truncated, _ = env.step("look")
        times.append(time.perf_counter() - started)
        if terminated or truncated:
            env.reset(seed=0)
    env.close()
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="thread,process,ray")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    for backend in args.backends.split(","):
        if backend == "ray":
            import ray

            root = str(Path(__file__).resolve().parent.parent)
            ray.init(
                num_cpus=max(args.workers, os.cpu_count() or 1),
                include_dashboard=False,
                logging_level="ERROR",
                log_to_driver=False,
                runtime_env={"env_vars": {"PYTHONPATH": root}},
            )
        with EnvWorkers(backend, args.workers, cpus_per_worker=0.0) as workers:
            throughput(workers, args.workers, args.workers)  # start and warm the workers
            runs = [throughput(workers, args.episodes, args.workers) for _ in range(args.repeats)]
            trips = [step_round_trip_ms(workers) for _ in range(args.repeats)]
        figures[f"busy_episodes_per_s/{backend}"] = spread(runs)
        figures[f"household_step_ms/{backend}"] = spread(trips)
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "workers": args.workers,
        "figures": figures,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"env workers on {report['machine']} ({args.workers} workers)")
    for name, value in figures.items():
        print(f"  {name:<34} {value['median']:>9.2f}  [{value['min']:.2f}, {value['max']:.2f}]")


if __name__ == "__main__":
    main()
