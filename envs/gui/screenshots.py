"""Screenshots of a recorded built-in episode, rebuilt from its task id and actions.

``episodes.jsonl`` keeps the text of every turn but not its PNG (a screenshot
is about 30 kB); it keeps each screenshot's SHA-256 instead
(``screenshot_sha256`` in the reset info and in each turn's info). The built-in
backend is deterministic, so replaying the recorded actions on the recorded
task id gives the same screens byte for byte, which the hashes confirm. This is
what lets ``rounds replay`` show or save a turn's screenshot.
"""

from __future__ import annotations

import hashlib
from typing import Any

from rounds.envs.gui.env import GUIEnv
from rounds.records import Episode


class ScreenshotMismatch(ValueError):
    """A rebuilt screenshot differs from the recorded hash (the env changed since the run)."""


def episode_screenshots(episode: Episode) -> list[bytes]:
    """PNG bytes of every screen of a built-in ``rounds/GUI-v0`` episode.

    Returns ``len(episode.turns) + 1`` images: element ``t`` is the screen the
    agent saw before acting at turn ``t``; the last is the final screen.

    Raises:
        ValueError: the episode is not a built-in GUI episode (MiniWoB pages are
            not rebuilt), or a rebuilt screen does not match its recorded hash.
    """
    if episode.env_id != "rounds/GUI-v0" or episode.task_id is None:
        raise ValueError(f"not a rounds/GUI-v0 episode: {episode.env_id} {episode.task_id}")
    env = GUIEnv(observation="screenshot", max_turns=max(1, len(episode.turns) + 1))
    try:
        _, info = env.reset(options={"task_id": episode.task_id})
    except ValueError as err:
        raise ValueError(f"cannot rebuild the screens of this episode: {err}") from None
    reset_info: dict[str, Any] = dict(episode.meta.get("reset_info") or {})
    images = [_checked(info["screenshot"], reset_info.get("screenshot_sha256"), "reset")]
    for turn in episode.turns:
        _, _, _, _, info = env.step(turn.action)
        images.append(
            _checked(info["screenshot"], turn.info.get("screenshot_sha256"), f"turn {turn.index}")
        )
    return images


def _checked(png: bytes, recorded: Any, where: str) -> bytes:
    if isinstance(recorded, str) and hashlib.sha256(png).hexdigest() != recorded:
        raise ScreenshotMismatch(
            f"the rebuilt screenshot after {where} differs from the recorded one; "
            "the env has changed since this episode was recorded"
        )
    return png
