"""The OpenEnv wire format of a served `rounds` env: request and response models.

The shapes follow OpenEnv's HTTP server (``openenv.core.env_server.types``): a reset
takes ``seed`` and ``episode_id``; a step takes ``{"action": {...}}``; both answer
``{"observation": {...}, "reward": float | null, "done": bool, "metadata": {...}}``;
``GET /schema`` answers the ``action``, ``observation`` and ``state`` JSON schemas;
the WebSocket session exchanges ``{"type": "reset" | "step" | "state" | "close",
"data": {...}}`` for ``{"type": "observation" | "state" | "error", "data": {...}}``.

What a `rounds` env adds, each in a field OpenEnv leaves open: the action is the
agent's raw ``text``; the observation holds the text, the env's ``info`` (JSON-safe,
with ``reward_components``, ``outcome`` and ``metrics``) and Gymnasium's
``terminated``/``truncated`` (``done`` is either); ``task_id`` selects a task on reset;
``/schema`` also carries the env's description (system prompt, tools, task ids).
OpenEnv's HTTP reset and step make a fresh env per request, which a multi-turn env
cannot use, so here a reset opens a session (its id in ``metadata.session_id``) that
later steps name; the WebSocket session is one env per connection, as in OpenEnv.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rounds.distributed.proxy import EnvDescription


class TextAction(BaseModel):
    """One turn of the agent: its raw text, parsed by the env."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The agent's raw text for the turn.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Ignored by the env.")


class TextObservation(BaseModel):
    """What the env answers (``reward`` and ``done`` sit beside it, as in OpenEnv)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The observation text.")
    info: dict[str, Any] = Field(default_factory=dict, description="The env's info, JSON-safe.")
    terminated: bool = Field(default=False, description="The task ended (Gymnasium).")
    truncated: bool = Field(default=False, description="The turn limit ended it (Gymnasium).")


class SessionState(BaseModel):
    """OpenEnv's ``State`` (``episode_id``, ``step_count``) with the session's task."""

    model_config = ConfigDict(extra="forbid")

    episode_id: str | None = None
    step_count: int = 0
    session_id: str
    task_id: str | None = None
    done: bool = False


class ResetRequest(BaseModel):
    """``POST /reset`` (and the WebSocket ``reset`` message's ``data``)."""

    model_config = ConfigDict(extra="forbid")

    seed: int | None = Field(default=None, ge=0, description="Same seed, same episode.")
    episode_id: str | None = Field(default=None, max_length=255, description="Your episode id.")
    task_id: str | None = Field(default=None, max_length=1000, description="Pick this task.")
    session_id: str | None = Field(
        default=None, max_length=64, description="Reset this session; omit to open a new one."
    )


class StepRequest(BaseModel):
    """``POST /step``: the action, and the session ``/reset`` opened."""

    model_config = ConfigDict(extra="forbid")

    action: TextAction
    session_id: str | None = Field(default=None, max_length=64)
    timeout_s: float | None = Field(default=None, gt=0, description="Fail the step after this.")
    request_id: str | None = Field(default=None, max_length=255)


class CloseRequest(BaseModel):
    """``POST /close``: end a session and free its env."""

    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(max_length=64)


class EnvResponse(BaseModel):
    """OpenEnv's reset and step response."""

    model_config = ConfigDict(extra="forbid")

    observation: TextObservation
    reward: float | None = None
    done: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)


class SchemaResponse(BaseModel):
    """``GET /schema``: OpenEnv's three JSON schemas, and the env's description."""

    model_config = ConfigDict(extra="forbid")

    action: dict[str, Any]
    observation: dict[str, Any]
    state: dict[str, Any]
    env: EnvDescription


class HealthResponse(BaseModel):
    """``GET /health``."""

    status: Literal["healthy"] = "healthy"
    env_id: str
    active_sessions: int
    max_sessions: int


def schema_response(description: EnvDescription) -> SchemaResponse:
    """The ``/schema`` answer for an env."""
    return SchemaResponse(
        action=TextAction.model_json_schema(),
        observation=TextObservation.model_json_schema(),
        state=SessionState.model_json_schema(),
        env=description,
    )
