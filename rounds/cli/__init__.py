"""The ``rounds`` command line.

Each command module registers itself on :data:`app` and imports its heavy
dependencies only when the command runs, so ``rounds --help`` stays fast.
"""

from __future__ import annotations

from rounds.cli import compare, evaluate, play, replay, sandbox, serve, train  # noqa: F401  (each module registers its commands)
from rounds.cli.app import app


def main() -> None:
    """Entry point of the ``rounds`` script."""
    app()


__all__ = ["app", "main"]
