"""How fast ``rounds replay`` shows rows a user can see and move through: 100,000 episodes.

Usage: python benchmarks/replay_open.py [--episodes 100000] [--turns 6] [--opens 3] [--keep DIR]

Writes a run directory of generated episodes, then opens it with the real command in a
real terminal (a detached tmux pane of 120x40) and reads the screen as the user sees
it (``tmux capture-pane``), timing from the moment the command is started:

- rows visible: the first episode's row is on screen;
- navigable: after ``j`` is sent (as soon as rows are visible), the status line shows
  the cursor on the second episode;
- all listed: the status line counts every episode and indexing has finished;
- key latency: five more ``j`` presses, one at a time, each timed until the status
  line shows the cursor moved (includes tmux's own round trip, about 20 ms polling).

The first open has no saved index (cold); later opens reuse ``.episodes.index.json``
(warm). The operating system's file cache is warm in both (the run was just written).
A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rounds.records import Episode, Turn

POLL_S = 0.02


def write_run(path: Path, episodes: int, turns: int) -> int:
    """A run of ``episodes`` DiagGym-like episodes of ``turns`` turns; returns its size in bytes."""
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
                info={"belief_entropy": 1.5 - 0.1 * t},
            )
            for t in range(turns)
        ],
        meta={
            "final_observation": "Final diagnosis recorded.",
            "replay_metrics": ["correct", "precision"],
            "replay_series": ["belief_entropy"],
        },
    ).model_dump(mode="json")
    with (path / "episodes.jsonl").open("w", encoding="utf-8") as handle:
        for i in range(episodes):
            template.update(
                id=f"{i:08x}",
                task_id=f"bench-task-{i:06d}",
                seed=i,
                outcome=float(i % 3 == 0),
                total_reward=(i % 7) / 7,
                metrics={"correct": float(i % 3 == 0), "precision": (i % 5) / 5},
            )
            handle.write(json.dumps(template) + "\n")
    (path / "config.yaml").write_text("kind: eval\nenv_id: rounds/DiagGym-v0\nagent: bayes\n")
    return (path / "episodes.jsonl").stat().st_size


class Pane:
    """The replay running in a detached tmux pane, read as text."""

    def __init__(self, run: Path, width: int = 120, height: int = 40) -> None:
        # A server of its own per open: a closing server must not meet the next session.
        socket = f"rounds-bench-{os.getpid()}-{time.monotonic_ns()}"
        self.tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
        self.stamp = run.parent / f".{run.name}.imported"
        self.stamp.unlink(missing_ok=True)
        # The command notes when Python has started and imported the replay, so the app's
        # own time can be told from the interpreter's.
        program = (
            "import sys, time, pathlib, rounds.tui.app; from rounds.cli import main; "
            f"pathlib.Path({str(self.stamp)!r}).write_text(repr(time.time())); main()"
        )
        command = shlex.join([sys.executable, "-c", program, "replay", str(run)])
        self.started_wall = time.time()
        self.started = time.perf_counter()
        subprocess.run(
            [
                *self.tmux,
                "new-session",
                "-d",
                "-s",
                "bench",
                "-x",
                f"{width}",
                "-y",
                f"{height}",
                command,
            ],
            check=True,
            env={**os.environ, "TERM": "xterm-256color"},
        )

    def text(self) -> str:
        return subprocess.run(
            [*self.tmux, "capture-pane", "-p", "-t", "bench"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    def wait_for(self, pattern: str, *, absent: str = "", timeout: float = 300.0) -> float:
        """Seconds from the start until ``pattern`` (a regular expression, one line) is on
        screen and ``absent`` is not."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            screen = self.text()
            if re.search(pattern, screen, re.MULTILINE) and not (absent and absent in screen):
                return time.perf_counter() - self.started
            time.sleep(POLL_S)
        raise TimeoutError(f"{pattern!r} not on screen after {timeout} s:\n{self.text()}")

    def imports_s(self) -> float:
        """Seconds from the start until Python had imported the replay."""
        return float(self.stamp.read_text()) - self.started_wall

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", "bench", *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], check=False, capture_output=True)


def open_once(run: Path, episodes: int) -> tuple[float, float, float, float, float]:
    """(imports done, rows visible, navigable, all listed, median key latency) in seconds
    for one open; the key latency is of five more ``j`` presses sent one at a time right
    after the first (while the index is still being built, for a large run)."""
    pane = Pane(run)
    try:
        visible = pane.wait_for("bench-task-000000")
        pane.keys("j")
        navigable = pane.wait_for(r"^ 2/[\d,]+ shown")
        latencies = []
        for position in range(3, 8):
            sent = time.perf_counter()
            pane.keys("j")
            pane.wait_for(rf"^ {position}/[\d,]+ shown")
            latencies.append(time.perf_counter() - sent)
        listed = pane.wait_for(rf"\b{episodes:,} in the run", absent="indexing")
        pane.keys("q")
        return pane.imports_s(), visible, navigable, listed, statistics.median(latencies)
    finally:
        pane.close()
        pane.stamp.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--opens", type=int, default=3, help="warm opens to time (after one cold)")
    parser.add_argument("--keep", type=Path, help="write the run here and keep it")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("this benchmark opens the replay in a real terminal: apt-get install -y tmux")
    work = args.keep or Path(tempfile.mkdtemp(prefix="rounds-replay-bench-"))
    try:
        size = write_run(work, args.episodes, args.turns)
        cache = work / ".episodes.index.json"
        cache.unlink(missing_ok=True)
        cold = [open_once(work, args.episodes)]
        warm = [open_once(work, args.episodes) for _ in range(args.opens)]
        cold_again = []
        for _ in range(max(0, args.opens - 1)):
            cache.unlink(missing_ok=True)
            cold_again.append(open_once(work, args.episodes))
        cold += cold_again
        print(
            f"# rounds replay, real terminal (tmux 120x40): {args.episodes:,} episodes of "
            f"{args.turns} turns, {size / 1e6:.0f} MB episodes.jsonl, {os.cpu_count()} CPUs"
        )
        print(
            "seconds from the command's start (in brackets: after Python has started and "
            "imported the replay, i.e. the app's own time); median, then worst, of the opens"
        )
        print(
            "open              imports    rows visible         navigable (j moved)  "
            "all listed  key latency"
        )
        for name, runs in (("cold (no index)", cold), ("warm (saved)", warm)):
            cells = []
            for column in (1, 2):
                own = [r[column] - r[0] for r in runs]
                median = statistics.median(r[column] for r in runs)
                cells.append(f"{median:5.2f} [{statistics.median(own):.2f}, max {max(own):.2f}]")
            imports = statistics.median(r[0] for r in runs)
            listed = statistics.median(r[3] for r in runs)
            latency = statistics.median(r[4] for r in runs)
            print(
                f"{name:<17} {imports:5.2f}   {cells[0]}  {cells[1]}  {listed:6.2f}"
                f"      {latency:.3f}   ({len(runs)} opens)"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
