"""Procedural generation of household tasks: a task id determines the home and the goal.

A task id is ``"<type>-<split>-<index>"`` (e.g. ``"heat-test-0042"``); its
SHA-256 seeds the generator, so the same id always gives the same home on any
machine. Generation guarantees solvability: the objects, the appliance or lamp,
and the target receptacle the goal needs all exist, and the goal does not hold
at the start.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re

from rounds.envs.household.catalog import Catalog, Transform
from rounds.envs.household.world import (
    TASK_SHORT_NAMES,
    TRANSFORM_OF,
    Item,
    Receptacle,
    Task,
    TaskType,
    World,
)

#: Tasks per task type in each split.
SPLIT_SIZES = {"train": 2000, "validation": 100, "test": 100}

_TASK_ID = re.compile(r"^(?P<type>[a-z_]+)-(?P<split>train|validation|test)-(?P<index>\d{4,})$")

#: Receptacle kinds any object may be asked to go to, besides the places it is found in.
_GENERIC_TARGETS = frozenset(
    {
        "countertop",
        "diningtable",
        "coffeetable",
        "sidetable",
        "desk",
        "dresser",
        "shelf",
        "cabinet",
        "drawer",
    }
)

_GOALS: dict[TaskType, tuple[str, ...]] = {
    TaskType.PICK_AND_PLACE: ("put a {o} {p} {r}.", "put some {o} {p} {r}."),
    TaskType.LOOK_IN_LIGHT: (
        "look at {o} under the desklamp.",
        "examine the {o} with the desklamp.",
    ),
    TaskType.CLEAN_AND_PLACE: ("put a clean {o} {p} {r}.", "clean some {o} and put it {p} {r}."),
    TaskType.HEAT_AND_PLACE: ("put a hot {o} {p} {r}.", "heat some {o} and put it {p} {r}."),
    TaskType.COOL_AND_PLACE: ("put a cool {o} {p} {r}.", "cool some {o} and put it {p} {r}."),
    TaskType.PICK_TWO: ("put two {o} {p} {r}.", "find two {o} and put them {p} {r}."),
}


@functools.cache
def task_ids(split: str, short_types: tuple[str, ...]) -> tuple[str, ...]:
    """Task ids of ``split``, interleaving the types so any prefix covers all of them."""
    return tuple(
        f"{short}-{split}-{index:04d}"
        for index in range(SPLIT_SIZES[split])
        for short in short_types
    )


def parse_task_id(task_id: str) -> tuple[TaskType, str, int]:
    """``(task type, split, index)`` of a task id; ``ValueError`` if it is malformed."""
    match = _TASK_ID.match(task_id)
    if match is None or match.group("type") not in TASK_SHORT_NAMES:
        raise ValueError(
            f"bad household task id {task_id!r}: expected '<type>-<split>-<index>' with type in "
            f"{sorted(TASK_SHORT_NAMES)}, e.g. 'heat-test-0042'"
        )
    return TASK_SHORT_NAMES[match.group("type")], match.group("split"), int(match.group("index"))


def stable_seed(text: str) -> int:
    """A 64-bit seed from ``text`` that is the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def _room_requirement(catalog: Catalog, room: str, task_type: TaskType) -> set[str]:
    """Receptacle kinds the room can hold that serve the task's appliance or lamp."""
    kinds = {k for k, (_, high) in catalog.rooms[room].receptacles.items() if high >= 1}
    transform = TRANSFORM_OF.get(task_type)
    if transform is not None:
        return {k for k in kinds if catalog.receptacles[k].appliance == transform}
    if task_type is TaskType.LOOK_IN_LIGHT:
        return kinds & set(catalog.lamps["desklamp"])
    return kinds


def _eligible_objects(catalog: Catalog, room: str, task_type: TaskType) -> list[str]:
    room_kinds = {k for k, (_, high) in catalog.rooms[room].receptacles.items() if high >= 1}
    transform = TRANSFORM_OF.get(task_type)
    eligible = []
    for name, kind in catalog.objects.items():
        if room not in kind.rooms or not room_kinds & set(kind.places):
            continue
        if transform is not None and not kind.supports(transform):
            continue
        if task_type is TaskType.LOOK_IN_LIGHT and not kind.light:
            continue
        eligible.append(name)
    return eligible


def _homes_for(kind: str, receptacles: dict[str, Receptacle], catalog: Catalog) -> list[Receptacle]:
    """Receptacles where an object of ``kind`` is found: its places, in its rooms."""
    spec = catalog.objects[kind]
    return [r for r in receptacles.values() if r.kind in spec.places and r.room in spec.rooms]


