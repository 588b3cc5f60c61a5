"""Exact copies of an env's episode state, for prover rollouts (``DESIGN.md``: snapshot contract).

An env lists the attributes that make up an episode (its hidden state, counters, the
last observation) and the read-only objects they may point to (a knowledge base, a
catalog). :func:`snapshot_state` deep-copies the attributes — sharing, not copying, the
read-only objects — together with the env's random generator, and :func:`restore_state`
puts a copy back, so a restored env replays the same actions byte for byte, as often as
a prover needs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

#: The episode state every :class:`~rounds.text_env.TextEnv` holds itself.
TEXT_ENV_STATE = ("task_id", "turn", "_started", "_done", "_last_observation", "choices")


def _memo(shared: Iterable[object]) -> dict[int, Any]:
    """A deepcopy memo that maps each shared object to itself (so it is not copied)."""
    return {id(obj): obj for obj in shared}


def snapshot_state(
    env: Any, names: Iterable[str], *, shared: Iterable[object] = ()
) -> dict[str, Any]:
    """A deep copy of ``env``'s attributes ``names`` (and :data:`TEXT_ENV_STATE`) and of its
    random generator's state; objects in ``shared`` are referenced, not copied."""
    keys = (*TEXT_ENV_STATE, *names)
    state = copy.deepcopy({name: getattr(env, name) for name in keys}, _memo(shared))
    state["np_random_state"] = copy.deepcopy(env.np_random.bit_generator.state)
    return state


def restore_state(
    env: Any, snapshot: Mapping[str, Any], names: Iterable[str], *, shared: Iterable[object] = ()
) -> None:
    """Put a copy of ``snapshot`` (from :func:`snapshot_state`, same ``names``) back into
    ``env``; the snapshot stays usable for further restores."""
    keys = (*TEXT_ENV_STATE, *names)
    missing = [name for name in keys if name not in snapshot]
    if missing or "np_random_state" not in snapshot:
        raise ValueError(
            f"not a snapshot of {type(env).__name__}: it lacks {missing or ['np_random_state']}"
        )
    state = copy.deepcopy({name: snapshot[name] for name in keys}, _memo(shared))
    for name, value in state.items():
        setattr(env, name, value)
    env.np_random.bit_generator.state = copy.deepcopy(snapshot["np_random_state"])
