"""Comparing evaluation runs: is a difference real, and did training widen or narrow what is solved?

``compare_runs`` puts the first run as the baseline and, for each other run,
reports on the tasks every run shares: each shared metric's mean and its paired
difference from the baseline with a bootstrap interval over tasks, the
probability of improvement (rliable's definition), pass@k at every k both runs
allow, robust aggregates and performance profiles, and the support analysis:
tasks one run solved at least once that the other never solved.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rounds.records import Episode
from rounds.stats import (
    AGGREGATES,
    Interval,
    derived_interval,
    mean_interval,
    pass_at_k_tasks,
    powers_of_two,
    probability_of_improvement_interval,
    profile_polyline,
    profile_steps,
    stratified_intervals,
    task_groups,
)
from rounds.storage import RunDir, RunFileWarning


class CompareError(ValueError):
    """Runs cannot be compared (the message says why and what to do)."""


@dataclass
class RunData:
    """One run directory's episodes, grouped by task."""

    path: Path
    label: str
    config: dict[str, Any]
    groups: dict[str, list[Episode]]
    warnings: list[str] = field(default_factory=list)

    @property
    def env_ids(self) -> set[str]:
        return {e.env_id for group in self.groups.values() for e in group}

    @property
    def samples(self) -> int:
        return min((len(g) for g in self.groups.values()), default=0)


def load_run(path: str | Path) -> RunData:
    """Read a run directory for comparison; bad lines become warnings, an empty run an error."""
    run = RunDir(path)
    if not run.path.is_dir():
        raise CompareError(
            f"{run.path} is not a directory; pass run directories written by rounds eval"
        )
    if not run.episodes_path.exists():
        raise CompareError(f"{run.path} has no episodes.jsonl; is it a run directory?")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunFileWarning)
        episodes = list(run.episodes())
        config = run.read_config()
    if not episodes:
        raise CompareError(f"{run.path}/episodes.jsonl has no readable episodes")
    messages = [f"{run.path.name}: {w.message}" for w in caught]
    return RunData(run.path, run.path.name, config, task_groups(episodes), messages)


def _paired_difference(a: list[float], b: list[float], seed: int) -> Interval:
    """``mean(b) − mean(a)`` over paired tasks with a bootstrap interval (tasks resampled together)."""
    return derived_interval([a, b], lambda x, y: y - x, seed=seed)


def _metric(episode: Episode, name: str) -> float | None:
    if name == "success":
        return float(episode.success)
    if name in episode.metrics:
        return float(episode.metrics[name])
    if name in ("outcome", "total_reward"):
        return float(getattr(episode, name))
    if name == "num_turns":
        return float(episode.num_turns)
    return None


def compare_runs(runs: list[RunData], *, seed: int = 0) -> dict[str, Any]:
    """The comparison of ``runs[1:]`` against ``runs[0]`` on the tasks all of them share."""
    if len(runs) < 2:
        raise CompareError("compare needs at least two run directories")
    notes: list[str] = [w for run in runs for w in run.warnings]
    envs = [run.env_ids for run in runs]
    if any(e != envs[0] for e in envs):
        notes.append(
            "the runs are of different envs ("
            + "; ".join(
                f"{r.label}: {', '.join(sorted(e))}" for r, e in zip(runs, envs, strict=True)
            )
            + "); only shared tasks are compared"
        )
    shared = [t for t in runs[0].groups if all(t in run.groups for run in runs[1:])]
    for run in runs:
        left_out = len(run.groups) - len(shared)
        if left_out:
            notes.append(
                f"{run.label}: tasks left out because not every run has them: {left_out} of {len(run.groups)}"
            )
    if not shared:
        raise CompareError("the runs share no task; compare runs of the same env and split")
    samples = [min(len(run.groups[t]) for t in shared) for run in runs]
    if len(set(samples)) > 1:
        notes.append(
            f"the runs have different samples per task ({', '.join(f'{r.label}: {k}' for r, k in zip(runs, samples, strict=True))}); pass@k is compared up to k = {min(samples)}"
        )
    names = sorted(
        {
            m
            for run in runs
            for t in shared
            for e in run.groups[t]
            for m in [*e.metrics, "success", "outcome", "total_reward", "num_turns"]
        }
    )
    per_task: dict[str, list[list[float]]] = {}
    metrics: dict[str, Any] = {}
    for name in names:
        columns = []
        for run in runs:
            means = []
            for t in shared:
                values = [v for v in (_metric(e, name) for e in run.groups[t]) if v is not None]
                means.append(float(np.mean(values)) if values else math.nan)
            columns.append(means)
        usable = [i for i in range(len(shared)) if all(not math.isnan(c[i]) for c in columns)]
        if not usable:
            continue
        columns = [[c[i] for i in usable] for c in columns]
        per_task[name] = columns
        metrics[name] = {
            "runs": [mean_interval(c, seed=seed).model_dump() for c in columns],
            "difference": [None]
            + [_paired_difference(columns[0], c, seed).model_dump() for c in columns[1:]],
        }
    successes = [[[float(e.success) for e in run.groups[t]] for t in shared] for run in runs]
    ks = powers_of_two(min(samples))
    pass_k = [
        {
            str(k): pass_at_k_tasks(
                [(len(s), int(sum(s))) for s in task_scores], k, seed=seed
            ).model_dump()
            for k in ks
        }
        for task_scores in successes
    ]
    aggregates = []
    profiles = []
    for task_scores in successes:
        aggregates.append(
            {
                name: interval.model_dump()
                for name, interval in stratified_intervals(
                    task_scores, AGGREGATES, seed=seed
                ).items()
            }
        )
        profiles.append(profile_steps([float(np.mean(s)) for s in task_scores]))
    improvement = [None] + [
        probability_of_improvement_interval(successes[0], s, seed=seed).model_dump()
        for s in successes[1:]
    ]
    support: list[dict[str, Any] | None] = [None]
    for task_scores in successes[1:]:
        base_solved = {t for t, s in zip(shared, successes[0], strict=True) if any(s)}
        run_solved = {t for t, s in zip(shared, task_scores, strict=True) if any(s)}
        support.append(
            {
                "only_baseline": sorted(base_solved - run_solved),
                "only_this_run": sorted(run_solved - base_solved),
                "both": len(base_solved & run_solved),
                "neither": len(shared) - len(base_solved | run_solved),
            }
        )
    return {
        "runs": [
            {
                "label": r.label,
                "path": str(r.path),
                "agent": r.config.get("agent"),
                "model": (r.config.get("agent_options") or {}).get("model"),
                "samples_per_task": k,
            }
            for r, k in zip(runs, samples, strict=True)
        ],
        "shared_tasks": len(shared),
        "warnings": notes,
        "metrics": metrics,
        "probability_of_improvement": improvement,
        "pass_at_k": pass_k,
        "aggregates": aggregates,
        "performance_profile": profiles,
        "support": support,
    }


