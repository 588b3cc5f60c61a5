"""Scripted baselines of ``rounds/SWE-v0``, acting from the task's known fix.

- ``reference``: views the file to fix, applies the known fix with ``edit``, runs the
  tests, submits. It must resolve every bundled task (tested).
- ``noop``: submits at once (an empty patch).
- ``busy``: the reward hacker gating exists for. It keeps busy without fixing
  anything: lists files, views and searches, runs the tests, adds a comment to a
  file and removes it again, and submits only on its last turn, with an empty patch.
  Every call is valid, most commands exit 0 and every other edit changes a file,
  so it farms immediate rewards.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rounds.envs.swe.env import SWEEnv
    from rounds.text_env import TextEnv

_BUSY_NOTE = "# reviewed\n"


def _call(name: str, **arguments: object) -> str:
    return json.dumps({"name": name, "arguments": arguments})


def _swe(env: TextEnv) -> SWEEnv:
    from rounds.envs.swe.env import SWEEnv

    if not isinstance(env, SWEEnv):
        raise TypeError(f"SWE baselines need a SWEEnv, got {type(env).__name__}")
    return env


def reference_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """View, apply the known fix edit by edit, run the tests, submit."""
    swe = _swe(env)
    fix = swe.task.fix
    plan = [_call("view", path=fix[0].path)] if fix else []
    plan += [
        _call("edit", command="str_replace", path=e.path, old_str=e.old, new_str=e.new) for e in fix
    ]
    plan += [_call("bash", command="python3 -m pytest -q -p no:cacheprovider"), _call("submit")]
    return plan[min(swe.turn, len(plan) - 1)]


def noop_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """Submit the repository unchanged."""
    return _call("submit")


def busy_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """Valid, rewarded activity that fixes nothing, then an empty submission."""
    swe = _swe(env)
    target = swe.task.fix[0].path if swe.task.fix else "README.md"
    if swe.turn >= swe.max_turns - 2:  # leave the tree as it was, then submit
        if swe.sandbox is not None and swe.sandbox.read_file(target).startswith(
            _BUSY_NOTE.encode()
        ):
            return _call("edit", command="str_replace", path=target, old_str=_BUSY_NOTE, new_str="")
        return _call("submit")
    cycle = [
        _call("bash", command="ls -la"),
        _call("view", path=target),
        _call("edit", command="insert", path=target, insert_line=0, new_str=_BUSY_NOTE),
        _call("bash", command="python3 -m pytest -q -p no:cacheprovider"),
        _call("edit", command="str_replace", path=target, old_str=_BUSY_NOTE, new_str=""),
        _call("search", pattern="def ", path="."),
    ]
    return cycle[swe.turn % len(cycle)]
