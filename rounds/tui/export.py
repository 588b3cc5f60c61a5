"""An episode as a Markdown document (the replay UI's ``e`` key)."""

from __future__ import annotations

import json

from rounds.records import Episode


def _fence(text: str, language: str = "") -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{language}\n{text}\n{ticks}"


def action_language(action: str) -> str:
    """The highlighting language of an action: ``json`` for tool calls, ``diff`` for patches."""
    stripped = action.strip()
    if stripped.startswith(("{", "[")) or "<tool_call>" in stripped:
        return "json"
    if stripped.startswith(("diff --git", "--- ", "@@")):
        return "diff"
    return ""


def episode_markdown(episode: Episode) -> str:
    """Every turn's observation, action, reward, components and advantage, then the outcome."""
    lines = [
        f"# Episode {episode.id}",
        "",
        f"- env: `{episode.env_id}`  task: `{episode.task_id}`  seed: `{episode.seed}`",
        f"- agent: `{episode.agent}`" + (f"  model: `{episode.model}`" if episode.model else ""),
        f"- outcome: {episode.outcome:g}  total reward: {episode.total_reward:g}  turns: {episode.num_turns}"
        + ("  (truncated)" if episode.truncated else ""),
    ]
    if episode.metrics:
        lines.append(
            "- metrics: " + ", ".join(f"{k} = {v:g}" for k, v in sorted(episode.metrics.items()))
        )
    reason = episode.meta.get("truncation_reason")
    if reason:
        lines.append(f"- truncation: {reason}")
    for turn in episode.turns:
        lines += [
            "",
            f"## Turn {turn.index + 1}",
            "",
            "**Observation**",
            "",
            _fence(turn.observation),
            "",
        ]
        lines += ["**Action**", "", _fence(turn.action, action_language(turn.action)), ""]
        parts = [f"reward {turn.reward:+g}"]
        if turn.advantage is not None:
            parts.append(f"advantage {turn.advantage:+.3f}")
        components = {k: v for k, v in turn.reward_components.items() if v}
        if components:
            parts.append("components " + json.dumps(components))
        lines.append("- " + "; ".join(parts))
    final = episode.meta.get("final_observation")
    if final:
        lines += ["", "## Final observation", "", _fence(str(final))]
    return "\n".join(lines) + "\n"
