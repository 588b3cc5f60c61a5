"""The household catalogue (``catalog.yaml``): rooms, receptacles, objects and their affordances."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, model_validator

from rounds.storage import read_yaml

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")

Transform = Literal["clean", "heat", "cool"]


class ReceptacleKind(BaseModel):
    """A kind of receptacle: where things are put, and whether it opens or transforms them."""

    preposition: Literal["in", "on"]
    openable: bool = False
    appliance: Transform | None = None


class RoomKind(BaseModel):
    """A kind of room and how many receptacles of each kind it has (``[min, max]``)."""

    receptacles: dict[str, tuple[int, int]]


class ObjectKind(BaseModel):
    """A kind of object that can be picked up, and what can be done to it."""

    rooms: list[str]
    places: list[str]
    clean: bool = False
    heat: bool = False
    cool: bool = False
    light: bool = False

    def supports(self, transform: Transform) -> bool:
        """Whether ``transform`` (clean, heat or cool) applies to this kind."""
        return bool(getattr(self, transform))


class Catalog(BaseModel):
    """Everything a generated home can contain."""

    receptacles: dict[str, ReceptacleKind]
    rooms: dict[str, RoomKind]
    lamps: dict[str, list[str]]
    objects: dict[str, ObjectKind]

    @model_validator(mode="after")
    def _references_exist(self) -> Catalog:
        for room, kind in self.rooms.items():
            for name, (low, high) in kind.receptacles.items():
                if name not in self.receptacles:
                    raise ValueError(f"room {room}: unknown receptacle {name!r}")
                if not 0 <= low <= high:
                    raise ValueError(f"room {room}: bad count range for {name}: {[low, high]}")
        for obj, okind in self.objects.items():
            for room in okind.rooms:
                if room not in self.rooms:
                    raise ValueError(f"object {obj}: unknown room {room!r}")
            for place in okind.places:
                if place not in self.receptacles:
                    raise ValueError(f"object {obj}: unknown receptacle {place!r}")
        for lamp, places in self.lamps.items():
            for place in places:
                if place not in self.receptacles:
                    raise ValueError(f"lamp {lamp}: unknown receptacle {place!r}")
        names = [*self.receptacles, *self.objects, *self.lamps]
        if len(names) != len(set(names)):
            raise ValueError("receptacle, object and lamp kinds must have distinct names")
        return self


@functools.cache
def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Load and validate the catalogue (cached: it is read once per process)."""
    return Catalog.model_validate(read_yaml(path))
