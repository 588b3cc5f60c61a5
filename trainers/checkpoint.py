"""Checkpoints: saved atomically, found again, and old ones pruned.

``checkpoints/step-000010/`` holds ``model/`` (the weights or LoRA adapter, with
the tokenizer), ``optimizer.pt``, ``scheduler.pt`` and ``trainer_state.json``. A
checkpoint is written under a temporary name and renamed when complete, so a run
killed mid-save still has its previous checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from rounds.storage import JsonlWriter, iter_jsonl

STATE_FILE = "trainer_state.json"


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def latest_checkpoint(directory: Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    if not directory.exists():
        return None
    done = [
        p for p in directory.iterdir() if p.name.startswith("step-") and (p / STATE_FILE).exists()
    ]
    return max(done, key=lambda p: p.name) if done else None


def save_checkpoint(
    directory: Path,
    step: int,
    *,
    model: Any,
    tokenizer: Any,
    optimizer: Any,
    scheduler: Any,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint ``step`` atomically and keep only the newest ``keep``."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(step)
    staging = directory / f".tmp-{checkpoint_name(step)}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    model.save_pretrained(staging / "model")
    tokenizer.save_pretrained(staging / "model")
    torch.save(optimizer.state_dict(), staging / "optimizer.pt")
    torch.save(scheduler.state_dict(), staging / "scheduler.pt")
    (staging / STATE_FILE).write_text(
        json.dumps({"step": step, **state}, indent=2), encoding="utf-8"
    )
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    finished = sorted(p for p in directory.iterdir() if p.name.startswith("step-"))
    for old in finished[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(checkpoint: Path) -> dict[str, Any]:
    data = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def trim_after(path: Path, last_step: int, step_of: Any) -> None:
    """Rewrite a JSONL log keeping rows of steps ``< last_step`` (rows a killed run wrote after its
    last checkpoint would otherwise appear twice)."""
    if not path.exists():
        return
    keep = [
        row
        for row in iter_jsonl(path)
        if (step_of(row) if step_of(row) is not None else -1) < last_step
    ]
    staging = path.with_name(f".{path.name}.tmp")
    staging.unlink(missing_ok=True)
    with JsonlWriter(staging) as writer:
        for row in keep:
            writer.write(row)
    os.replace(staging, path)
