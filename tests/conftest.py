"""Test-suite policy.

- Nothing reaches the network: offline variables are set before any test imports.
- A test that needs a system component (docker, chromium) is marked
  ``@pytest.mark.requires("docker")``; outside CI it is skipped when the
  component is missing, under ``CI=true`` it fails instead.
- Under ``CI=true`` any skip is reported as a failure, except tests marked ``gpu``
  (no GPU exists on CI machines).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator

import pytest

from rounds.offline import apply_offline_defaults

apply_offline_defaults()

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: How to tell that a system component is present.
COMPONENTS = {
    "docker": lambda: shutil.which("docker") is not None,
    "chromium": lambda: shutil.which("chromium") is not None,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires(component): needs a system component (docker, chromium)"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("requires"):
        for component in marker.args:
            check = COMPONENTS.get(component)
            if check is None:
                pytest.fail(f"unknown component {component!r} in @pytest.mark.requires")
            if not check():
                message = f"needs {component}, which is not installed or not running"
                if IN_CI:
                    pytest.fail(f"{message}; .ci/run must install and start it")
                pytest.skip(message)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("gpu") is None:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which only GPU tests may do: {reason}"
