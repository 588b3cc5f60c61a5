"""Resuming a training run: only with the settings that made it.

A run directory holds one run. Resuming it with another env, model, group size,
shaping or seed would mix two runs in one log and one set of weights, so a resume
compares the new settings with the run's ``config.yaml`` and refuses, naming every
difference, unless only settings that leave the run what it is changed: how long it
runs, what it logs, where and how often it checkpoints and evaluates, and the
operational timeouts. An unreadable ``config.yaml`` refuses too: without it nothing
can be checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rounds.storage import read_yaml
from rounds.trainers.checkpoint import read_state
from rounds.trainers.config import GRPOConfig

#: Settings a resumed run may change: they do not change what is trained or how.
SAFE_ON_RESUME = frozenset(
    {
        "steps",
        "output_dir",
        "resume",
        "log_episodes",
        "report_to",
        "progress",
        "checkpoint_every",
        "keep_checkpoints",
        "eval_every",
        "eval_tasks",
        "eval_samples_per_task",
        "eval_split",
        "step_timeout_s",
        "generation_timeout_s",
    }
)

#: ``rollout`` settings a resumed run may change: where the server is and how it is reached
#: (a relaunched server on another port), not what is sampled or trained.
SAFE_ROLLOUT_ON_RESUME = frozenset(
    {
        "base_url",
        "weight_sync",
        "sync_dir",
        "master_address",
        "request_timeout_s",
        "retries",
        "retry_backoff_s",
    }
)


class ResumeError(ValueError):
    """The run directory cannot be resumed with these settings (the message says why and what to do)."""


def _saved_settings(config_path: Path, checkpoint: Path) -> dict[str, Any]:
    """The run's settings: its ``config.yaml``, or the checkpoint's copy when the file is gone."""
    where = config_path.parent
    if not config_path.exists():
        saved = read_state(checkpoint).get("config")
        if not isinstance(saved, dict):
            raise ResumeError(
                f"cannot resume {where}: it has a checkpoint but no config.yaml to check the "
                "settings against; set resume: false (-s resume=false) to start over, or use "
                "another output_dir."
            )
        return saved
    try:
        data = read_yaml(config_path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ResumeError(
            f"cannot resume {where}: its config.yaml is unreadable ({reason}). Restore it, "
            "set resume: false (-s resume=false) to start over, or use another output_dir."
        ) from err
    if not isinstance(data, dict):
        raise ResumeError(
            f"cannot resume {where}: its config.yaml is not a mapping of settings "
            f"(it holds {type(data).__name__}). Restore it, set resume: false to start over, "
            "or use another output_dir."
        )
    return data


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_resume(config: GRPOConfig, config_path: Path, checkpoint: Path) -> None:
    """Raise :class:`ResumeError` unless ``config`` may continue the run saved at ``config_path``.

    Args:
        config: the settings of the resuming trainer.
        config_path: the run directory's ``config.yaml``.
        checkpoint: the checkpoint being resumed from.
    """
    saved = {k: v for k, v in _saved_settings(config_path, checkpoint).items() if k != "kind"}
    try:
        previous = GRPOConfig.model_validate(saved).model_dump(mode="json")
    except ValidationError as err:
        raise ResumeError(
            f"cannot resume {config_path.parent}: its config.yaml is not a valid training "
            f"config ({err.error_count()} problem(s): {err.errors()[0]['msg']}). Restore it, set "
            "resume: false to start over, or use another output_dir."
        ) from err
    current = config.model_dump(mode="json")
    for settings in (previous, current):
        if isinstance(settings.get("rollout"), dict):
            settings["rollout"] = {
                k: v for k, v in settings["rollout"].items() if k not in SAFE_ROLLOUT_ON_RESUME
            }
    changed = [
        f"{key} ({_show(previous[key])} -> {_show(current[key])})"
        for key in current
        if key not in SAFE_ON_RESUME and previous.get(key) != current[key]
    ]
    if changed:
        raise ResumeError(
            f"cannot resume {config_path.parent}: these settings differ from the run's "
            f"config.yaml: {'; '.join(changed)}. Use the run's settings, another output_dir, "
            "or resume: false (-s resume=false) to start this run over. A resume may change "
            f"only: {', '.join(sorted(SAFE_ON_RESUME))}."
        )
