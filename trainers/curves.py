"""A training run's learning curves (``curves.png``) and its held-out before -> after.

Read from the run's ``metrics.jsonl`` only, so ``rounds replay`` (which draws the same
series from the same rows) and this picture agree. Held-out success "before" is the first
evaluation (with ``eval_at_start``: before any training, warm start included), "after" the
last one; each with the bootstrap interval the evaluation recorded, and a one-sided Fisher
exact test of "after > before" on the two evaluations' success counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The panels of ``curves.png``: (metrics.jsonl key, title).
PANELS = (
    ("reward_mean", "reward (mean of rollouts)"),
    ("success_rate", "success (rollouts)"),
    ("eval/success", "held-out success"),
    ("kl", "KL to reference"),
    ("entropy", "entropy"),
)


@dataclass(frozen=True)
class HeldOut:
    """One held-out evaluation: success with its interval, and its size."""

    step: int
    success: float
    low: float | None
    high: float | None
    episodes: int

    @property
    def successes(self) -> int:
        return round(self.success * self.episodes)

    def text(self) -> str:
        if self.low is None or self.high is None:
            return f"{self.success:.0%}"
        return f"{self.success:.0%} [{self.low:.0%}, {self.high:.0%}]"


def held_out(rows: Sequence[dict[str, Any]]) -> list[HeldOut]:
    """Every held-out evaluation of the run, in order (the start's at step -1)."""
    return [
        HeldOut(
            step=int(r.get("step", -1)),
            success=float(r["eval/success"]),
            low=r.get("eval/success_low"),
            high=r.get("eval/success_high"),
            episodes=int(r.get("eval/episodes", 0)),
        )
        for r in rows
        if "eval/success" in r
    ]


def improvement_p_value(before: HeldOut, after: HeldOut) -> float:
    """One-sided Fisher exact test that ``after`` succeeds more often than ``before``."""
    from scipy.stats import fisher_exact

    table = [
        [after.successes, after.episodes - after.successes],
        [before.successes, before.episodes - before.successes],
    ]
    return float(fisher_exact(table, alternative="greater").pvalue)


def before_after(rows: Sequence[dict[str, Any]]) -> str | None:
    """ "Held-out success 10% [...] -> 60% [...] (p = ...)", or None with fewer than two evaluations."""
    evaluations = held_out(rows)
    if len(evaluations) < 2:
        return None
    before, after = evaluations[0], evaluations[-1]
    line = f"Held-out success {before.text()} -> {after.text()}"
    if before.episodes and after.episodes:
        line += (
            f" on {after.episodes} episodes of unseen tasks "
            f"(one-sided Fisher p = {improvement_p_value(before, after):.2g})"
        )
    return line + "."


def write_curves(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Draw :data:`PANELS` per training step into ``path`` (a PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.2))
    for axis, (key, title) in zip(axes, PANELS, strict=True):
        points = [
            (int(r["step"]) + 1, float(r[key]))
            for r in rows
            if isinstance(r.get(key), int | float) and isinstance(r.get("step"), int)
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            axis.plot(xs, ys, marker="o" if key.startswith("eval/") else None, markersize=4)
        if key == "eval/success":
            evaluations = [e for e in held_out(rows) if e.low is not None and e.high is not None]
            if evaluations:
                axis.fill_between(
                    [e.step + 1 for e in evaluations],
                    [float(e.low or 0.0) for e in evaluations],
                    [float(e.high or 0.0) for e in evaluations],
                    alpha=0.2,
                )
            axis.set_ylim(-0.02, 1.02)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("GRPO steps done")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    partial = path.with_name(f".{path.name}.partial")
    figure.savefig(partial, format="png", dpi=100)
    plt.close(figure)
    partial.replace(path)
    return path
