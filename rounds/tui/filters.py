"""The episode list's filter language: ``field op value`` clauses, all of which must hold.

Fields: ``env``, ``task``, ``agent``, ``model``, ``seed``, ``outcome``, ``reward``,
``turns``, ``step``, ``group``, ``success``, ``truncated``. Operators: ``=``, ``!=``,
``>``, ``>=``, ``<``, ``<=`` and ``~`` (contains). Examples: ``outcome>0``,
``env~Diag turns<=3``, ``success=false``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from rounds.tui.index import EpisodeRow

FIELDS: dict[str, str] = {
    "env": "env_id",
    "task": "task_id",
    "agent": "agent",
    "model": "model",
    "seed": "seed",
    "outcome": "outcome",
    "reward": "total_reward",
    "turns": "turns",
    "step": "step",
    "group": "group",
    "success": "success",
    "truncated": "truncated",
}
_CLAUSE = re.compile(r"^(?P<field>[a-z_]+)\s*(?P<op>!=|>=|<=|=|>|<|~)\s*(?P<value>.+)$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class FilterError(ValueError):
    """The filter text cannot be read (the message says how to write it)."""


def _convert(field: str, value: str) -> Any:
    if field in ("success", "truncated"):
        lowered = value.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise FilterError(f"{field} takes true or false, not {value!r}")
        return lowered in ("true", "1", "yes")
    if field in ("seed", "turns", "step", "group"):
        try:
            return int(value)
        except ValueError as err:
            raise FilterError(f"{field} takes a whole number, not {value!r}") from err
    if field in ("outcome", "total_reward"):
        try:
            return float(value)
        except ValueError as err:
            raise FilterError(
                f"{field.replace('total_', '')} takes a number, not {value!r}"
            ) from err
    return value


def parse_filter(text: str) -> Callable[[EpisodeRow], bool]:
    """A predicate over rows from filter text (empty text keeps every row)."""
    tests: list[Callable[[EpisodeRow], bool]] = []
    for clause in re.split(r"[\s,]+(?=[a-z_]+\s*(?:!=|>=|<=|=|>|<|~))", text.strip()):
        if not clause:
            continue
        match = _CLAUSE.match(clause.strip())
        if match is None or match.group("field") not in FIELDS:
            raise FilterError(
                f"cannot read {clause!r}: write FIELD OP VALUE, e.g. outcome>0 or env~Diag; "
                f"fields: {', '.join(FIELDS)}"
            )
        attribute = FIELDS[match.group("field")]
        op, raw = match.group("op"), match.group("value").strip()
        if op == "~":

            def contains(row: EpisodeRow, a: str = attribute, n: str = raw.lower()) -> bool:
                return n in str(getattr(row, a)).lower()

            tests.append(contains)
            continue
        value = _convert(attribute, raw)
        compare = _OPS[op]

        def test(
            row: EpisodeRow,
            a: str = attribute,
            v: Any = value,
            c: Callable[[Any, Any], bool] = compare,
        ) -> bool:
            actual = getattr(row, a)
            if actual is None:
                return False
            try:
                return bool(c(actual, v))
            except TypeError:
                return False

        tests.append(test)
    return lambda row: all(t(row) for t in tests)
