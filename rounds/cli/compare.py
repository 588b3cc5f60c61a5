"""``rounds compare RUN_A RUN_B ...``: statistics of the difference between evaluation runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from rounds.cli.app import app, console, err_console, fail


@app.command("compare")
def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Run directories; the first is the baseline.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write comparison.md and plots (default: LAST_RUN/comparison)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
) -> None:
    """Compare runs: metric differences with intervals, P(improvement), pass@k, support."""
    from rich.table import Table

    from rounds.compare import (
        CompareError,
        compare_runs,
        comparison_markdown,
        load_run,
        terminal_pass_at_k,
        write_plots,
    )
    from rounds.storage import atomic_write_json, atomic_write_text

    if len(runs) < 2:
        fail("pass at least two run directories: rounds compare RUN_A RUN_B")
    try:
        comparison = compare_runs([load_run(p) for p in runs], seed=seed)
    except CompareError as err:
        fail(str(err))
    for note in comparison["warnings"]:
        err_console.print(f"[yellow]warning:[/] {escape(note)}", soft_wrap=True)
    labels = [r["label"] for r in comparison["runs"]]

    def fmt(stat: dict[str, Any] | None, signed: bool = False) -> str:
        if not stat:
            return "-"
        spec = "+.3f" if signed else ".3f"
        value = stat["value"]
        text = format(value, spec) if value is not None else "nan"
        if stat.get("low") is not None:
            text += f" [{format(stat['low'], spec)}, {format(stat['high'], spec)}]"
        return text

    table = Table(
        title=f"metrics on {comparison['shared_tasks']} shared tasks (baseline {labels[0]}, 95% intervals)"
    )
    table.add_column("metric", style="bold")
    for label in labels:
        table.add_column(label, justify="right")
    for label in labels[1:]:
        table.add_column(f"{label} − {labels[0]}", justify="right")
    for name, stat in comparison["metrics"].items():
        table.add_row(
            name,
            *[fmt(s) for s in stat["runs"]],
            *[fmt(d, signed=True) for d in stat["difference"][1:]],
        )
    console.print(table)
    units = sorted({a["mean"].get("resampled") or "tasks" for a in comparison["aggregates"]})
    passk = Table(
        title="pass@k and aggregates of per-task success",
        caption=f"pass@k and P(improvement) resample tasks; the aggregates resample {' or '.join(units)}.",
    )
    passk.add_column("statistic", style="bold")
    for label in labels:
        passk.add_column(label, justify="right")
    for k in comparison["pass_at_k"][0]:
        passk.add_row(f"pass@{k}", *[fmt(p[k]) for p in comparison["pass_at_k"]])
    for name in comparison["aggregates"][0]:
        passk.add_row(name, *[fmt(a[name]) for a in comparison["aggregates"]])
    passk.add_row(
        "P(improvement)", "-", *[fmt(p) for p in comparison["probability_of_improvement"][1:]]
    )
    console.print(passk)
    for label, support in zip(labels[1:], comparison["support"][1:], strict=True):
        console.print(
            escape(
                f"Support: solved at least once by {labels[0]} but never by {label}: {len(support['only_baseline'])} "
                f"{support['only_baseline'][:10]}; by {label} but never by {labels[0]}: {len(support['only_this_run'])} "
                f"{support['only_this_run'][:10]}; both {support['both']}, neither {support['neither']}."
            ),
            soft_wrap=True,
        )
    console.print(terminal_pass_at_k(comparison))
    target = out or (runs[-1] / "comparison")
    try:
        target.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target / "comparison.md", comparison_markdown(comparison))
        atomic_write_json(target / "comparison.json", comparison)
    except OSError as err:
        fail(f"cannot write the report to {target}: {err.strerror or err}; choose another --out")
    try:
        plots = write_plots(comparison, target)
    except ImportError:
        plots = []
        err_console.print(
            "[yellow]note:[/] install matplotlib (pip install 'rounds[report]') for the PNG plots"
        )
    console.print(
        escape(
            f"Wrote {target / 'comparison.md'}"
            + (f" and {', '.join(p.name for p in plots)}" if plots else "")
        )
    )
