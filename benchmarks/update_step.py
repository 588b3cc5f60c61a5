"""The update phase of a GRPO step (forward and backward of the step's episodes), before and
after issue 23.2's leaner updates, on the same sequences in the same run.

Usage: python benchmarks/update_step.py [--repeats 5] [--models tiny,qwen-vocab] [--threads N] [--json]

Variants (each is :meth:`GRPOTrainer.accumulate_gradients` over one grouping):

- ``padded-full``: the former update: episodes in random order, ``micro_batch_size`` per
  micro-batch padded to its longest, logits at every position;
- ``sorted-full``: micro-batches grouped by length within ``micro_batch_tokens``, logits at
  every position;
- ``lean``: grouped by length, the LM head only at trained tokens (the trainer's update).

Workloads: ``single-turn`` (32 episodes: a 40-token prompt, a 32-token reply) and
``multi-turn`` (16 episodes of 3 to 10 turns: 20-80-token observations, 8-40-token
replies). Models, random weights, built here: ``tiny`` (the embedded model) and
``qwen-vocab`` (Qwen2 shape with Qwen2.5's 151,936-token vocabulary, hidden 256, 4
layers, tied embeddings: 41M parameters, 39M of them the embedding/head, as in small real
models). Beside each median: min and max over the repeats, and the LM-head rows computed
(a count, free of timing noise). A benchmark, not a test; on a shared machine, rerun it
quietly.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from typing import Any

import torch

import rounds.trainers.loss as loss_module
from rounds.trainers import GRPOConfig, GRPOTrainer
from rounds.trainers.sequences import TrainSequence, micro_batches

#: Micro-batch episodes and token budget per model: the trainer's defaults for the tiny
#: model; for the large vocabulary, small enough that full logits (the former update) stay
#: within a few GB.
MICRO_BATCHES = {"tiny": (8, 16384), "qwen-vocab": (2, 1536)}


def single_turn(vocab: int, rng: random.Random) -> list[TrainSequence]:
    """32 episodes: a 40-token prompt and a 32-token sampled reply each."""
    return [episode([(40, 0), (32, 1)], vocab, rng) for _ in range(32)]


def multi_turn(vocab: int, rng: random.Random) -> list[TrainSequence]:
    """16 episodes of 3 to 10 turns: an observation then a sampled reply per turn."""
    sequences = []
    for _ in range(16):
        parts = []
        for _turn in range(rng.randint(3, 10)):
            parts += [(rng.randint(20, 80), 0), (rng.randint(8, 40), 1)]
        sequences.append(episode(parts, vocab, rng))
    return sequences


def episode(parts: list[tuple[int, int]], vocab: int, rng: random.Random) -> TrainSequence:
    """Random tokens; ``parts`` are ``(length, trained)`` spans."""
    ids, mask = [], []
    for length, trained in parts:
        ids += [rng.randrange(3, vocab) for _ in range(length)]
        mask += [trained] * length
    old = [-rng.random() * 6 if m else 0.0 for m in mask]
    advantages = [rng.gauss(0.0, 1.0) if m else 0.0 for m in mask]
    return TrainSequence(ids, mask, old, advantages, [0] * len(ids))


def build_model(name: str, vocab: int) -> tuple[Any, Any]:
    """The model and tokenizer of ``name`` (random weights, nothing downloaded)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from rounds.models import tiny

    path = str(tiny())
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    if name == "tiny":
        return AutoModelForCausalLM.from_pretrained(path), tokenizer
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=256,
        intermediate_size=704,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    return AutoModelForCausalLM.from_config(config), tokenizer


def groupings(
    sequences: list[TrainSequence], size: int, budget: int, seed: int
) -> dict[str, list[list[int]]]:
    """The former random grouping (``size`` episodes) and the length-sorted one."""
    order = list(range(len(sequences)))
    random.Random(seed).shuffle(order)
    padded = [order[i : i + size] for i in range(0, len(order), size)]
    sorted_ = micro_batches(
        [len(s.input_ids) for s in sequences], max_sequences=size, max_tokens=budget
    )
    return {"padded": padded, "sorted": sorted_}


def head_rows(sequences: list[TrainSequence], grouping: list[list[int]], lean: bool) -> int:
    """Positions the LM head computes: every padded position, or the trained tokens alone."""
    if lean:
        return sum(sum(1 for m in s.loss_mask[1:] if m) for s in sequences)
    return sum(len(b) * max(len(sequences[i].input_ids) for i in b) for b in grouping)


