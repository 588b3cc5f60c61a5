"""``rounds replay RUN_DIR``: the terminal UI over a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rounds.cli.app import app, fail


@app.command("replay")
def replay_command(
    run_dir: Annotated[
        Path, typer.Argument(help="A run directory (from rounds eval or rounds train).")
    ],
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep reading a run that is still being written.")
    ] = False,
    refresh: Annotated[
        float, typer.Option(help="Seconds between reads with --follow.", min=0.1)
    ] = 1.0,
) -> None:
    """Browse a run's episodes turn by turn: rewards, advantages, comparisons, exports."""
    if not run_dir.is_dir():
        fail(
            f"{run_dir} is not a directory; pass a run directory written by rounds eval or rounds train"
        )
    if not (run_dir / "episodes.jsonl").exists() and not (run_dir / "metrics.jsonl").exists():
        fail(f"{run_dir} has neither episodes.jsonl nor metrics.jsonl; is it a run directory?")
    try:
        from rounds.tui.app import ReplayApp
    except ImportError as err:
        fail(f"the replay UI needs textual: pip install 'rounds[tui]' ({err})")
    ReplayApp(run_dir, follow=follow, refresh_s=refresh).run()
