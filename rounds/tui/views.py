"""What the replay draws, as Rich renderables: list cells, the run summary, episode headers
and turns. Pure functions of the records (no Textual), so they are easy to test.

Nothing here names an env's metrics: the summary and the series show what the run's
episodes declare (``Episode.meta["replay_metrics"]`` and ``["replay_series"]``, written by
:meth:`rounds.TextEnv.episode_meta`), and fall back to what a record holds for runs
written before envs declared anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from rounds.records import Episode
from rounds.tui.export import action_language
from rounds.tui.index import EpisodeRow
from rounds.tui.screenshots import SCREENSHOT_HASH_KEY, screen_hash

#: Summary metrics every run has (``rounds.stats``), shown before the env's own.
CORE_SUMMARY_METRICS = ("success", "outcome", "total_reward", "num_turns")
#: Per-turn info the agent loop writes for every env (not a series worth drawing).
LOOP_INFO_KEYS = ("env_latency_s", "agent")
#: Most metrics the summary box shows (two columns of eight lines).
MAX_SUMMARY_METRICS = 16
#: Longest string info value shown in a turn's details.
MAX_INFO_CHARS = 80


def cell(row: EpisodeRow, attribute: str) -> Any:
    """One cell of the episode list: numbers right-aligned, env ids without ``rounds/``."""
    value = row.value(attribute)
    if attribute.startswith("metric:"):
        return Text(f"{value:.3g}", justify="right") if isinstance(value, float | int) else ""
    if attribute == "success":
        return "yes" if value else "no"
    if isinstance(value, float):
        return Text(
            f"{value:+.3f}" if attribute == "total_reward" else f"{value:.3f}", justify="right"
        )
    if value is None:
        return ""
    if attribute == "env_id":
        return str(value).removeprefix("rounds/")
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def summary_metrics(
    summary: Mapping[str, Any], declared: list[str]
) -> tuple[list[tuple[str, float, float | None, float | None, Any]], list[str]]:
    """The metrics of ``summary.json`` worth showing, and a warning for each malformed one.

    Shown: the core metrics, then the declared ones; a run without declarations (written
    before envs declared them) shows every metric it has, core first. Each entry is ``(name, value,
    low, high, n)``; an entry whose value is not a number is skipped with a warning.
    """
    raw = summary.get("metrics")
    if raw is None:
        return [], []
    if not isinstance(raw, Mapping):
        return [], [f"summary.json: 'metrics' is a {type(raw).__name__}, not a mapping; ignored"]
    names = [*CORE_SUMMARY_METRICS, *(declared or sorted(raw))]
    entries: list[tuple[str, float, float | None, float | None, Any]] = []
    problems: list[str] = []
    for name in dict.fromkeys(names):
        if name not in raw:
            continue
        stat = raw[name]
        value = _number(stat.get("value")) if isinstance(stat, Mapping) else _number(stat)
        if value is None:
            shown = stat.get("value") if isinstance(stat, Mapping) else stat
            problems.append(f"summary.json: metric {name!r} is {shown!r}, not a number; skipped")
            continue
        low = _number(stat.get("low")) if isinstance(stat, Mapping) else None
        high = _number(stat.get("high")) if isinstance(stat, Mapping) else None
        n = stat.get("n", "?") if isinstance(stat, Mapping) else "?"
        entries.append((name, value, low, high, n))
    return entries[:MAX_SUMMARY_METRICS], problems


def summary_table(entries: list[tuple[str, float, float | None, float | None, Any]]) -> Table:
    """The summary's metrics in two columns: ``name value [low, high] (n=...)``."""
    table = Table.grid(padding=(0, 4))
    table.add_column()
    table.add_column()
    texts = []
    for name, value, low, high, n in entries:
        interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
        texts.append(f"{name:<18} {value:.3f}{interval}  (n={n})")
    half = (len(texts) + 1) // 2
    for left, right in zip(texts[:half], [*texts[half:], ""], strict=False):
        table.add_row(left, right)
    return table


