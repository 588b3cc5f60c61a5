"""GPU figures: bf16 training steps and ``hf`` generation, with and without KV-cache reuse,
on Qwen2.5-0.5B- and 1.5B-shaped models with random weights.

Usage:
    python benchmarks/gpu.py [--budget-s 420] [--models qwen2.5-0.5b,qwen2.5-1.5b] [--out DIR]
    python benchmarks/gpu.py --smoke      # a tiny model on CPU, in well under a minute

On the device machine (Python 3.12 with torch and transformers, no network), from the
repository root, with ``.whl`` carried; ``$OUT`` receives ``gpu.json`` and ``gpu.md``::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:. HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 && python3 benchmarks/gpu.py --budget-s 420

``.whl/`` (git-ignored: ``echo /.whl/ >> .git/info/exclude``) holds what ``rounds`` imports
and that machine lacks, pinned in ``benchmarks/gpu_wheels.txt`` (gymnasium, pydantic and
their needs, about 3 MiB); fetch it here with::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl -r benchmarks/gpu_wheels.txt

Why it is built this way: a GPU is lent to few sessions, for minutes, on a machine without a
network, so the script builds its models from their configs (the Qwen2.5 shapes written
below, random weights, the embedded tokenizer; nothing downloaded), runs each part in its
own ``try`` so that one failure loses nothing else, writes ``gpu.json`` and ``gpu.md`` to
``$OUT`` (default ``./gpu_out``) after every part, skips what is left when ``--budget-s``
runs out, and prints the Markdown table last.

Parts, per model shape:

- ``generate``: the ``hf`` agent (``rounds.agents.hf.HFAgent``) plays ``--episodes``
  episodes of ``--turns`` turns in one lockstep batch through the chat loop
  (``run_episodes``), ``--new-tokens`` tokens per reply (a random model almost never
  samples its end-of-turn token, so every reply has that length) and an observation of
  about 100 tokens per turn; once with ``reuse_cache=False`` (each turn re-prefills the
  conversation) and once with ``reuse_cache=True`` (each episode keeps its KV cache).
  Generated tokens/s counts sampled tokens over the agent's generation time; the first
  and last turn's batch times show how a turn's cost grows with its index.
- ``train``: ``GRPOTrainer.update`` (the trainer's own policy update: float32 master
  weights, bf16 autocast on CUDA, the config's micro-batching, AdamW) on the episodes the
  ``generate`` part produced (their token sequences, sampled log-probs, advantages ±1),
  or on random sequences of the same shape when generation failed. Step time is the
  median of ``--train-steps`` updates after one warm-up update.

Model FLOP utilisation (MFU) of an update = ``6 · N · tokens / update time / peak``, with
``N`` the parameter count (the tied embedding counted once: it is also the LM head),
``tokens`` the sequences' real tokens (no padding; the update runs the LM head only at the
trained tokens, so this counts the model's FLOPs of a plain LM step), attention-score FLOPs
not counted; of generation, ``2 · N · generated tokens / generation time / peak`` (the
useful decode work: re-prefilled or cached prompt tokens are not counted). ``peak`` =
989 TFLOP/s, the H100/H200 SXM dense bf16 datasheet rate (``--peak-tflops``; one H200 of
this workplace measured about 790 on an 8192³ bf16 matrix product). Peak memory is
``torch.cuda.max_memory_allocated`` during the part. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from rounds.storage import atomic_write_json, atomic_write_text
from rounds.text_env import EpisodeEnd, StepResult, TextEnv

#: Qwen2.5 shapes (from the models' published configs). Both tie the input embedding to the
#: LM head: 0.49B and 1.54B parameters, as their model cards count them.
SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151_936,
    },
    "qwen2.5-1.5b": {
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151_936,
    },
    # --smoke: small enough for a CPU, the same code path.
    "smoke": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 2048,
    },
}
MAX_POSITIONS = 32_768
PEAK_TFLOPS = 989.0
BENCH_ENV = "bench/GpuTurns-v0"

SYSTEM = (
    "You are a physician in a virtual clinic. Each turn, order one exam or give the "
    "diagnosis. Reply with one command."
)
OBSERVATION = (
    "Exam name: Complete blood count. Exam results: White blood cells 12.4 x10^9/L [H] "
    "(reference 4.0-11.0). Hemoglobin, platelets, sodium, potassium, creatinine, glucose. "
    "The patient is a 54 year old man with chest pain and shortness of breath. Vital signs: "
    "temperature 37.2, heart rate 104 per minute, blood pressure 142/88 mmHg, respiratory "
    "rate 20, oxygen saturation 95 percent. Turn {turn}."
)


class TurnsBench(TextEnv):
    """A fixed-length episode: ``turns`` turns, each observation about 100 tokens, any reply
    accepted (a random model's reply is gibberish; the benchmark measures the model, not
    the task)."""

    def __init__(self, turns: int = 6, **kwargs: Any) -> None:
        kwargs.setdefault("max_turns", turns)
        super().__init__(invalid_action_penalty=0.0, **kwargs)
        self.turns = turns

    @property
    def system_prompt(self) -> str:
        return SYSTEM

    def task_ids(self, split: str | None = None) -> list[str]:
        return [str(i) for i in range(64)]

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return OBSERVATION.format(turn=0), {}

    def _act(self, text: str) -> StepResult:
        return StepResult(OBSERVATION.format(turn=self.turn), terminated=self.turn >= self.turns)

    def reject(self, message: str) -> StepResult:
        # An empty or unparseable reply gets the same observation: every episode keeps its shape.
        return self._act("")

    def _finish(self, terminated: bool) -> EpisodeEnd:
        return EpisodeEnd({"outcome": 0.0}, {"success": 0.0})


@dataclass
class Workload:
    episodes: int
    turns: int
    new_tokens: int
    train_steps: int


@dataclass
class Budget:
    """Seconds left of ``--budget-s``; a part that needs more than what is left is skipped."""

    seconds: float
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        return self.seconds - self.elapsed()


@dataclass
class Report:
    """Every part's row, written as JSON and Markdown after each part (atomically)."""

    out: Path
    header: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        atomic_write_json(self.out / "gpu.json", {**self.header, "parts": self.rows})
        atomic_write_text(self.out / "gpu.md", self.markdown())

    def markdown(self) -> str:
        h = self.header
        lines = [
            f"GPU figures: {h['device_name']}, torch {h['torch']}, transformers "
            f"{h['transformers']}; random weights, {h['workload']}.",
            "",
            "| model | params | reuse_cache | generated tok/s | turn 1 s | last turn s | "
            "rollout s | prompt tokens run (from cache) | MFU | peak GiB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            if row["part"] == "generate" and row["status"] == "ok":
                lines.append(
                    f"| {row['model']} | {_billions(row['params'])} | {row['reuse_cache']} | "
                    f"{row['generated_tokens_per_s']:.0f} | {row['turn_s'][0]:.2f} | "
                    f"{row['turn_s'][-1]:.2f} | {row['generation_s']:.1f} | "
                    f"{_cache_cell(row['cache'])} | {_percent(row['mfu'])} | "
                    f"{_gib(row['peak_memory_bytes'])} |"
                )
        lines += [
            "",
            "| model | params | precision | tokens/update | update s (median [min, max]) | "
            "tokens/s | MFU | peak GiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            if row["part"] == "train" and row["status"] == "ok":
                lines.append(
                    f"| {row['model']} | {_billions(row['params'])} | {row['precision']} | "
                    f"{row['tokens_per_update']} | {row['update_s']:.3f} "
                    f"[{row['update_s_min']:.3f}, {row['update_s_max']:.3f}] | "
                    f"{row['tokens_per_s']:.0f} | "
                    f"{_percent(row['mfu'])} | "
                    f"{_gib(row['peak_memory_bytes'])} |"
                )
        lines.append("")
        lines.append(
            f"MFU: update 6·N·tokens / time, generation 2·N·generated tokens / time, over "
            f"{h['peak_tflops']:.0f} TFLOP/s (dense bf16 datasheet peak); N = parameters (tied "
            "embedding once), attention scores not counted."
        )
        for row in self.rows:
            if row["status"] != "ok":
                lines.append(
                    f"- {row['part']} {row['model']}"
                    f"{'' if row.get('reuse_cache') is None else ' reuse_cache=' + str(row['reuse_cache'])}"
                    f": {row['status']}: {row.get('reason', '')}"
                )
        return "\n".join(lines) + "\n"


@dataclass
class Bench:
    """What every part shares: the run's settings, the tokenizer, the budget and the report."""

    device: str
    work: Workload
    tokenizer: Any
    budget: Budget
    report: Report
    peak_tflops: float | None

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


def _billions(count: int) -> str:
    return f"{count / 1e9:.2f}B" if count >= 1e8 else f"{count / 1e6:.2f}M"


def _cache_cell(cache: dict[str, int]) -> str:
    return f"{cache['prefilled_tokens']} ({cache['reused_tokens']})"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _gib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**30:.1f}"


def build_model(shape: str, tokenizer: Any, device: str, row: dict[str, Any]) -> Any:
    """A Qwen2 causal LM of ``shape`` with random weights, built on ``device`` (its parameter
    count in ``row``)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rounds.models.tiny import neutral_generation_config

    eos = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    config = Qwen2Config(
        **SHAPES[shape],
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        eos_token_id=eos,
        pad_token_id=int(tokenizer.pad_token_id),
        bos_token_id=None,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model: Any = Qwen2ForCausalLM(config)
    model.generation_config = neutral_generation_config(eos, tokenizer)
    row["params"] = parameter_count(model)
    return model.eval()


def parameter_count(model: Any) -> int:
    """Distinct parameters (a tied embedding once)."""
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def peak_memory(row: dict[str, Any], device: str) -> Iterator[None]:
    """Records ``torch.cuda.max_memory_allocated`` over the block in ``row`` (None on CPU)."""
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    try:
        yield
    finally:
        row["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated()) if cuda else None


def hf_agent(
    model: Any, tokenizer: Any, device: str, new_tokens: int, reuse: bool, timeout_s: float
) -> Any:
    """The ``hf`` agent over ``model``, keeping KV caches between turns when ``reuse``; a
    generation call stops after ``timeout_s`` (what is left of the budget)."""
    from rounds.agents.hf import HFAgent

    return HFAgent(
        "random-weights",
        model_obj=model,
        tokenizer=tokenizer,
        device=device,
        max_new_tokens=new_tokens,
        temperature=1.0,
        seed=0,
        timeout_s=timeout_s,
        reuse_cache=reuse,
    )


def utilisation(flops: float, seconds: float, bench: Bench) -> float | None:
    """``flops`` done in ``seconds`` as a share of the peak rate (None without a GPU peak)."""
    return None if bench.peak_tflops is None else flops / seconds / (bench.peak_tflops * 1e12)


def cache_counts(agent: Any) -> dict[str, int]:
    """The agent's KV-cache counters (``HFAgent.cache_stats``), flattened."""
    stats = agent.cache_stats
    counts = {
        "reused_tokens": int(stats.reused_tokens),
        "prefilled_tokens": int(stats.prefilled_tokens),
    }
    counts.update({f"fresh_prefills/{k}": int(v) for k, v in stats.fresh_prefills.items()})
    return counts


def play(agent: Any, episodes: int, turns: int) -> list[Any]:
    """``episodes`` episodes of ``turns`` turns in one lockstep batch (the trainer's rollout)."""
    from rounds.agents.loop import EpisodeSpec, run_episodes
    from rounds.registration import make

    return list(
        run_episodes(
            lambda: make(BENCH_ENV, turns=turns),
            agent,
            [EpisodeSpec(task_id=str(i), seed=i, agent_seed=i) for i in range(episodes)],
            env_id=BENCH_ENV,
            concurrency=episodes,
            step_timeout_s=120.0,
            straggler_s=None,
        )
    )


def generate_part(bench: Bench, model: Any, reuse: bool, row: dict[str, Any]) -> list[Any]:
    """Fills ``row`` with the generation figures; returns the rollouts."""
    import torch

    work = bench.work
    model.to(torch.bfloat16 if bench.cuda else torch.float32)
    agent = hf_agent(
        model, bench.tokenizer, bench.device, work.new_tokens, reuse, max(10.0, bench.budget.left())
    )
    with peak_memory(row, bench.device):
        agent.max_new_tokens = 8  # warm-up: kernels, cuBLAS handles, the cache path of turn 2
        play(agent, 2, 2)
        agent.max_new_tokens = work.new_tokens
        agent.generation_seconds = 0.0
        warm = cache_counts(agent)
        started = time.perf_counter()
        rollouts = play(agent, work.episodes, work.turns)
        wall = time.perf_counter() - started
    agent.close()
    after = cache_counts(agent)
    # What the cache saved in the measured run (tokens read from held caches against tokens
    # the model ran), and why any later turn was prefilled from scratch.
    row["cache"] = {key: after[key] - warm.get(key, 0) for key in after}
    generated = sum(t.tokens.completion for r in rollouts for t in r.episode.turns)
    turns = max(len(r.actions) for r in rollouts)
    # Lockstep: every live episode's turn t is one act_batch call, timed in its actions.
    turn_s = [
        max(r.actions[t].latency_s for r in rollouts if len(r.actions) > t) for t in range(turns)
    ]
    row.update(
        dtype=str(model.dtype).removeprefix("torch."),
        episodes=len(rollouts),
        turns=turns,
        generated_tokens=generated,
        prompt_tokens_added=sum(len(a.prompt_ids or []) for r in rollouts for a in r.actions),
        sequence_tokens_max=max(
            sum(len(a.prompt_ids or []) + len(a.token_ids or []) for a in r.actions)
            for r in rollouts
        ),
        generation_s=agent.generation_seconds,
        wall_s=wall,
        generated_tokens_per_s=generated / agent.generation_seconds,
        mfu=utilisation(2 * row["params"] * generated, agent.generation_seconds, bench),
        turn_s=turn_s,
        last_over_first_turn=turn_s[-1] / turn_s[0],
        replies_cut_by_timeout=sum(
            a.finish_reason == "timeout" for r in rollouts for a in r.actions
        ),
    )
    return rollouts


def training_sequences(
    rollouts: list[Any] | None, tokenizer: Any, vocab: int, work: Workload
) -> tuple[list[Any], str]:
    """The update's batch: the rollouts' token sequences (advantages ±1 by episode), or random
    sequences of the same shape when there are none."""
    import torch

    from rounds.trainers.sequences import TrainSequence, build_sequence, has_tokens

    if rollouts:
        usable = [r for r in rollouts if has_tokens(r)]
        if usable:
            return [
                build_sequence(r, [1.0 if i % 2 else -1.0] * len(r.actions))
                for i, r in enumerate(usable)
            ], "rollouts"
    generator = torch.Generator().manual_seed(0)
    observation = len(tokenizer(OBSERVATION, add_special_tokens=False).input_ids)
    sequences = []
    for i in range(work.episodes):
        ids: list[int] = []
        mask: list[int] = []
        for _ in range(work.turns):
            ids += torch.randint(len(tokenizer), (observation,), generator=generator).tolist()
            ids += torch.randint(vocab, (work.new_tokens,), generator=generator).tolist()
            mask += [0] * observation + [1] * work.new_tokens
        advantage = 1.0 if i % 2 else -1.0
        sequences.append(
            TrainSequence(
                input_ids=ids,
                loss_mask=mask,
                old_logprobs=[-math.log(vocab) * m for m in mask],
                advantages=[advantage * m for m in mask],
                turn_of_token=[-1 if m == 0 else 0 for m in mask],
            )
        )
    return sequences, "random"


def train_part(bench: Bench, model: Any, rollouts: list[Any] | None, row: dict[str, Any]) -> None:
    """Fills ``row`` with the update's figures: ``GRPOTrainer.update`` on one step's batch."""
    import torch

    from rounds.trainers import GRPOConfig, GRPOTrainer

    work, cuda = bench.work, bench.cuda
    sequences, source = training_sequences(rollouts, bench.tokenizer, model.config.vocab_size, work)
    tokens = sum(len(s.input_ids) for s in sequences)
    output = tempfile.mkdtemp(prefix="rounds-gpu-bench-")
    try:
        config = GRPOConfig(
            env_id=BENCH_ENV,
            env_kwargs={"turns": work.turns},
            device=bench.device,
            bf16=True if cuda else "auto",
            output_dir=output,
            resume=False,
            log_episodes=False,
            progress=False,
            max_new_tokens=work.new_tokens,
            max_episode_tokens=MAX_POSITIONS,
            steps=1,
            tasks_per_step=max(1, work.episodes // 2),
            group_size=2,
        )
        with peak_memory(row, bench.device):
            trainer = GRPOTrainer(model, config=config, tokenizer=bench.tokenizer)
            times: list[float] = []
            for _ in range(work.train_steps + 1):
                if cuda:
                    torch.cuda.synchronize()
                started = time.perf_counter()
                stats = trainer.update(sequences)
                if cuda:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - started)
                if bench.budget.left() < 2 * times[-1] + 10:
                    break
        measured = times[1:] or times  # the first update warms up (allocator, kernels, AdamW state)
        median = statistics.median(measured)
        params = parameter_count(model)
        row.update(
            precision="bf16 autocast, fp32 weights" if trainer.autocast is not None else "fp32",
            sequences=len(sequences),
            sequences_from=source,
            tokens_per_update=tokens,
            trained_tokens=int(stats["tokens_trained"]),
            micro_batch_size=config.micro_batch_size,
            updates_measured=len(measured),
            update_s=median,
            update_s_min=min(measured),
            update_s_max=max(measured),
            tokens_per_s=tokens / median,
            model_tflops=6 * params * tokens / median / 1e12,
            mfu=utilisation(6 * params * tokens, median, bench),
            loss=float(stats["loss"]),
            grad_norm=float(stats["grad_norm"]),
        )
        trainer.env_workers.close()
        trainer.trackers.close()
    finally:
        shutil.rmtree(output, ignore_errors=True)


def run_part(
    bench: Bench, needs_s: float, row: dict[str, Any], body: Callable[[dict[str, Any]], Any]
) -> Any:
    """Runs ``body(row)`` unless less than ``needs_s`` of the budget is left; records the row
    whatever happens."""
    budget = bench.budget
    label = f"{row['part']} {row['model']}" + (
        "" if row.get("reuse_cache") is None else f" reuse_cache={row['reuse_cache']}"
    )
    result = None
    if budget.left() < needs_s:
        row.update(status="skipped", reason=f"budget: {budget.left():.0f} s left")
    else:
        started = time.perf_counter()
        try:
            result = body(row)
            row["status"] = "ok"
        except Exception as err:  # one part's failure must not lose the others
            row.update(status="failed", reason=f"{type(err).__name__}: {err}"[:500])
            row["traceback"] = traceback.format_exc()[-3000:]
        row["part_s"] = time.perf_counter() - started
    bench.report.add(row)
    print(
        f"[{budget.elapsed():6.1f} s] {label}: {row['status']} {row.get('reason', '')}", flush=True
    )
    return result


def run_shape(bench: Bench, shape: str) -> None:
    """Build one model shape, generate without and with cache reuse, then train on it."""
    needs_s = 30.0 if bench.cuda else 0.0
    base: dict[str, Any] = {"model": shape}
    model = run_part(
        bench,
        needs_s,
        {**base, "part": "build"},
        lambda row: build_model(shape, bench.tokenizer, bench.device, row),
    )
    if model is None:
        return
    base["params"] = parameter_count(model)
    rollouts = None
    for reuse in (False, True):

        def generate(row: dict[str, Any], reuse: bool = reuse) -> list[Any]:
            return generate_part(bench, model, reuse, row)

        result = run_part(
            bench, needs_s, {**base, "part": "generate", "reuse_cache": reuse}, generate
        )
        rollouts = rollouts or result
    run_part(
        bench,
        needs_s,
        {**base, "part": "train"},
        lambda row: train_part(bench, model, rollouts, row),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU, small workload")
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip parts after this")
    parser.add_argument("--models", default="qwen2.5-0.5b,qwen2.5-1.5b", help="shapes to run")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--new-tokens", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=3, help="measured updates")
    parser.add_argument("--peak-tflops", type=float, default=PEAK_TFLOPS)
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_out")
    args = parser.parse_args()

    import torch
    import transformers

    from rounds.models import load_tokenizer

    budget = Budget(args.budget_s)
    device = (
        args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    )
    if args.smoke:
        models = ["smoke"]
        work = Workload(episodes=4, turns=2, new_tokens=8, train_steps=1)
    else:
        if not device.startswith("cuda"):
            raise SystemExit("no CUDA GPU here: run with --smoke for the CPU check")
        models = args.models.split(",")
        unknown = set(models) - set(SHAPES)
        if unknown:
            raise SystemExit(f"unknown model shapes {sorted(unknown)}; known: {sorted(SHAPES)}")
        work = Workload(args.episodes, args.turns, args.new_tokens, args.train_steps)
    cuda = device.startswith("cuda")
    gym.register(id=BENCH_ENV, entry_point=TurnsBench)
    report = Report(
        Path(args.out),
        {
            "device": device,
            "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or "CPU",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "peak_tflops": args.peak_tflops,
            "workload": f"{work.episodes} episodes x {work.turns} turns x {work.new_tokens} "
            "new tokens, ~100-token observations",
            "budget_s": args.budget_s,
        },
    )
    header = report.header
    print(
        f"{header['device_name']}, torch {header['torch']}, transformers {header['transformers']}, "
        f"Python {header['python']}; {header['workload']}; budget {args.budget_s:.0f} s",
        flush=True,
    )
    bench = Bench(
        device=device,
        work=work,
        tokenizer=load_tokenizer("tiny"),
        budget=budget,
        report=report,
        peak_tflops=args.peak_tflops if cuda else None,
    )
    for shape in models:
        run_shape(bench, shape)
        gc.collect()  # the shape's model and rollouts went with run_shape's frame
        if cuda:
            torch.cuda.empty_cache()
    print()
    print(report.markdown(), flush=True)
    print(f"(written to {report.out}/gpu.json and gpu.md in {budget.elapsed():.0f} s)")


if __name__ == "__main__":
    main()
