"""The state of one household episode and the rules of ALFWorld's command grammar.

Each command is a method of :class:`World` that changes the state and returns
the observation, or raises :class:`~rounds.actions.InvalidAction` with a message
that says what is wrong and what to do instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from rounds.actions import InvalidAction
from rounds.envs.household.catalog import Catalog, Transform


class TaskType(StrEnum):
    """ALFWorld's six task types (values are ALFWorld's names)."""

    PICK_AND_PLACE = "pick_and_place_simple"
    LOOK_IN_LIGHT = "look_at_obj_in_light"
    CLEAN_AND_PLACE = "pick_clean_then_place_in_recep"
    HEAT_AND_PLACE = "pick_heat_then_place_in_recep"
    COOL_AND_PLACE = "pick_cool_then_place_in_recep"
    PICK_TWO = "pick_two_obj_and_place"


#: Short names used in task ids and the ``task_types`` argument.
TASK_SHORT_NAMES: dict[str, TaskType] = {
    "pick": TaskType.PICK_AND_PLACE,
    "look": TaskType.LOOK_IN_LIGHT,
    "clean": TaskType.CLEAN_AND_PLACE,
    "heat": TaskType.HEAT_AND_PLACE,
    "cool": TaskType.COOL_AND_PLACE,
    "pick_two": TaskType.PICK_TWO,
}

TRANSFORM_OF: dict[TaskType, Transform] = {
    TaskType.CLEAN_AND_PLACE: "clean",
    TaskType.HEAT_AND_PLACE: "heat",
    TaskType.COOL_AND_PLACE: "cool",
}

#: The adjective a transform leaves on an object.
STATE_WORD: dict[Transform, str] = {"clean": "clean", "heat": "hot", "cool": "cool"}


@dataclass(frozen=True)
class Task:
    """What the agent must achieve, with the text it is given."""

    task_id: str
    task_type: TaskType
    object_kind: str
    receptacle_kind: str | None
    goal: str

    @property
    def transform(self) -> Transform | None:
        return TRANSFORM_OF.get(self.task_type)

    @property
    def count(self) -> int:
        return 2 if self.task_type is TaskType.PICK_TWO else 1


@dataclass
class Receptacle:
    """A place objects are in or on (a fridge, a countertop); openable ones start closed."""

    name: str
    kind: str
    room: str
    preposition: str
    openable: bool
    appliance: Transform | None
    is_open: bool = False
    contents: list[str] = field(default_factory=list)

    @property
    def accessible(self) -> bool:
        """Whether what is in or on it can be seen and reached."""
        return self.is_open or not self.openable


@dataclass
class Item:
    """An object: something to pick up, or a lamp to switch on."""

    name: str
    kind: str
    location: str | None
    is_lamp: bool = False
    switched_on: bool = False
    clean: bool = False
    hot: bool = False
    cool: bool = False

    def has_state(self, transform: Transform | None) -> bool:
        """Whether the item is in the state ``transform`` leaves (always true for ``None``)."""
        if transform is None:
            return True
        return {"clean": self.clean, "heat": self.hot, "cool": self.cool}[transform]

    def description(self) -> str:
        if self.is_lamp:
            return f"This is a {self.name}. It is switched {'on' if self.switched_on else 'off'}."
        states = [
            w for w, on in (("clean", self.clean), ("hot", self.hot), ("cool", self.cool)) if on
        ]
        return f"This is {with_article(' '.join([*states, self.name]))}."


def with_article(name: str) -> str:
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def list_things(names: list[str]) -> str:
    """ALFWorld-style enumeration: ``"an apple 1, a mug 2, and a knife 1"``."""
    if not names:
        return "nothing"
    phrases = [with_article(n) for n in names]
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + ", and " + phrases[-1]


class World:
    """A generated home and the agent's place in it."""

    def __init__(
        self,
        catalog: Catalog,
        rooms: list[str],
        receptacles: dict[str, Receptacle],
        items: dict[str, Item],
        task: Task,
    ) -> None:
        self.catalog = catalog
        self.rooms = rooms
        self.receptacles = receptacles
        self.items = items
        self.task = task
        self.at: str | None = None
        self.holding: str | None = None
        self.visited: set[str] = set()
        self.opened: set[str] = set()
        self.examined: set[str] = set()
        #: Objects the agent has seen (in an open or open-topped receptacle it was shown).
        #: Messages name only these, so a guessed name ("cup 1") learns nothing it has not seen.
        self.seen: set[str] = set()
        self._kinds_of_receptacles: dict[str, list[str]] = {}
        for rec in receptacles.values():
            self._kinds_of_receptacles.setdefault(rec.kind, []).append(rec.name)

    # ------------------------------------------------------------------ texts

    def overview(self) -> str:
        """What the agent sees on arrival: every receptacle, room by room."""
        lines = []
        for room in self.rooms:
            names = [r.name for r in self.receptacles.values() if r.room == room]
            lines.append(f"- {room}: {list_things(names)}.")
        if len(self.rooms) == 1:
            intro = f"the {self.rooms[0]}"
        else:
            rooms = [with_article(room) for room in self.rooms]
            intro = "a home with " + ", ".join(rooms[:-1]) + " and " + rooms[-1]
        return (
            f"You are in the middle of {intro}. Looking quickly around you, you see:\n"
            + "\n".join(lines)
        )

    def contents_text(self, rec: Receptacle) -> str:
        if not rec.accessible:
            return f"The {rec.name} is closed."
        self.seen.update(rec.contents)
        things = list_things(rec.contents)
        if rec.openable:
            return f"The {rec.name} is open. In it, you see {things}."
        return f"{'In' if rec.preposition == 'in' else 'On'} the {rec.name}, you see {things}."

    # ---------------------------------------------------------------- queries

    def receptacles_of(self, kind: str) -> list[str]:
        return self._kinds_of_receptacles.get(kind, [])

    def item_kind_count(self, kind: str) -> int:
        return sum(1 for item in self.items.values() if item.kind == kind)

    def goal_reached(self) -> bool:
        """Whether the task's goal holds in the current state."""
        task = self.task
        if task.task_type is TaskType.LOOK_IN_LIGHT:
            return self._holding_kind(task.object_kind) and self._lamp_on_here()
        assert task.receptacle_kind is not None
        for rec_name in self.receptacles_of(task.receptacle_kind):
            matching = sum(
                1
                for name in self.receptacles[rec_name].contents
                if self.items[name].kind == task.object_kind
                and self.items[name].has_state(task.transform)
            )
            if matching >= task.count:
                return True
        return False

    def subgoals(self) -> list[bool]:
        """Whether each subgoal of the task holds now; the last one is the goal."""
        task = self.task
        holding = self._holding_kind(task.object_kind)
        if task.task_type is TaskType.LOOK_IN_LIGHT:
            at_lamp = holding and any(self.items[n].is_lamp for n in self._contents_here())
            return [holding, at_lamp, self.goal_reached()]
        if task.task_type is TaskType.PICK_TWO:
            assert task.receptacle_kind is not None
            one_placed = any(
                self.items[n].kind == task.object_kind
                for r in self.receptacles_of(task.receptacle_kind)
                for n in self.receptacles[r].contents
            )
            return [holding, one_placed, self.goal_reached()]
        if task.transform is not None:
            transformed = any(
                item.kind == task.object_kind and item.has_state(task.transform)
                for item in self.items.values()
            )
            return [holding, transformed, self.goal_reached()]
        return [holding, self.goal_reached()]

    def _holding_kind(self, kind: str) -> bool:
        return self.holding is not None and self.items[self.holding].kind == kind

    def _contents_here(self) -> list[str]:
        if self.at is None:
            return []
        rec = self.receptacles[self.at]
        return rec.contents if rec.accessible else []

    def _lamp_on_here(self) -> bool:
        return any(
            self.items[n].is_lamp and self.items[n].switched_on for n in self._contents_here()
        )

    def admissible_commands(self) -> list[str]:
        """Every command that is valid in the current state (ALFWorld's admissible commands)."""
        commands = [f"go to {name}" for name in self.receptacles if name != self.at]
        if self.at is not None:
            rec = self.receptacles[self.at]
            if rec.openable:
                commands.append(f"{'close' if rec.is_open else 'open'} {rec.name}")
            if rec.accessible:
                for name in rec.contents:
                    item = self.items[name]
                    if item.is_lamp:
                        commands.append(f"use {name}")
                    elif self.holding is None:
                        commands.append(f"take {name} from {rec.name}")
                    commands.append(f"examine {name}")
                if self.holding is not None:
                    commands.append(f"put {self.holding} {rec.preposition} {rec.name}")
            if self.holding is not None and rec.appliance is not None:
                kind = self.catalog.objects[self.items[self.holding].kind]
                if kind.supports(rec.appliance):
                    commands.append(f"{rec.appliance} {self.holding} with {rec.name}")
            commands.append(f"examine {rec.name}")
        if self.holding is not None:
            commands.append(f"examine {self.holding}")
        commands += ["inventory", "look"]
        return commands

    # --------------------------------------------------------------- resolving

    def resolve_receptacle(self, name: str) -> Receptacle:
        """The receptacle called ``name`` (``"fridge"`` suffices when there is one fridge)."""
        if name in self.receptacles:
            return self.receptacles[name]
        same_kind = self.receptacles_of(name)
        if len(same_kind) == 1:
            return self.receptacles[same_kind[0]]
        if same_kind:
            raise InvalidAction(
                f"There are several of those: {', '.join(same_kind)}. Name one, e.g. {same_kind[0]}."
            )
        if name in self.seen or name in self.catalog.objects or name in self.catalog.lamps:
            raise InvalidAction(f"The {name} is an object, not a place to go to or put things in.")
        # An unseen object gets the same answer as a name that exists nowhere: true for
        # both, and it does not confirm that a guessed name exists.
        raise InvalidAction(
            f"You have not seen a {name!r}, and it is not a place in this home. "
            f"Places here: {', '.join(self.receptacles)}."
        )

    def resolve_item(self, name: str, scope: list[str], where: str) -> Item:
        """The item called ``name`` among ``scope`` (``"apple"`` suffices when one is in scope)."""
        if name in scope:
            return self.items[name]
        same_kind = [n for n in scope if self.items[n].kind == name]
        if len(same_kind) == 1:
            return self.items[same_kind[0]]
        if same_kind:
            raise InvalidAction(
                f"Which {name}? {where.capitalize()} you can see {list_things(same_kind)}."
            )
        seen = (
            f"{where.capitalize()} you see {list_things(scope)}."
            if scope
            else f"There is nothing {where}."
        )
        raise InvalidAction(f"There is no {name} {where}. {seen}")

    def _require_at(self, rec: Receptacle, doing: str) -> None:
        if self.at != rec.name:
            raise InvalidAction(f"You are not at the {rec.name}. Go there first: go to {rec.name}.")
        if doing and not rec.accessible:
            raise InvalidAction(f"The {rec.name} is closed. Open it first: open {rec.name}.")

    def _held(self, name: str) -> Item:
        if self.holding is None:
            raise InvalidAction(f"You are not carrying anything. Take the {name} first.")
        item = self.resolve_item(name, [self.holding], "in your hands")
        return item

    # ---------------------------------------------------------------- commands

    def go_to(self, name: str) -> str:
        rec = self.resolve_receptacle(name)
        if self.at == rec.name:
            raise InvalidAction(f"You are already at the {rec.name}. {self.contents_text(rec)}")
        self.at = rec.name
        self.visited.add(rec.name)
        room = f" in the {rec.room}" if len(self.rooms) > 1 else ""
        return f"You arrive at the {rec.name}{room}. {self.contents_text(rec)}"

    def open(self, name: str) -> str:
        rec = self.resolve_receptacle(name)
        if not rec.openable:
            raise InvalidAction(f"The {rec.name} cannot be opened. {self.contents_text(rec)}")
        self._require_at(rec, "")
        if rec.is_open:
            raise InvalidAction(f"The {rec.name} is already open. {self.contents_text(rec)}")
        rec.is_open = True
        self.opened.add(rec.name)
        return f"You open the {rec.name}. {self.contents_text(rec)}"

    def close(self, name: str) -> str:
        rec = self.resolve_receptacle(name)
        if not rec.openable:
            raise InvalidAction(f"The {rec.name} cannot be closed.")
        self._require_at(rec, "")
        if not rec.is_open:
            raise InvalidAction(f"The {rec.name} is already closed.")
        rec.is_open = False
        return f"You close the {rec.name}."

    def take(self, name: str, place: str | None) -> str:
        if place is None:
            if self.at is None:
                raise InvalidAction(
                    f"You are not at any receptacle. Go to where the {name} is first."
                )
            place = self.at
        rec = self.resolve_receptacle(place)
        self._require_at(rec, "take")
        item = self.resolve_item(name, rec.contents, f"{rec.preposition} the {rec.name}")
        if item.is_lamp:
            raise InvalidAction(
                f"The {item.name} cannot be picked up. You can use it: use {item.name}."
            )
        if self.holding is not None:
            raise InvalidAction(
                f"Your hands are full: you are carrying the {self.holding}. Put it somewhere first, "
                f"e.g. put {self.holding} {rec.preposition} {rec.name}."
            )
        rec.contents.remove(item.name)
        item.location = None
        self.holding = item.name
        return f"You pick up the {item.name} from the {rec.name}."

    def put(self, name: str, place: str) -> str:
        rec = self.resolve_receptacle(place)
        item = self._held(name)
        self._require_at(rec, "put")
        self.holding = None
        item.location = rec.name
        rec.contents.append(item.name)
        return f"You put the {item.name} {rec.preposition} the {rec.name}."

    def transform(self, verb: Transform, name: str, place: str | None) -> str:
        if place is None:
            if self.at is None or self.receptacles[self.at].appliance != verb:
                raise InvalidAction(
                    f"Say what to {verb} it with, e.g. {verb} {name} with <appliance>."
                )
            place = self.at
        rec = self.resolve_receptacle(place)
        if rec.appliance != verb:
            tools = sorted({r.name for r in self.receptacles.values() if r.appliance == verb})
            raise InvalidAction(
                f"You cannot {verb} things with the {rec.name}. Use {' or '.join(tools) or 'nothing here'}."
            )
        item = self._held(name)
        self._require_at(rec, "")
        if not self.catalog.objects[item.kind].supports(verb):
            raise InvalidAction(
                f"The {item.name} cannot be {STATE_WORD[verb] if verb != 'heat' else 'heated'}."
            )
        if verb == "clean":
            item.clean = True
        elif verb == "heat":
            item.hot, item.cool = True, False
        else:
            item.cool, item.hot = True, False
        return f"You {verb} the {item.name} using the {rec.name}."

    def use(self, name: str) -> str:
        scope = self._contents_here()
        item = self.resolve_item(name, scope, "here")
        if not item.is_lamp:
            raise InvalidAction(f"The {item.name} cannot be used. Only lamps can be switched on.")
        item.switched_on = not item.switched_on
        return f"You turn {'on' if item.switched_on else 'off'} the {item.name}."

    def examine(self, name: str) -> str:
        here = self._contents_here() + ([self.holding] if self.holding else [])
        if name in here or any(self.items[n].kind == name for n in here):
            item = self.resolve_item(name, here, "here")
            self.examined.add(item.name)
            return item.description()
        rec = self.resolve_receptacle(name)
        self._require_at(rec, "")
        self.examined.add(rec.name)
        return self.contents_text(rec)

    def look(self) -> str:
        if self.at is None:
            return self.overview()
        rec = self.receptacles[self.at]
        room = f" in the {rec.room}" if len(self.rooms) > 1 else ""
        return f"You are at the {rec.name}{room}. {self.contents_text(rec)}"

    def inventory(self) -> str:
        if self.holding is None:
            return "You are not carrying anything."
        return f"You are carrying: {with_article(self.holding)}."
