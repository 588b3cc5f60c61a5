"""How fast ``rounds replay`` opens a large run: 100,000 episodes by default.

Usage: python benchmarks/replay_open.py [--episodes 100000] [--turns 6] [--keep DIR]

Writes a run directory of generated episodes, then times: indexing it from
scratch (first open), showing the first rows, reopening with the saved index,
and the app's episode list filling with every row. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

from rounds.records import Episode, Turn
from rounds.tui.index import EpisodeIndex


def write_run(path: Path, episodes: int, turns: int) -> int:
    path.mkdir(parents=True, exist_ok=True)
    template = Episode(
        env_id="rounds/DiagGym-v0",
        agent="bayes",
        turns=[
            Turn(
                index=t,
                observation="Exam name:\nComplete blood count\nExam results:\n"
                + "White blood cells: 12.1 x10^9/L [H]\n" * 8,
                action="exam: complete blood count",
                reward=0.0,
                reward_components={"outcome": 0.0, "info_gain": 0.1},
            )
            for t in range(turns)
        ],
        meta={"final_observation": "Final diagnosis recorded."},
    ).model_dump(mode="json")
    with (path / "episodes.jsonl").open("w", encoding="utf-8") as handle:
        for i in range(episodes):
            template.update(
                id=f"{i:08x}",
                task_id=f"rounds-test-{i % 200:04d}",
                seed=i,
                outcome=float(i % 3 == 0),
                total_reward=(i % 7) / 7,
            )
            handle.write(json.dumps(template) + "\n")
    (path / "config.yaml").write_text("kind: eval\nenv_id: rounds/DiagGym-v0\nagent: bayes\n")
    return (path / "episodes.jsonl").stat().st_size


async def app_open_times(run: Path, expected: int) -> tuple[float, float]:
    """Seconds from app start until rows are on screen, and until the list holds every episode."""
    from rounds.tui.app import EpisodeListScreen, ReplayApp

    started = time.perf_counter()
    app = ReplayApp(run)
    first = 0.0
    async with app.run_test(size=(120, 40)) as pilot:
        while True:
            await pilot.pause(0.02)
            screen = app.screen
            if not isinstance(screen, EpisodeListScreen):
                continue
            if not first and screen.query_one("#episodes").row_count:
                first = time.perf_counter() - started
            if len(screen.view) >= expected and not screen.loading:
                return first, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--keep", type=Path, help="write the run here and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="rounds-replay-bench-"))
    try:
        size = write_run(work, args.episodes, args.turns)
        path = work / "episodes.jsonl"
        started = time.perf_counter()
        index = EpisodeIndex(path)
        first = index.update(max_rows=2000)
        first_rows = time.perf_counter() - started
        while index.update(max_rows=2000):
            pass
        full = time.perf_counter() - started
        index.save_cache()
        started = time.perf_counter()
        cached = EpisodeIndex(path)
        assert cached.load_cache() and len(cached.rows) == args.episodes
        reopen = time.perf_counter() - started
        cold_first, cold_full = 0.0, 0.0
        index.cache_path.unlink()
        cold_first, cold_full = asyncio.run(app_open_times(work, args.episodes))
        warm_first, warm_full = asyncio.run(app_open_times(work, args.episodes))
        print(f"# replay open: {args.episodes:,} episodes, {size / 1e6:.0f} MB episodes.jsonl")
        print(
            f"first open: first {len(first):,} rows indexed in {first_rows:.3f} s, whole index in {full:.2f} s"
        )
        print(f"reopen with the saved index: {reopen:.3f} s")
        print(
            f"app, first open: rows on screen after {cold_first:.2f} s, all {args.episodes:,} listed after {cold_full:.2f} s"
        )
        print(
            f"app, later opens (saved index): rows on screen after {warm_first:.2f} s, all listed after {warm_full:.2f} s"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
