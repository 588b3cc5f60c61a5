"""Multi-turn rollout cost per turn, with and without KV-cache reuse in the ``hf`` agent.

Usage: python benchmarks/rollout.py [--episodes 4] [--turns 12] [--tokens 24]
       [--models embedded,30m] [--quick] [--out benchmarks/rollout.json]

A batch of ``--episodes`` ``rounds/Household-v0`` episodes of ``--turns`` turns
(a random model never finishes a task, so every episode runs all its turns) is
played by the ``hf`` agent with greedy decoding, once with ``reuse_cache=True`` and
once with ``reuse_cache=False``; both sample the same tokens, so they do the same
decoding work and differ only in what each turn prefills. Each turn's time is the
wall time of its one batched ``act_batch`` call. Models: the embedded tiny model
(``embedded``) and a ~30M-parameter Qwen2 built locally from a config with random
weights and the embedded tokenizer (``30m``; no downloads). ``--quick`` plays the
embedded model only (for ``make bench``).

Prints a table of seconds per turn against the turn index, then one JSON line, also
written to ``--out``. Goals (issue #23): with reuse, turn 12 costs at most 1.3x turn
1, and the whole rollout is at least 2x faster than re-prefilling every turn. CPU
timings move with the machine's load: rerun on a quiet machine before quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import rounds  # noqa: F401  (registers the envs)
from rounds.agents.base import Action, Chat
from rounds.agents.hf import HFAgent
from rounds.agents.loop import EpisodeSpec, run_episodes
from rounds.models import load_model_and_tokenizer, tiny
from rounds.registration import make
from rounds.storage import atomic_write_json

ENV = "rounds/Household-v0"
#: About 30M parameters: a Qwen2 shape between the embedded model and a 0.5B one.
MODEL_30M: dict[str, Any] = {
    "hidden_size": 512,
    "intermediate_size": 1408,
    "num_hidden_layers": 10,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
}


def build(name: str) -> tuple[Any, Any]:
    """The model and tokenizer called ``name`` (``embedded`` or ``30m``), float32 on CPU."""
    path = "tiny" if name == "embedded" else str(tiny(None, **MODEL_30M))
    return load_model_and_tokenizer(path, dtype="float32", device="cpu")


def play(agent: HFAgent, episodes: int, turns: int) -> tuple[list[float], list[list[Action]]]:
    """Seconds of each round's ``act_batch`` call, and every episode's actions."""
    timings: list[float] = []
    act_batch = agent.act_batch

    def timed(chats: Sequence[Chat]) -> list[Action]:
        started = time.perf_counter()
        actions = act_batch(chats)
        timings.append(time.perf_counter() - started)
        return actions

    agent.act_batch = timed  # type: ignore[method-assign]
    specs = [EpisodeSpec(seed=i, agent_seed=i) for i in range(episodes)]
    rollouts = run_episodes(
        lambda: make(ENV, max_turns=turns),
        agent,
        specs,
        env_id=ENV,
        concurrency=episodes,
        straggler_s=None,
    )
    by_seed = sorted(rollouts, key=lambda r: r.episode.seed or 0)
    return timings, [r.actions for r in by_seed]


def measure(name: str, episodes: int, turns: int, tokens: int) -> dict[str, Any]:
    """Per-turn seconds with and without reuse for one model, and the goals' ratios."""
    model, tokenizer = build(name)
    results: dict[str, Any] = {
        "name": name,
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
    }
    sampled: dict[bool, list[list[Action]]] = {}
    for reuse in (True, False):
        agent = HFAgent(
            model_obj=model,
            tokenizer=tokenizer,
            max_new_tokens=tokens,
            temperature=0.0,
            reuse_cache=reuse,
        )
        play(agent, 1, 2)  # warm up
        agent.cache_stats = type(agent.cache_stats)()
        per_turn, sampled[reuse] = play(agent, episodes, turns)
        key = "reuse" if reuse else "full"
        results[key] = {
            "per_turn_s": [round(s, 4) for s in per_turn],
            "rollout_s": round(sum(per_turn), 3),
            "turn_last_over_first": round(per_turn[-1] / per_turn[0], 3),
            "prefilled_tokens": agent.cache_stats.prefilled_tokens,
            "reused_tokens": agent.cache_stats.reused_tokens,
        }
        print(f"{name} {key}: {results[key]}", file=sys.stderr, flush=True)
    results["speedup"] = round(results["full"]["rollout_s"] / results["reuse"]["rollout_s"], 3)
    results["same_tokens"] = [[a.token_ids for a in actions] for actions in sampled[True]] == [
        [a.token_ids for a in actions] for actions in sampled[False]
    ]
    results["completion_tokens_per_turn"] = round(
        sum(a.completion_tokens for actions in sampled[True] for a in actions)
        / sum(len(actions) for actions in sampled[True]),
        1,
    )
    results["goals_met"] = {
        "turn_last_at_most_1.3x_first": results["reuse"]["turn_last_over_first"] <= 1.3,
        "rollout_at_least_2x_faster": results["speedup"] >= 2.0,
    }
    return results


def table(rows: list[dict[str, Any]], turns: int) -> str:
    header = "turn " + "".join(
        f"{row['name'] + ' reuse':>16}{row['name'] + ' full':>16}" for row in rows
    )
    lines = [header]
    for turn in range(turns):
        cells = []
        for row in rows:
            for key in ("reuse", "full"):
                series = row[key]["per_turn_s"]
                cells.append(f"{series[turn]:>16.4f}" if turn < len(series) else f"{'':>16}")
        lines.append(f"{turn + 1:>4} " + "".join(cells))
    lines.append(
        "total"
        + "".join(
            f"{row['reuse']['rollout_s']:>16.3f}{row['full']['rollout_s']:>16.3f}" for row in rows
        )
    )
    for row in rows:
        lines.append(
            f"{row['name']} ({row['parameters_m']}M parameters): reuse {row['speedup']}x faster; "
            f"turn {turns} / turn 1 = {row['reuse']['turn_last_over_first']} with reuse, "
            f"{row['full']['turn_last_over_first']} without; same tokens: {row['same_tokens']}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=24, help="max new tokens per turn")
    parser.add_argument("--models", default="embedded,30m", help="comma-separated: embedded, 30m")
    parser.add_argument("--quick", action="store_true", help="the embedded model only")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default); 1 keeps timings steady on a loaded machine",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "rollout.json")
    args = parser.parse_args()
    names = ["embedded"] if args.quick else args.models.split(",")
    unknown = set(names) - {"embedded", "30m"}
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; choose from embedded, 30m")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rows = [measure(name, args.episodes, args.turns, args.tokens) for name in names]
    print(table(rows, args.turns))
    report = {
        "figures": rows,
        "settings": {
            "episodes": args.episodes,
            "turns": args.turns,
            "max_new_tokens": args.tokens,
            "torch_threads": torch.get_num_threads(),
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "system": platform.platform(),
            "load_average_at_start": list(os.getloadavg()),
        },
    }
    atomic_write_json(args.out, report)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
