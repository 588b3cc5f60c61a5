"""The worker side of an env worker: the envs one process (or Ray actor) owns.

:class:`EnvHost` is plain Python with no transport of its own: a worker process
calls it from its pipe loop and a Ray actor is this class made remote, so both
backends run the same code and return the same values.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import gymnasium as gym

from rounds.distributed.proxy import EnvDescription, StepTuple, describe_env
from rounds.text_env import TextEnv


def resolve_env_id(env_id: str) -> str:
    """``"my_pkg.envs:my/Env-v0"`` imports ``my_pkg.envs`` (which registers the env) and
    returns ``"my/Env-v0"``, as ``gym.make`` does; a plain id is returned as it is. A worker
    process or Ray actor starts with only the built-in envs registered: this is how it
    gets yours (the module must be importable there)."""
    module, sep, name = env_id.rpartition(":")
    if not sep or "/" in module:
        return env_id
    importlib.import_module(module)
    return name


class EnvHost:
    """Envs by key: made, reset, stepped and closed on the caller's behalf."""

    def __init__(self) -> None:
        import rounds  # registers the built-in envs in a fresh process

        del rounds
        self.envs: dict[str, gym.Env[str, str]] = {}

    def pid(self) -> int:
        """This worker's process id (for operators and tests)."""
        return os.getpid()

    def open(self, key: str, env_id: str, kwargs: dict[str, Any]) -> EnvDescription:
        """Make an env under ``key``; return its description."""
        from rounds.registration import make

        env = make(resolve_env_id(env_id), **kwargs)
        base = env.unwrapped
        if not isinstance(base, TextEnv):
            env.close()
            raise TypeError(f"{env_id} is not a rounds TextEnv; env workers run those only")
        self.envs[key] = env
        return describe_env(env_id, base)

    def reset(
        self, key: str, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any]]:
        return self.envs[key].reset(seed=seed, options=options)

    def step(self, key: str, action: str) -> StepTuple:
        observation, reward, terminated, truncated, info = self.envs[key].step(action)
        return observation, float(reward), bool(terminated), bool(truncated), info

    def close(self, key: str) -> None:
        env = self.envs.pop(key, None)
        if env is not None:
            env.close()

    def close_all(self) -> None:
        for key in list(self.envs):
            self.close(key)