def series_names(episode: Episode) -> list[str]:
    """The per-turn ``info`` series to draw: those the env declared, or for an older record
    every float that each turn's info holds (apart from the agent loop's own timings)."""
    declared = episode.meta.get("replay_series")
    if isinstance(declared, list):
        return [str(n) for n in declared]
    if not episode.turns:
        return []
    common = [
        k
        for k, v in episode.turns[0].info.items()
        if isinstance(v, float) and k not in LOOP_INFO_KEYS
    ]
    return [k for k in common if all(isinstance(t.info.get(k), float) for t in episode.turns)]


def series_values(episode: Episode, name: str) -> list[float]:
    """The finite numbers turn info holds under ``name``, in turn order."""
    values = [_number(t.info.get(name)) for t in episode.turns]
    return [v for v in values if v is not None and math.isfinite(v)]


def _panel(text: str, title: str, language: str = "") -> Panel:
    body: RenderableType
    if language:
        body = Syntax(text, language, word_wrap=True, theme="ansi_dark", background_color="default")
    else:
        body = Text(text)
    return Panel(body, title=title, title_align="left", border_style="dim")


def _info_value(value: Any) -> str | None:
    """A turn-info value as one short line, or ``None`` for values too big to show here."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, str) and len(value) <= MAX_INFO_CHARS and "\n" not in value:
        return value
    return None


def turn_details(episode: Episode, index: int) -> RenderableType:
    """A turn's reward, advantage, components, the info the env reported (the declared
    series first, then every other short value) and the agent's tokens."""
    turn = episode.turns[index]
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("reward", f"{turn.reward:+.4g}")
    if turn.advantage is not None:
        table.add_row("advantage", f"{turn.advantage:+.4f}")
    for key, value in sorted(turn.reward_components.items()):
        table.add_row(f"  {key}", f"{value:+.4g}")
    shot = screen_hash(episode, index)
    if shot is not None:
        table.add_row("screenshot", f"sha256 {shot[:16]}...  (s saves it as a PNG)")
    series = series_names(episode)
    for key in [*series, *sorted(k for k in turn.info if k not in series)]:
        if key in ("agent", SCREENSHOT_HASH_KEY) or key not in turn.info:
            continue
        shown = _info_value(turn.info[key])
        if shown is not None:
            table.add_row(key, shown)
    if turn.tokens.prompt or turn.tokens.completion:
        table.add_row("tokens", f"prompt {turn.tokens.prompt}, completion {turn.tokens.completion}")
    agent = turn.info.get("agent")
    if isinstance(agent, dict):
        table.add_row("agent", json.dumps(agent))
    return Panel(table, title="reward", title_align="left", border_style="dim")


def turn_view(episode: Episode, index: int) -> RenderableType:
    """Observation, action and reward details of turn ``index``."""
    if not episode.turns:
        return Text("This episode has no turns.")
    turn = episode.turns[index]
    title = f"observation (turn {index + 1}/{episode.num_turns})"
    if screen_hash(episode, index) is not None:
        title += " + screenshot"
    parts: list[RenderableType] = [
        _panel(turn.observation, title),
        _panel(turn.action or "(empty)", "action", action_language(turn.action)),
        turn_details(episode, index),
    ]
    if index == episode.num_turns - 1 and episode.meta.get("final_observation"):
        parts.append(_panel(str(episode.meta["final_observation"]), "final observation"))
    return Group(*parts)


def episode_header(episode: Episode) -> Text:
    """Env, task, seed, agent, outcome, reward and the episode's metrics (declared first)."""
    text = Text()
    text.append(f"{episode.env_id}", style="bold cyan")
    text.append(f"   task {episode.task_id}  seed {episode.seed}  agent {episode.agent}")
    if episode.model:
        text.append(f"  model {episode.model}")
    text.append(
        f"\noutcome {episode.outcome:g}  total reward {episode.total_reward:+.3f}  turns {episode.num_turns}"
    )
    if episode.truncated:
        reason = episode.meta.get("truncation_reason")
        text.append(f"  truncated{': ' + str(reason) if reason else ''}", style="yellow")
    if episode.metrics:
        declared = episode.meta.get("replay_metrics")
        first = (
            [str(n) for n in declared if n in episode.metrics] if isinstance(declared, list) else []
        )
        names = [*first, *sorted(k for k in episode.metrics if k not in first)]
        text.append(
            "\n" + "  ".join(f"{k} {episode.metrics[k]:.3g}" for k in names),
            style="dim",
        )
    return text