def measure(model_name: str, repeats: int, work: str, vocab: int) -> list[dict[str, Any]]:
    model, tokenizer = build_model(model_name, vocab)
    size, budget = MICRO_BATCHES[model_name]
    config = GRPOConfig(
        env_id="rounds/Household-v0",
        output_dir=f"{work}/{model_name}",
        micro_batch_size=size,
        micro_batch_tokens=budget,
        resume=False,
        log_episodes=False,
        progress=False,
        device="cpu",
    )
    trainer = GRPOTrainer(model=model, tokenizer=tokenizer, config=config)
    vocab = len(tokenizer)
    rows = []
    for workload, make in (("single-turn", single_turn), ("multi-turn", multi_turn)):
        sequences = make(vocab, random.Random(0))
        tokens = float(sum(sum(s.loss_mask) for s in sequences))
        grouped = groupings(sequences, size, budget, seed=0)
        variants = {
            "padded-full": (grouped["padded"], False),
            "sorted-full": (grouped["sorted"], False),
            "lean": (grouped["sorted"], True),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        plain = loss_module.PLAIN_HEAD_MODEL_TYPES
        for repeat in range(repeats + 1):  # the first round warms up
            for name, (grouping, lean) in variants.items():
                loss_module.PLAIN_HEAD_MODEL_TYPES = plain if lean else frozenset()
                started = time.perf_counter()
                try:
                    trainer.accumulate_gradients(sequences, grouping, tokens)
                    seconds = time.perf_counter() - started
                finally:
                    loss_module.PLAIN_HEAD_MODEL_TYPES = plain
                    trainer.policy.zero_grad(set_to_none=True)
                if repeat:
                    times[name].append(seconds)
        for name, (grouping, lean) in variants.items():
            rows.append(
                {
                    "model": model_name,
                    "workload": workload,
                    "variant": name,
                    "episodes": len(sequences),
                    "tokens": sum(len(s.input_ids) for s in sequences),
                    "trained_tokens": int(tokens),
                    "micro_batches": len(grouping),
                    "head_rows": head_rows(sequences, grouping, lean),
                    "median_s": statistics.median(times[name]),
                    "min_s": min(times[name]),
                    "max_s": max(times[name]),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (after a warm-up)")
    parser.add_argument("--models", default="tiny,qwen-vocab", help="tiny, qwen-vocab or both")
    parser.add_argument(
        "--vocab", type=int, default=151936, help="qwen-vocab: vocabulary size (Qwen2.5: 151936)"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object: MODEL/WORKLOAD/VARIANT -> figures"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (1 is steadier on a busy machine)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = tempfile.mkdtemp(prefix="rounds-update-")
    rows: list[dict[str, Any]] = []
    if not args.json:
        print(
            f"# update phase (forward + backward) on CPU, torch threads "
            f"{torch.get_num_threads()}; median [min, max] of {args.repeats} runs"
        )
        print(
            f"{'model':<11} {'workload':<12} {'variant':<12} {'micro-b':>7} {'head rows':>9} "
            f"{'median s':>9} {'min':>7} {'max':>7} {'vs padded-full':>15}",
            flush=True,
        )
    try:
        for name in args.models.split(","):
            measured = measure(name, args.repeats, work, args.vocab)
            rows += measured
            if not args.json:
                print_rows(measured)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        keys = ("model", "workload", "variant")
        print(
            json.dumps(
                {
                    "/".join(row[k] for k in keys): {k: v for k, v in row.items() if k not in keys}
                    for row in rows
                }
            )
        )


def print_rows(rows: list[dict[str, Any]]) -> None:
    """One model's rows of the table, each against its workload's ``padded-full`` median."""
    base: dict[tuple[str, str], float] = {}
    for row in rows:
        key = (row["model"], row["workload"])
        base.setdefault(key, row["median_s"])
        print(
            f"{row['model']:<11} {row['workload']:<12} {row['variant']:<12} "
            f"{row['micro_batches']:>7} {row['head_rows']:>9} {row['median_s']:>9.3f} "
            f"{row['min_s']:>7.3f} {row['max_s']:>7.3f} {row['median_s'] / base[key]:>14.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
