"""What a training run shows while it runs, in Python as on the command line.

``GRPOTrainer.train()`` shows a progress bar (step, reward, success, loss,
tokens/s, time left) on the console unless ``GRPOConfig.progress`` is false, so the
Python API and ``rounds train`` show the same thing. Every step, the resume and the
warm start's epochs are also logged at INFO on the ``rounds.trainers`` logger, for
programs that collect logs instead (``logging.basicConfig(level=logging.INFO)``).
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

logger = logging.getLogger("rounds.trainers")


class TrainingProgress:
    """The progress display of one ``train()`` call (a context manager).

    Args:
        steps: the run's last step.
        start_step: the first step this call runs (after a resume, the checkpoint's).
        show: draw the bar (log lines are written either way).
        console: where to draw it (default: a console on standard output).
    """

    def __init__(
        self, steps: int, start_step: int, *, show: bool = True, console: Console | None = None
    ) -> None:
        self.steps = steps
        self.start_step = start_step
        self.console = console if console is not None else Console()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        if show:
            self._bar = Progress(
                TextColumn("[bold]GRPO[/] step"),
                MofNCompleteColumn(),
                BarColumn(),
                TextColumn(
                    "reward {task.fields[reward]}  success {task.fields[success]}  "
                    "loss {task.fields[loss]}  {task.fields[speed]}"
                ),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )

    def __enter__(self) -> TrainingProgress:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(
                "train",
                total=self.steps,
                completed=self.start_step,
                reward="-",
                success="-",
                loss="-",
                speed="",
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def note(self, message: str) -> None:
        """A line above the bar (and in the log)."""
        logger.info(message)
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)

    def warm_start_epoch(self, epoch: int, epochs: int, loss: float) -> None:
        self.note(f"warm start: epoch {epoch + 1}/{epochs}, cloning loss {loss:.3f}")

    def step(self, metrics: dict[str, Any]) -> None:
        """Advance to the step just finished, with its reward, success, loss and speed."""
        step = int(metrics["step"])
        logger.info(
            "step %d/%d: reward %+.3f, success %.0f%%, loss %+.4f, %.0f tok/s",
            step + 1,
            self.steps,
            metrics["reward_mean"],
            100 * metrics["success_rate"],
            metrics["loss"],
            metrics["tokens_per_s"],
        )
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task,
                completed=step + 1,
                reward=f"{metrics['reward_mean']:+.3f}",
                success=f"{metrics['success_rate']:.0%}",
                loss=f"{metrics['loss']:+.4f}",
                speed=f"{metrics['tokens_per_s']:.0f} tok/s",
            )