def _table_header(first: str, columns: list[str]) -> list[str]:
    """A Markdown table's header and separator rows."""
    return ["| " + " | ".join([first, *columns]) + " |", "|---" * (len(columns) + 1) + "|"]


def _fmt(stat: dict[str, Any] | None, signed: bool = False) -> str:
    if not stat:
        return "-"
    value, low, high = stat.get("value"), stat.get("low"), stat.get("high")
    spec = "+.3f" if signed else ".3f"
    text = (
        "nan"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )
    return text + (
        f" [{format(low, spec)}, {format(high, spec)}]"
        if low is not None and high is not None
        else ""
    )


def comparison_markdown(comparison: dict[str, Any]) -> str:
    """The comparison as a Markdown report."""
    runs = comparison["runs"]
    labels = [r["label"] for r in runs]
    lines = [
        "# Run comparison",
        "",
        f"Baseline: **{labels[0]}**. Shared tasks: {comparison['shared_tasks']}. Intervals are 95% bootstrap intervals over tasks unless a section says otherwise.",
        "",
    ]
    for run in runs:
        lines.append(
            f"- **{run['label']}**: agent `{run['agent']}`"
            + (f", model `{run['model']}`" if run["model"] else "")
            + f", {run['samples_per_task']} samples per task ({run['path']})"
        )
    if comparison["warnings"]:
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in comparison["warnings"]]
    differences = [f"{label} − {labels[0]}" for label in labels[1:]]
    lines += ["", "## Metrics", "", *_table_header("metric", [*labels, *differences])]
    for name, stat in comparison["metrics"].items():
        cells = [_fmt(s) for s in stat["runs"]] + [
            _fmt(d, signed=True) for d in stat["difference"][1:]
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Probability of improvement over the baseline (success)", ""]
    for label, stat in zip(labels[1:], comparison["probability_of_improvement"][1:], strict=True):
        lines.append(f"- P({label} > {labels[0]}) = {_fmt(stat)}")
    ks = list(comparison["pass_at_k"][0])
    lines += ["", "## pass@k", "", *_table_header("k", labels)]
    for k in ks:
        lines.append(f"| {k} | " + " | ".join(_fmt(p[k]) for p in comparison["pass_at_k"]) + " |")
    units = sorted({a["mean"].get("resampled") or "tasks" for a in comparison["aggregates"]})
    lines += [
        "",
        "## Aggregates of per-task success",
        "",
        f"Intervals resample {' or '.join(units)} (samples within each task when every task "
        "has at least two, else tasks).",
        "",
        *_table_header("statistic", labels),
    ]
    for name in AGGREGATES:
        lines.append(
            f"| {name} | " + " | ".join(_fmt(a[name]) for a in comparison["aggregates"]) + " |"
        )
    lines += ["", "## Support: tasks solved at least once", ""]
    for label, support in zip(labels[1:], comparison["support"][1:], strict=True):
        lines.append(
            f"- {labels[0]} only: {len(support['only_baseline'])} {support['only_baseline'][:20]}"
        )
        lines.append(
            f"- {label} only: {len(support['only_this_run'])} {support['only_this_run'][:20]}"
        )
        lines.append(f"- both: {support['both']}; neither: {support['neither']}")
    return "\n".join(lines) + "\n"


def draw_pass_at_k(ax: Any, comparison: dict[str, Any]) -> None:
    """pass@k curves with their intervals as bands."""
    labels = [r["label"] for r in comparison["runs"]]
    for label, curve in zip(labels, comparison["pass_at_k"], strict=True):
        ks = [int(k) for k in curve]
        values = [curve[k]["value"] for k in curve]
        lows = [
            curve[k]["low"] if curve[k]["low"] is not None else curve[k]["value"] for k in curve
        ]
        highs = [
            curve[k]["high"] if curve[k]["high"] is not None else curve[k]["value"] for k in curve
        ]
        ax.plot(ks, values, marker="o", label=label)
        ax.fill_between(ks, lows, highs, alpha=0.2)
    ax.set(
        xscale="log", xlabel="k", ylabel="pass@k", ylim=(0, 1.02), title="pass@k (95% intervals)"
    )
    ax.legend()


def draw_performance_profiles(ax: Any, comparison: dict[str, Any]) -> None:
    """Each run's exact performance profile: one line per run through the vertices of
    its step function (:func:`~rounds.stats.profile_polyline`), so the drawn curve is
    the fraction of tasks at or above every threshold, not an interpolation."""
    labels = [r["label"] for r in comparison["runs"]]
    for label, profile in zip(labels, comparison["performance_profile"], strict=True):
        ax.plot(*profile_polyline(profile), label=label)
    ax.set(
        xlabel="per-task success threshold τ",
        ylabel="fraction of tasks with success ≥ τ",
        xlim=(-0.02, 1.02),
        ylim=(0, 1.02),
        title="performance profiles",
    )
    ax.legend()


def draw_iqm(ax: Any, comparison: dict[str, Any]) -> None:
    """Each run's IQM of per-task success with its interval."""
    labels = [r["label"] for r in comparison["runs"]]
    for i, aggregate in enumerate(comparison["aggregates"]):
        stat = aggregate["iqm"]
        low = stat["low"] if stat["low"] is not None else stat["value"]
        high = stat["high"] if stat["high"] is not None else stat["value"]
        ax.errorbar(
            stat["value"],
            i,
            xerr=[[stat["value"] - low], [high - stat["value"]]],
            fmt="o",
            capsize=4,
        )
    ax.set(
        yticks=range(len(labels)),
        yticklabels=labels,
        xlabel="IQM of per-task success",
        xlim=(-0.02, 1.02),
        title="IQM (95% bootstrap intervals)",
    )


def write_plots(comparison: dict[str, Any], out: Path) -> list[Path]:
    """pass@k curves, performance profiles and IQM with intervals as PNG files (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(comparison["runs"])
    plots = (
        ("pass_at_k.png", (6.0, 4.0), draw_pass_at_k),
        ("performance_profiles.png", (6.0, 4.0), draw_performance_profiles),
        ("iqm.png", (6.0, 1 + 0.5 * rows), draw_iqm),
    )
    written = []
    for name, size, draw in plots:
        fig, ax = plt.subplots(figsize=size)
        try:
            draw(ax, comparison)
            written.append(out / name)
            fig.savefig(written[-1], dpi=120, bbox_inches="tight")
        finally:
            plt.close(fig)
    return written


def terminal_pass_at_k(comparison: dict[str, Any], width: int = 40) -> Any:
    """The pass@k curves for a terminal: one bar per run at each k, with the interval."""
    from rich.table import Table
    from rich.text import Text

    labels = [r["label"] for r in comparison["runs"]]
    styles = ["cyan", "magenta", "green", "yellow", "blue", "red"]
    table = Table(title="pass@k", show_header=True, box=None)
    table.add_column("k", justify="right", style="bold")
    table.add_column("run")
    table.add_column("pass@k  (0 to 1)")
    table.add_column("value", justify="right")
    for k in comparison["pass_at_k"][0]:
        for i, (label, curve) in enumerate(zip(labels, comparison["pass_at_k"], strict=True)):
            stat = curve[k]
            value = stat["value"] or 0.0
            bar = Text("█" * round(value * width), style=styles[i % len(styles)])
            bar.append("·" * (width - round(value * width)), style="dim")
            table.add_row(k if i == 0 else "", label, bar, _fmt(stat))
    return table
