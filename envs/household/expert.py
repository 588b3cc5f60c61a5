"""Baseline policies for Household-v0: a privileged expert, a searcher and a random agent.

The expert replans from the true state on every call, so it also finishes a
task that another policy (or a person) started and left half done. It knows
where every object is, which no agent can see; the searcher knows only what
an agent has observed, so a policy cloned from it can do what it does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rounds.envs.household.world import TaskType, World

if TYPE_CHECKING:
    from rounds.text_env import TextEnv


def expert_command(world: World) -> str:
    """The next command of a shortest-path plan for the world's task."""
    task = world.task
    if world.goal_reached():
        return "look"
    held = world.items[world.holding] if world.holding is not None else None
    if task.task_type is TaskType.LOOK_IN_LIGHT:
        if held is not None and held.kind == task.object_kind:
            lamp = next(i for i in world.items.values() if i.is_lamp and i.location is not None)
            assert lamp.location is not None
            return _reach(world, lamp.location) or f"use {lamp.name}"
        return _fetch(world, keep_in=None)

    assert task.receptacle_kind is not None
    target = _destination(world)
    if held is not None and held.kind == task.object_kind:
        transform = task.transform
        if transform is not None and not held.has_state(transform):
            appliance = next(r.name for r in world.receptacles.values() if r.appliance == transform)
            return (
                _reach(world, appliance, need_open=False)
                or f"{transform} {held.name} with {appliance}"
            )
        rec = world.receptacles[target]
        return _reach(world, target) or f"put {held.name} {rec.preposition} {target}"
    return _fetch(world, keep_in=target)


def _destination(world: World) -> str:
    """The target receptacle: for two objects, the one already holding most of them."""
    task = world.task
    assert task.receptacle_kind is not None
    candidates = world.receptacles_of(task.receptacle_kind)
    return max(
        candidates,
        key=lambda r: sum(
            1
            for n in world.receptacles[r].contents
            if world.items[n].kind == task.object_kind and world.items[n].has_state(task.transform)
        ),
    )


def _reach(world: World, name: str, *, need_open: bool = True) -> str | None:
    """The command that brings the agent to ``name`` (and opens it), or None once there."""
    if world.at != name:
        return f"go to {name}"
    rec = world.receptacles[name]
    if need_open and not rec.accessible:
        return f"open {name}"
    return None


def _fetch(world: World, *, keep_in: str | None, known: set[str] | None = None) -> str:
    """Put down whatever is held, then go get an object of the task's kind that is not
    already done (in ``keep_in`` and in the state the task asks for); with ``known``, only
    one of those objects."""
    task = world.task
    if world.holding is not None:
        spot = world.at if world.at is not None else next(iter(world.receptacles))
        rec = world.receptacles[spot]
        return _reach(world, spot) or f"put {world.holding} {rec.preposition} {spot}"
    wanted = [
        item
        for item in world.items.values()
        if item.kind == task.object_kind
        and item.location is not None
        and not (item.location == keep_in and item.has_state(task.transform))
        and (known is None or item.name in known)
    ]
    wanted.sort(key=lambda item: (item.location != world.at, item.name))
    item = wanted[0]
    assert item.location is not None
    return _reach(world, item.location) or f"take {item.name} from {item.location}"


def searcher_command(world: World, rng: np.random.Generator) -> str:
    """The next command of an agent that knows only what it has observed: the receptacles
    (the overview lists them), the places it has been and the objects it has seen there.

    It follows the expert's plan once that plan needs nothing unseen (the task's object,
    and for a look task the lamp, have been seen); until then it explores: it opens a
    closed receptacle it stands at, else goes to a receptacle it has not visited (one at
    random), else to any other."""
    task = world.task
    held = world.items[world.holding] if world.holding is not None else None
    lamp_seen = any(world.items[n].is_lamp for n in world.seen)
    if world.goal_reached():
        return expert_command(world)
    if held is None and _seen_wanted(world):
        target = _destination(world) if task.receptacle_kind is not None else None
        return _fetch(world, keep_in=target, known=world.seen)
    if held is not None and held.kind != task.object_kind:
        return expert_command(world)  # put it down: no hidden facts needed
    if held is not None and (task.task_type is not TaskType.LOOK_IN_LIGHT or lamp_seen):
        return expert_command(world)  # on to the appliance and the target: all listed
    here = world.receptacles[world.at] if world.at is not None else None
    if here is not None and here.openable and not here.is_open:
        return f"open {here.name}"
    others = [name for name in world.receptacles if name != world.at]
    unvisited = [name for name in others if name not in world.visited]
    pool = unvisited or others
    return f"go to {pool[int(rng.integers(len(pool)))]}"


def _seen_wanted(world: World) -> bool:
    """Whether the agent has seen an object the task still needs, where it still is."""
    task = world.task
    target = _destination(world) if task.receptacle_kind is not None else None
    return any(
        item.kind == task.object_kind
        and item.location is not None
        and not (item.location == target and item.has_state(task.transform))
        and item.name in world.seen
        for item in world.items.values()
    )


def expert_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """Scripted policy ``expert``: follows :func:`expert_command` on the env's world."""
    return expert_command(env.world)  # type: ignore[attr-defined]


def searcher_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """Scripted policy ``searcher``: follows :func:`searcher_command` on the env's world."""
    return searcher_command(env.world, rng)  # type: ignore[attr-defined]


def random_policy(env: TextEnv, rng: np.random.Generator) -> str:
    """Scripted policy ``random``: a uniformly random admissible command."""
    commands = env.world.admissible_commands()  # type: ignore[attr-defined]
    return str(commands[int(rng.integers(len(commands)))])