def generate(
    task_id: str, catalog: Catalog, *, max_rooms: int = 2, max_receptacles: int | None = None
) -> World:
    """Build the home and goal of ``task_id`` (homes of 1 to ``max_rooms`` rooms; with
    ``max_receptacles``, a smaller home: see :func:`_keep_receptacles`)."""
    task_type, _, _ = parse_task_id(task_id)
    rng = random.Random(stable_seed(task_id))
    transform: Transform | None = TRANSFORM_OF.get(task_type)

    anchors = [
        room
        for room in catalog.rooms
        if _room_requirement(catalog, room, task_type)
        and _eligible_objects(catalog, room, task_type)
    ]
    anchor = rng.choice(anchors)
    object_kind = rng.choice(_eligible_objects(catalog, anchor, task_type))
    others = [room for room in catalog.rooms if room != anchor]
    extra = rng.sample(others, k=min(len(others), rng.randint(1, max(1, max_rooms)) - 1))
    rooms = [room for room in catalog.rooms if room == anchor or room in extra]

    # Receptacles, with the anchor room forced to hold what the task needs.
    counts: dict[str, dict[str, int]] = {}
    for room in rooms:
        counts[room] = {
            kind: rng.randint(low, high)
            for kind, (low, high) in catalog.rooms[room].receptacles.items()
        }
    needed = sorted(_room_requirement(catalog, anchor, task_type))
    needs_fixture = task_type in TRANSFORM_OF or task_type is TaskType.LOOK_IN_LIGHT
    if needs_fixture and not any(counts[anchor][k] for k in needed):
        counts[anchor][rng.choice(needed)] = 1
    places = [k for k in catalog.objects[object_kind].places if k in counts[anchor]]
    if not any(counts[anchor][k] for k in places):
        counts[anchor][rng.choice(places)] = 1

    receptacles: dict[str, Receptacle] = {}
    numbers: dict[str, int] = {}
    for room in rooms:
        for kind, count in counts[room].items():
            spec = catalog.receptacles[kind]
            for _ in range(count):
                numbers[kind] = numbers.get(kind, 0) + 1
                name = f"{kind} {numbers[kind]}"
                receptacles[name] = Receptacle(
                    name, kind, room, spec.preposition, spec.openable, spec.appliance
                )
    present = {r.kind for r in receptacles.values()}

    # The target receptacle kind.
    receptacle_kind: str | None = None
    if task_type is not TaskType.LOOK_IN_LIGHT:
        wanted = (set(catalog.objects[object_kind].places) | _GENERIC_TARGETS) & present
        if transform is not None:  # "put a hot apple in the fridge" is not a sensible goal
            wanted = {k for k in wanted if catalog.receptacles[k].appliance is None}
        # The object must be findable somewhere other than the target kind.
        spawnable = {r.kind for r in _homes_for(object_kind, receptacles, catalog)}
        choices = sorted(k for k in wanted if spawnable - {k})
        receptacle_kind = rng.choice(choices)

    # Objects: the task's, a lamp where needed or by chance, then distractors.
    placed: list[tuple[str, str]] = []  # (kind, receptacle name)
    spawn = [
        r.name for r in _homes_for(object_kind, receptacles, catalog) if r.kind != receptacle_kind
    ]
    copies = rng.randint(2, 3) if task_type is TaskType.PICK_TWO else rng.randint(1, 2)
    placed += [(object_kind, rng.choice(spawn)) for _ in range(copies)]
    lamp_spots: list[str] = []
    for room in rooms:
        spots = [
            r.name
            for r in receptacles.values()
            if r.room == room and r.kind in catalog.lamps["desklamp"]
        ]
        must = task_type is TaskType.LOOK_IN_LIGHT and room == anchor
        if spots and (must or rng.random() < 0.4):
            lamp_spots.append(rng.choice(spots))
    for room in rooms:
        room_recs = [r for r in receptacles.values() if r.room == room]
        kinds = [k for k, v in catalog.objects.items() if room in v.rooms and k != object_kind]
        for _ in range(rng.randint(3, 7)):
            kind = rng.choice(kinds)
            fits = [r.name for r in room_recs if r.kind in catalog.objects[kind].places]
            if fits:
                placed.append((kind, rng.choice(fits)))

    if max_receptacles is not None:
        kept = _keep_receptacles(
            task_id,
            receptacles,
            placed,
            lamp_spots,
            object_kind,
            receptacle_kind,
            task_type,
            catalog,
            max_receptacles,
        )
        receptacles = {name: rec for name, rec in receptacles.items() if name in kept}
        placed = [(kind, where) for kind, where in placed if where in kept]
        lamp_spots = [where for where in lamp_spots if where in kept]

    rng.shuffle(placed)
    items: dict[str, Item] = {}
    for kind, where in placed:
        numbers[kind] = numbers.get(kind, 0) + 1
        name = f"{kind} {numbers[kind]}"
        items[name] = Item(name, kind, where)
        receptacles[where].contents.append(name)
    for where in lamp_spots:
        numbers["desklamp"] = numbers.get("desklamp", 0) + 1
        name = f"desklamp {numbers['desklamp']}"
        items[name] = Item(name, "desklamp", where, is_lamp=True)
        receptacles[where].contents.append(name)

    template = rng.choice(_GOALS[task_type])
    preposition = catalog.receptacles[receptacle_kind].preposition if receptacle_kind else ""
    goal = template.format(o=object_kind, p=preposition, r=receptacle_kind)
    task = Task(task_id, task_type, object_kind, receptacle_kind, goal)
    return World(catalog, rooms, receptacles, items, task)


def _keep_receptacles(
    task_id: str,
    receptacles: dict[str, Receptacle],
    placed: list[tuple[str, str]],
    lamp_spots: list[str],
    object_kind: str,
    receptacle_kind: str | None,
    task_type: TaskType,
    catalog: Catalog,
    limit: int,
) -> set[str]:
    """The receptacles a home of at most ``limit`` keeps: first what the task needs (every
    place holding a copy of its object, one receptacle of the target kind, the appliance or
    lamp), then others drawn by the task id's own generator, until ``limit`` (the needed ones
    are kept even beyond it). A smaller home has fewer places to search and fewer commands
    to choose from; the task is the same kind of task."""
    rng = random.Random(stable_seed(f"{task_id}/max_receptacles"))
    needed = {where for kind, where in placed if kind == object_kind}
    if receptacle_kind is not None:
        needed.add(sorted(r for r in receptacles if receptacles[r].kind == receptacle_kind)[0])
    transform = TRANSFORM_OF.get(task_type)
    if transform is not None:
        needed.add(sorted(r.name for r in receptacles.values() if r.appliance == transform)[0])
    if task_type is TaskType.LOOK_IN_LIGHT:
        needed.update(lamp_spots)
    others = sorted(set(receptacles) - needed)
    rng.shuffle(others)
    return needed | set(others[: max(0, limit - len(needed))])
