"""The episode list's filter language: ``field op value`` clauses, all of which must hold.

Fields: ``env``, ``task``, ``agent``, ``model``, ``seed``, ``outcome``, ``reward``,
``turns``, ``step``, ``group``, ``success``, ``truncated``. Operators: ``=``, ``!=``,
``>``, ``>=``, ``<``, ``<=`` and ``~`` (contains). Examples: ``outcome>0``,
``env~Diag turns<=3``, ``success=false``. The metrics an env declares for the replay
(the metrics the run's env declares) are fields too, e.g. ``score>=0.5``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
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
_CLAUSE = re.compile(r"^(?P<field>[a-z_][a-z0-9_]*)\s*(?P<op>!=|>=|<=|=|>|<|~)\s*(?P<value>.+)$")
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
    if field in ("outcome", "total_reward") or field.startswith("metric:"):
        try:
            return float(value)
        except ValueError as err:
            name = field.removeprefix("metric:").replace("total_", "")
            raise FilterError(f"{name} takes a number, not {value!r}") from err
    return value


def parse_filter(text: str, metrics: Sequence[str] = ()) -> Callable[[EpisodeRow], bool]:
    """A predicate over rows from filter text (empty text keeps every row).

    ``metrics`` are the metric names the run's env declared; each is a field too (an
    episode without that metric never matches a clause on it).
    """
    fields = {**FIELDS, **{name: f"metric:{name}" for name in metrics if name not in FIELDS}}
    tests: list[Callable[[EpisodeRow], bool]] = []
    for clause in re.split(r"[\s,]+(?=[a-z_][a-z0-9_]*\s*(?:!=|>=|<=|=|>|<|~))", text.strip()):
        if not clause:
            continue
        match = _CLAUSE.match(clause.strip())
        if match is None or match.group("field") not in fields:
            raise FilterError(
                f"cannot read {clause!r}: write FIELD OP VALUE, e.g. outcome>0 or env~Diag; "
                f"fields: {', '.join(fields)}"
            )
        attribute = fields[match.group("field")]
        op, raw = match.group("op"), match.group("value").strip()
        if op == "~":

            def contains(row: EpisodeRow, a: str = attribute, n: str = raw.lower()) -> bool:
                return n in str(row.value(a)).lower()

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
            actual = row.value(a)
            if actual is None:
                return False
            try:
                return bool(c(actual, v))
            except TypeError:
                return False

        tests.append(test)
    return lambda row: all(t(row) for t in tests)
