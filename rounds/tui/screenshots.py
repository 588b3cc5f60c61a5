"""The screenshot a recorded turn showed, rebuilt through the env's own hook.

``episodes.jsonl`` keeps a screenshot's SHA-256 (``screenshot_sha256`` in the
reset info and in each turn's info), never its bytes. An env whose screens can
be rebuilt from a record names a rebuild function in its class attribute
``screenshot_rebuilder`` (``"module:function"``, taking an :class:`Episode`
and returning the PNG bytes of every screen, the reset screen first). The
replay finds that class through the env id's Gymnasium registration and
imports the function only when a screenshot is asked for, so the core names no
env and loads no env code to draw a turn.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from rounds.records import Episode

#: The info key (reset info and turn info) that holds a screen's SHA-256.
SCREENSHOT_HASH_KEY = "screenshot_sha256"
#: The env class attribute that names the rebuild function, ``"module:function"``.
REBUILDER_ATTRIBUTE = "screenshot_rebuilder"

Rebuilder = Callable[[Episode], list[bytes]]


class ScreenshotUnavailable(Exception):
    """The turn's screenshot cannot be shown or saved; the message says why."""


def screen_hash(episode: Episode, index: int) -> str | None:
    """The SHA-256 of the screen the agent saw at turn ``index`` (before acting), if any.

    Turn 0 saw the reset screen; turn ``t`` saw the screen turn ``t - 1``'s step returned.
    """
    if not 0 <= index < episode.num_turns:
        return None
    info: Any = episode.meta.get("reset_info") if index == 0 else episode.turns[index - 1].info
    value = info.get(SCREENSHOT_HASH_KEY) if isinstance(info, dict) else None
    return value if isinstance(value, str) else None


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"{target!r} is not of the form 'module:name'")
    return getattr(importlib.import_module(module), name)


def rebuilder(env_id: str) -> Rebuilder:
    """The rebuild function ``env_id``'s env class names.

    Raises:
        ScreenshotUnavailable: the env is not registered here, or names no rebuild function.
    """
    try:
        entry = gym.spec(env_id).entry_point
        env_class = _load(entry) if isinstance(entry, str) else entry
    except (gym.error.Error, ImportError, AttributeError, ValueError) as err:
        raise ScreenshotUnavailable(
            f"{env_id} is not an env installed here ({err}); its screens cannot be rebuilt"
        ) from None
    target = getattr(env_class, REBUILDER_ATTRIBUTE, None)
    if not isinstance(target, str):
        raise ScreenshotUnavailable(f"{env_id} does not say how to rebuild its screenshots")
    try:
        function = _load(target)
    except (ImportError, AttributeError, ValueError) as err:
        raise ScreenshotUnavailable(f"cannot load {target}: {err}") from None
    if not callable(function):
        raise ScreenshotUnavailable(f"{target} is not a function")
    return function  # type: ignore[no-any-return]


def rebuild_screens(episode: Episode) -> list[bytes]:
    """Every screen of ``episode`` (reset screen first), rebuilt by its env's hook.

    Raises:
        ScreenshotUnavailable: no hook, or the hook cannot rebuild this episode (e.g. a
            web page that is not deterministic, or an env changed since the run).
    """
    function = rebuilder(episode.env_id)
    try:
        return list(function(episode))
    except Exception as err:  # the hook is env code: any failure means "not available"
        raise ScreenshotUnavailable(
            f"the screens of this episode cannot be rebuilt: {err}"
        ) from None


def turn_screenshot(screens: list[bytes], episode: Episode, index: int) -> bytes:
    """The PNG of turn ``index`` among ``screens``, checked against its recorded hash.

    Raises:
        ScreenshotUnavailable: the turn had no screenshot, or the rebuilt one differs.
    """
    recorded = screen_hash(episode, index)
    if recorded is None:
        raise ScreenshotUnavailable(f"turn {index + 1} had no screenshot")
    if index >= len(screens) or hashlib.sha256(screens[index]).hexdigest() != recorded:
        raise ScreenshotUnavailable(
            f"the rebuilt screenshot of turn {index + 1} differs from the recorded one"
        )
    return screens[index]
