"""Test-suite policy.

- Nothing reaches the network: offline variables are set before any test imports.
- A test that needs a system component (docker, chromium) is marked
  ``@pytest.mark.requires("docker")``; outside CI it is skipped when the
  component is missing, under ``CI=true`` it fails instead.
- Under ``CI=true`` any skip is reported as a failure, except tests marked ``gpu``
  (no GPU exists on CI machines).
- Tests that need a trained model share one per session (:func:`vowel_run`,
  :func:`vowels3_turn_run`) instead of each training its own; a test that continues
  a shared run copies its directory first.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rounds.offline import apply_offline_defaults

apply_offline_defaults()

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@functools.cache
def _docker_daemon_answers() -> bool:
    import subprocess

    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


#: How to tell that a system component is present.
COMPONENTS = {
    # A docker CLI without a running daemon is not docker: ask the daemon.
    "docker": _docker_daemon_answers,
    "bubblewrap": lambda: shutil.which("bwrap") is not None,
    "chromium": lambda: all(shutil.which(name) for name in ("chromium", "chromedriver")),
    # What SWE-v0's default backend ("auto") can run on: a docker daemon or bubblewrap.
    "sandbox": lambda: _docker_daemon_answers() or shutil.which("bwrap") is not None,
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


#: The trainer settings of the toy runs: the tiny model, short replies, no checkpoints
#: but the last.
TOY_TRAINING: dict[str, Any] = {
    "model": "tiny",
    "tasks_per_step": 4,
    "group_size": 8,
    "max_new_tokens": 4,
    "max_episode_tokens": 256,
    "micro_batch_size": 32,
    "checkpoint_every": 100,
}


@dataclass
class TrainedRun:
    """A finished training run: its directory and settings, and the policy's weights."""

    path: Path
    settings: dict[str, Any]
    initial: dict[str, Any]
    trained: dict[str, Any]
    curve: list[float] = field(default_factory=list)
    """``success_rate`` of each step."""
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Weights after the steps asked for (``{steps done: state dict}``)."""

    def copy_to(self, directory: Path) -> Path:
        """A private copy of the run directory, to resume or damage."""
        shutil.copytree(self.path, directory)
        return directory


def _train(
    directory: Path, settings: dict[str, Any], snapshot_after: tuple[int, ...] = ()
) -> TrainedRun:
    import toy_envs  # noqa: F401  (registers the toy envs)

    from rounds.trainers import GRPOConfig, GRPOTrainer

    config = GRPOConfig(**{**TOY_TRAINING, **settings, "output_dir": str(directory)})
    trainer = GRPOTrainer(config=config)

    def weights() -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}

    run = TrainedRun(directory, {**TOY_TRAINING, **settings}, weights(), {})

    def on_step(metrics: dict[str, Any]) -> None:
        run.curve.append(float(metrics["success_rate"]))
        if metrics["step"] + 1 in snapshot_after:
            run.snapshots[metrics["step"] + 1] = weights()

    trainer.on_step = on_step
    trainer.train()
    run.trained = weights()
    return run


@pytest.fixture(scope="session")
def vowel_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """One step of ``toys/Vowel-v0`` with a KL reference, checkpointed: for the resume tests."""
    settings = {"env_id": "toys/Vowel-v0", "steps": 1, "learning_rate": 1e-2, "kl_coef": 0.1}
    return _train(tmp_path_factory.mktemp("vowel") / "run", settings)


@pytest.fixture(scope="session")
def vowels3_turn_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """16 steps of turn-level GRPO on ``toys/Vowels3-v0``, with the weights after step 6: the
    learning test reads its curve, the kill-and-resume test compares against step 6."""
    settings = {
        "env_id": "toys/Vowels3-v0",
        "steps": 16,
        "learning_rate": 2e-2,
        "advantage": "turn",
    }
    return _train(tmp_path_factory.mktemp("vowels3") / "turn", settings, snapshot_after=(6,))
