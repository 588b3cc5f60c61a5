"""The envs ``import rounds`` registers, as pytest parameters for tests that cover every env.

Test modules register toy envs of their own (``toys/...``), so a test over "every env"
takes :data:`rounds.registration.BUILTIN_ENVS`, not whatever the registry holds when it is
collected. An env that needs a system component carries the ``requires`` mark: skipped
on a bare dev machine, a failure under ``CI=true`` (tests/conftest.py).
"""

from __future__ import annotations

import pytest

from rounds.registration import BUILTIN_ENVS

#: Envs whose default configuration needs a system component (a conftest ``COMPONENTS`` key).
NEEDS = {"rounds/SWE-v0": "sandbox"}


def builtin_env_params() -> list[object]:
    """One ``pytest.param`` per built-in env id, marked with what it needs."""
    return [
        pytest.param(env_id, marks=[pytest.mark.requires(NEEDS[env_id])])
        if env_id in NEEDS
        else env_id
        for env_id in sorted(BUILTIN_ENVS)
    ]
