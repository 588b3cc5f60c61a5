"""Registration of `rounds` envs with Gymnasium, and their catalogue for ``rounds list``.

Envs are registered by entry-point string, so ``import rounds`` stays light: an
env's module is imported only when it is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym

#: The envs this release builds, by id.
BUILTIN_ENVS: dict[str, str] = {
    "rounds/Household-v0": "rounds.envs.household.env:HouseholdEnv",
    "rounds/DiagGym-v0": "rounds.envs.clinic.env:DiagGymEnv",
    "rounds/SWE-v0": "rounds.envs.swe.env:SWEEnv",
    "rounds/GUI-v0": "rounds.envs.gui.env:GUIEnv",
    "rounds/PatientSim-v0": "rounds.envs.patient.env:PatientSimEnv",
}

#: Envs that reach an env elsewhere (not tasks of their own, so not in ``rounds list``).
CLIENT_ENVS: dict[str, str] = {
    "rounds/Remote-v0": "rounds.server.client:RemoteEnv",
}

_CATALOGUE: dict[str, str] = {}


@dataclass(frozen=True)
class EnvEntry:
    """A registered env as ``rounds list`` shows it."""

    id: str
    entry_point: str
    summary: str
    variants: dict[str, dict[str, Any]]


def register_env(env_id: str, entry_point: str, **gym_kwargs: Any) -> None:
    """Register a text env with Gymnasium and list it in ``rounds list``.

    Args:
        env_id: e.g. ``"myproject/Counting-v0"``.
        entry_point: ``"package.module:ClassName"`` of a :class:`~rounds.text_env.TextEnv`.
        gym_kwargs: passed to :func:`gymnasium.register` (e.g. ``kwargs``).
    """
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, **gym_kwargs)
    _CATALOGUE[env_id] = entry_point


def register_builtin_envs() -> None:
    """Register every env this release builds (called by ``import rounds``)."""
    for env_id, entry_point in BUILTIN_ENVS.items():
        register_env(env_id, entry_point)
    for env_id, entry_point in CLIENT_ENVS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)


def env_class(env_id: str) -> type[Any]:
    """The class behind a registered env id (imports its module)."""
    entry_point = gym.spec(env_id).entry_point
    if entry_point is None:
        raise KeyError(f"{env_id} is registered without an entry point")
    if isinstance(entry_point, str):
        return gym.envs.registration.load_env_creator(entry_point)  # type: ignore[return-value]
    return entry_point  # type: ignore[return-value]


def list_envs() -> list[EnvEntry]:
    """Every env registered through `rounds`, with its summary and variants."""
    entries = []
    for env_id, entry_point in sorted(_CATALOGUE.items()):
        cls = env_class(env_id)
        doc = (cls.__doc__ or "").strip().splitlines()
        entries.append(
            EnvEntry(
                id=env_id,
                entry_point=entry_point,
                summary=doc[0] if doc else "",
                variants={k: dict(v) for k, v in getattr(cls, "variants", {}).items()},
            )
        )
    return entries


def unknown_env_message(env_id: str) -> str:
    """An error message for an id that is not registered, naming the ones that are."""
    known = ", ".join(sorted(_CATALOGUE)) or "none"
    return f"Unknown env {env_id!r}. Registered envs: {known}. Run `rounds list` to see them."


def make(env_id: str, *, variant: str | None = None, **kwargs: Any) -> gym.Env[Any, Any]:
    """``gym.make`` with a named variant's keyword preset applied under ``kwargs``."""
    if env_id not in gym.registry:
        raise KeyError(unknown_env_message(env_id))
    if variant is not None:
        presets = getattr(env_class(env_id), "variants", {})
        if variant not in presets:
            raise KeyError(
                f"{env_id} has no variant {variant!r}; variants: {', '.join(presets) or 'none'}"
            )
        kwargs = {**presets[variant], **kwargs}
    return gym.make(env_id, **kwargs)
