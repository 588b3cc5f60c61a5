"""Every benchmark, one command (``make bench``): ``benchmarks/results.json`` and a Markdown table.

Usage: python benchmarks/run_all.py [--repeats 3] [--only NAME,...] [--out benchmarks]

Runs each benchmark script ``--repeats`` times (each run in a fresh process, with
the arguments below, sized to finish in minutes on a laptop), reads its figures
(its JSON output; the two table-printing ones are parsed), and records for every
figure the median of the runs with min and max, beside the machine it ran on. A
script that fails (a missing extra, no tmux, no TRL) is recorded with its error
and the others still run. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rounds.storage import atomic_write_json, atomic_write_text

HERE = Path(__file__).resolve().parent
Figures = dict[str, float]

#: Figures that are settings of a run, not measurements.
_SETTINGS = {"episodes", "steps", "workers", "seed", "tasks", "turns", "opens", "count", "n"}


#: Fields that name a row of a list of results.
_LABELS = ("env", "name", "shape", "backend", "observation")


def flatten(value: Any, prefix: str = "") -> Figures:
    """Numeric leaves of a JSON value as ``a/b/c`` figures; rows of a list are named by their
    ``env``, ``name``, ``shape`` or ``backend`` field (else their index)."""
    out: Figures = {}
    if isinstance(value, dict):
        if set(value) >= {"median", "min", "max"}:
            return {prefix: float(value["median"])}
        for key, item in value.items():
            if key in _SETTINGS and not isinstance(item, dict | list):
                continue
            out.update(flatten(item, f"{prefix}/{key}" if prefix else str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            name = str(index)
            if isinstance(item, dict):
                labels = [str(item[k]) for k in _LABELS if k in item]
                if "tasks" in item and "samples_per_task" in item:
                    labels.append(f"{item['tasks']}x{item['samples_per_task']}")
                name = "/".join(labels) or name
                item = {k: v for k, v in item.items() if k not in _LABELS}
            out.update(flatten(item, f"{prefix}/{name}" if prefix else name))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out[prefix] = float(value)
    return out


def json_figures(keep: str) -> Callable[[str], Figures]:
    """A reader of a script that prints JSON (all of it, or its last JSON line), keeping the
    figures whose names match the regular expression ``keep``."""

    def read(stdout: str) -> Figures:
        return {k: v for k, v in _json_figures(stdout).items() if re.search(keep, k)}

    return read


def _json_figures(stdout: str) -> Figures:
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        lines = [line for line in stdout.splitlines() if line.startswith(("{", "["))]
        if not lines:
            raise ValueError("no JSON in the output") from None
        data = json.loads(lines[-1])
    if isinstance(data, dict) and "figures" in data:
        data = data["figures"]
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "machine"}
    return flatten(data)


def trainer_figures(stdout: str) -> Figures:
    """``benchmarks/trainer_step.py``'s table: ``NAME step_s tokens tokens_per_s`` rows."""
    out: Figures = {}
    for line in stdout.splitlines():
        match = re.match(r"^(rounds|trl)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", line)
        if match:
            name = match.group(1)
            out[f"{name}/step_s"] = float(match.group(2))
            out[f"{name}/tokens_per_s"] = float(match.group(4))
    if not out:
        raise ValueError("no trainer rows in the output")
    return out


def replay_figures(stdout: str) -> Figures:
    """``benchmarks/replay_open.py``'s table: seconds to rows visible, navigable, all listed."""
    out: Figures = {}
    for line in stdout.splitlines():
        match = re.match(
            r"^(cold|warm) \(.*?\)\s+([\d.]+)\s+([\d.]+) \[.*?\]\s+([\d.]+) \[.*?\]\s+([\d.]+)",
            line,
        )
        if match:
            kind = match.group(1)
            out[f"{kind}/rows_visible_s"] = float(match.group(3))
            out[f"{kind}/navigable_s"] = float(match.group(4))
            out[f"{kind}/all_listed_s"] = float(match.group(5))
    if not out:
        raise ValueError("no replay rows in the output")
    return out


