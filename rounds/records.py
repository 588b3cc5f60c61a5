"""The trajectory record: one :class:`Episode` per JSONL line, made of :class:`Turn`s.

These models are the contract between envs, agents, the trainer and the replay
UI (``DESIGN.md``, "Trajectory record"). Unknown fields are kept, so a file
written by a newer version still loads and round-trips.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


def scrub_text(text: str) -> str:
    """Return ``text`` with lone surrogates replaced, so it always encodes as UTF-8.

    Agents can emit (and Python strings can hold) lone surrogates, e.g. from
    decoding invalid UTF-8 with ``surrogateescape``; JSON writers reject them.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def jsonable(value: Any) -> Any:
    """Convert ``value`` to plain JSON data: numpy scalars to Python, NaN to None, others to str.

    Env ``info`` dicts may hold numpy values or arbitrary objects; a record must
    still serialise, so what JSON cannot hold is stringified rather than dropped.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars and 0-d arrays
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return jsonable(tolist())
    return scrub_text(str(value))


def _jsonable_python(value: Any, info: ValidationInfo) -> Any:
    """``jsonable`` for a dict built in Python (numpy values, objects). A record read from
    JSON holds only JSON values already, and converting them again was a third of the
    time it takes to index a run's episodes."""
    return jsonable(value) if info.mode == "python" and isinstance(value, dict) else value


class TokenUsage(BaseModel):
    """Tokens a model read (``prompt``) and wrote (``completion``) for one turn."""

    model_config = ConfigDict(extra="allow")

    prompt: int = 0
    completion: int = 0


class Turn(BaseModel):
    """One agent turn: the observation it acted on, its action, and what the env returned.

    ``observation`` is the text the agent saw *before* acting; the env's reply to
    the action is the next turn's observation (the last reply is
    ``Episode.meta["final_observation"]``).
    """

    model_config = ConfigDict(extra="allow")

    index: int
    observation: str
    action: str
    reward: float = 0.0
    reward_components: dict[str, float] = Field(default_factory=dict)
    advantage: float | None = None
    info: dict[str, Any] = Field(default_factory=dict)
    latency_s: float = 0.0
    tokens: TokenUsage = Field(default_factory=TokenUsage)

    @field_validator("observation", "action", mode="before")
    @classmethod
    def _scrub(cls, value: Any) -> Any:
        return scrub_text(value) if isinstance(value, str) else value

    @field_validator("info", mode="before")
    @classmethod
    def _jsonable_info(cls, value: Any, info: ValidationInfo) -> Any:
        return _jsonable_python(value, info)


def new_episode_id() -> str:
    """A random, unique episode id (hex UUID4)."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Episode(BaseModel):
    """One episode of one agent in one env, as written to ``episodes.jsonl``."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(default_factory=new_episode_id)
    env_id: str
    task_id: str | None = None
    seed: int | None = None
    agent: str = ""
    model: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    turns: list[Turn] = Field(default_factory=list)
    outcome: float = 0.0
    metrics: dict[str, float] = Field(default_factory=dict)
    total_reward: float = 0.0
    truncated: bool = False
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("meta", mode="before")
    @classmethod
    def _jsonable_meta(cls, value: Any, info: ValidationInfo) -> Any:
        return _jsonable_python(value, info)

    @property
    def num_turns(self) -> int:
        """How many turns the agent took."""
        return len(self.turns)

    @property
    def success(self) -> bool:
        """True when the env's ``success`` metric is set, else when the outcome is positive."""
        if "success" in self.metrics:
            return self.metrics["success"] > 0
        return self.outcome > 0
