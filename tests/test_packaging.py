"""The distribution: folder mapping, a built wheel, and a light core import."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_core_import_pulls_no_heavy_library() -> None:
    code = (
        "import sys, rounds, gymnasium as gym; gym.make('rounds/Household-v0').reset(seed=0); "
        "import rounds.trainers, rounds.agents, rounds.cli; "
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'docker', 'textual', 'peft', 'ray') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


LAYERS = ("envs", "agents", "trainers", "sandboxes")


def test_layer_folders_are_linked_into_the_package() -> None:
    """`rounds/envs` etc. are links to the top-level folders, so every tool finds them on disk."""
    for layer in LAYERS:
        link = ROOT / "rounds" / layer
        assert link.is_symlink(), f"rounds/{layer} must be a link to ../{layer}"
        assert link.resolve() == (ROOT / layer).resolve()


def test_every_package_folder_is_found() -> None:
    from setuptools import find_packages

    found = set(find_packages(str(ROOT), include=["rounds*"]))
    expected = {"rounds"}
    for init in (ROOT / "rounds").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT / "rounds")
        expected.add(".".join(["rounds", *rel.parts]))
    # Every layer's packages, reached through the links, are in the distribution.
    for layer in LAYERS:
        for init in (ROOT / layer).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / layer)
            expected.add(".".join(["rounds", layer, *rel.parts]))
    assert found == expected


def test_mypy_checks_every_layer() -> None:
    """`make lint`'s mypy run covers the layers, not only the core."""
    import tomllib

    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    assert files == ["rounds"]
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["overrides"]
    for override in overrides:
        for module in override["module"]:
            assert not any(module.startswith(f"rounds.{layer}") for layer in LAYERS), module


@pytest.mark.slow
def test_built_wheel_imports_and_runs(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("rounds-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rounds/envs/household/catalog.yaml" in names
    assert "rounds/agents/loop.py" in names and "rounds/py.typed" in names
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import rounds, rounds.envs, rounds.agents, rounds.trainers, rounds.sandboxes, gymnasium as gym; "
        "env = gym.make('rounds/Household-v0'); obs, info = env.reset(seed=0); "
        "print(rounds.__file__); print(info['task_id'])"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=env,
    )
    first, second = result.stdout.splitlines()
    assert first.startswith(str(target))
    assert second.endswith(tuple("0123456789"))