#: name -> (script and arguments, how to read its figures)
BENCHMARKS: dict[str, tuple[list[str], Callable[[str], Figures]]] = {
    "env_step": (
        ["env_step.py", "--episodes", "40", "--json"],
        json_figures(r"(step|reset)_median_ms$"),
    ),
    "patient_turn": (
        ["patient_turn.py", "--episodes", "60"],
        json_figures(r"(turn|reset_first)_median_ms$"),
    ),
    "gui_step": (
        ["gui_step.py", "--episodes", "60", "--miniwob-episodes", "5"],
        json_figures(r"^gui/.*(step|reset)/median_ms$"),
    ),
    "rollout": (
        ["rollout_throughput.py", "--episodes", "8", "--turns", "3", "--repeats", "1", "--json"],
        json_figures(r"per_s/"),
    ),
    "rollout_turns": (
        ["rollout.py", "--quick", "--threads", "1"],
        json_figures(r"(speedup|turn_last_over_first|rollout_s)$"),
    ),
    "trainer_step": (["trainer_step.py", "--steps", "6"], trainer_figures),
    "update_step": (
        ["update_step.py", "--models", "tiny", "--repeats", "3", "--threads", "1", "--json"],
        json_figures(r"(median_s|head_rows)$"),
    ),
    "env_workers": (
        ["env_workers.py", "--episodes", "12", "--workers", "4", "--repeats", "1", "--json"],
        json_figures(r"."),
    ),
    "server": (
        ["server_roundtrip.py", "--steps", "300", "--repeats", "1", "--json"],
        json_figures(r"."),
    ),
    "rollout_server": (
        ["rollout_server.py", "--models", "embedded", "--repeats", "3", "--json"],
        json_figures(r"(generate_s|overhead_s|push_s)$"),
    ),
    "replay_open": (["replay_open.py", "--episodes", "100000", "--opens", "1"], replay_figures),
    "eval_summary": (
        ["eval_summary.py", "--shapes", "200x4,100000x1"],
        json_figures(r"(seconds|peak_rss_mib)$"),
    ),
    "sandbox": (
        ["sandbox.py", "--commands", "200", "--resets", "50", "--episodes", "5", "--json"],
        json_figures(r"(median_ms|p99_ms|episode_s)$"),
    ),
}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        torch_version = str(torch.__version__)
    except ImportError:
        torch_version = "not installed"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "torch": torch_version,
        "load_average_at_start": list(os.getloadavg()),
    }


def run_benchmark(args: list[str], read: Callable[[str], Figures], repeats: int) -> dict[str, Any]:
    runs: list[Figures] = []
    started = time.perf_counter()
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, str(HERE / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=1800,
            env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return {"command": args, "error": " | ".join(tail)}
        try:
            runs.append(read(done.stdout))
        except ValueError as err:
            return {"command": args, "error": f"{err}: {done.stdout[-300:]}"}
    names = sorted(set.intersection(*(set(r) for r in runs)))
    return {
        "command": args,
        "runs": repeats,
        "seconds": time.perf_counter() - started,
        "figures": {
            name: {
                "median": statistics.median(r[name] for r in runs),
                "min": min(r[name] for r in runs),
                "max": max(r[name] for r in runs),
            }
            for name in names
        },
    }


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# rounds benchmarks",
        "",
        f"{results['date']}; {m['cpu']}, {m['cores']} cores, {m['system']}, Python {m['python']}, "
        f"torch {m['torch']}; load average at start {m['load_average_at_start'][0]:.1f}.",
        f"Each figure: the median of {results['repeats']} runs, [min, max].",
        "",
        "| benchmark | figure | median | min | max |",
        "|---|---|---:|---:|---:|",
    ]
    for name, result in results["benchmarks"].items():
        if "error" in result:
            lines.append(f"| {name} | not run: {result['error'][:120]} | | | |")
            continue
        for figure, value in result["figures"].items():
            lines.append(
                f"| {name} | {figure} | {value['median']:.4g} | {value['min']:.4g} | {value['max']:.4g} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.json/.md go")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {', '.join(BENCHMARKS)}")
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "repeats": args.repeats,
        "benchmarks": {},
    }
    for name in chosen:
        script, read = BENCHMARKS[name]
        print(f"{name}: {' '.join(script)} x{args.repeats}", flush=True)
        results["benchmarks"][name] = run_benchmark(script, read, args.repeats)
        atomic_write_json(args.out / "results.json", results)  # a partial run keeps what it has
    table = markdown(results)
    atomic_write_text(args.out / "results.md", table)
    print(table)


if __name__ == "__main__":
    main()
