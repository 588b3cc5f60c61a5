"""How a submission is judged: the pytest command over the hidden tests and its report.

The command shields the run from what the agent could have planted in the work
tree: no ``conftest.py`` (``--noconftest``), no ini file or ``addopts`` of its
own (``-c /dev/null``), no cache, no stale byte code, and the interpreter does
not put the current directory first on ``sys.path`` (``-P``), so a ``pytest.py``
in the repository cannot stand in for pytest. The repository itself is found
through pytest's ``pythonpath`` option.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

#: Seconds the hidden tests may run.
GRADE_TIMEOUT_S = 120.0

_STATUS = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)", re.MULTILINE)


def grade_command(workdir: str, tests: Sequence[str], python: str = "python3") -> str:
    """The shell command that runs ``tests`` (pytest node ids) in ``workdir`` with the
    interpreter ``python`` and reports each."""
    ids = " ".join(shlex.quote(t) for t in tests)
    return (
        f"cd {shlex.quote(workdir)} && find . -name __pycache__ -prune -exec rm -rf {{}} + ; "
        f"{shlex.quote(python)} -P -m pytest -c /dev/null --rootdir={shlex.quote(workdir)} "
        f"-o pythonpath={shlex.quote(workdir)} -o addopts= -p no:cacheprovider --noconftest "
        f"-q -rA --no-header -o console_output_style=classic {ids}"
    )


def parse_test_report(output: str) -> dict[str, str]:
    """Each test's status (``PASSED``, ``FAILED``, ...) from pytest's ``-rA`` summary.

    A test missing from the report (it was not collected) has no entry: it did not pass.
    """
    statuses: dict[str, str] = {}
    for status, test_id in _STATUS.findall(output):
        statuses.setdefault(test_id, status)
    return statuses
