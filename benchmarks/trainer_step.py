"""Time per GRPO step: rounds' GRPOTrainer beside TRL's, same model, task and budgets, one run.

Usage:
    python benchmarks/trainer_step.py [--steps 12] [--prompts 4] [--group 8] [--tokens 32]
    python benchmarks/trainer_step.py --workload multi-turn [--steps 4] [--turns 4] [--json]

Both trainers run here, in one process, on the embedded tiny model (CPU), with the
same group size, completion budget, learning rate, no KL and one optimisation pass
per generation batch. The first steps of each are warm-up and not counted. TRL's
side needs ``pip install "rounds[trl]"``. A benchmark, not a test.

``single-turn`` (default): a system and a user message through the same chat
template, and a rule reward (the reply starts with a vowel).

``multi-turn``: ``rounds/DiagGym-v0`` through its tools (``order_exam``,
``diagnose``) with a fixed turn limit, for both trainers: rounds plays it with its
own trainer and chat loop; TRL through ``environment_factory`` with
``rounds.integrations.trl`` (one ``env.step`` per tool call). A randomly
initialised model never writes a tool call, so TRL's loop would stop after one
reply; both trainers therefore start from one shared checkpoint of the tiny model
fine-tuned for a few seconds to answer every turn with an ``order_exam`` call (one of
a few exams at random), which plays every episode to the turn limit in both. TRL's
tool loop runs ``turns - 1`` tool calls (``max_tool_calling_iterations``), so both
sample ``turns`` replies per episode; TRL's last reply is trained on but not sent
to the env. The table says what each learns from: TRL one reward per rollout
(``get_reward``: the episode's return), rounds turn-level rewards (``advantage:
turn`` over the env's per-turn rewards, with the info-gain variant's weight).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from rounds.text_env import EpisodeEnd, StepResult, TextEnv

SYSTEM = "Reply with one word."
WARMUP = 2


def prompt(i: int) -> str:
    return f"Say a word ({i})."


def vowel(text: str) -> float:
    return float(text.strip()[:1].lower() in tuple("aeiou"))


class VowelBench(TextEnv):
    """One turn: reward 1 when the reply starts with a vowel."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_turns=1, invalid_action_penalty=0.0, **kwargs)
        self.index = 0

    @property
    def system_prompt(self) -> str:
        return SYSTEM

    def task_ids(self, split: str | None = None) -> list[str]:
        return [str(i) for i in range(256)]

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.index = int(task_id)
        return prompt(self.index), {}

    def _act(self, text: str) -> StepResult:
        self._reward = vowel(text)
        return StepResult("Done.", terminated=True)

    def _finish(self, terminated: bool) -> EpisodeEnd:
        return EpisodeEnd({"outcome": self._reward}, {"success": self._reward})


def run_rounds(args: argparse.Namespace, out: str) -> dict[str, float]:
    from rounds.trainers import GRPOConfig, GRPOTrainer

    gym.register(id="bench/Vowel-v0", entry_point=VowelBench)
    times: list[float] = []
    tokens: list[float] = []

    def on_step(metrics: dict[str, Any]) -> None:
        if metrics["step"] >= WARMUP:
            times.append(metrics["time_step"])
            tokens.append(metrics["sampled_tokens"])

    config = GRPOConfig(
        env_id="bench/Vowel-v0",
        model="tiny",
        steps=args.steps + WARMUP,
        tasks_per_step=args.prompts,
        group_size=args.group,
        max_new_tokens=args.tokens,
        max_episode_tokens=args.tokens + 256,
        learning_rate=1e-5,
        micro_batch_size=args.prompts * args.group,
        output_dir=out,
        resume=False,
        log_episodes=False,
        checkpoint_every=10_000,
        seed=42,
        progress=False,
    )
    GRPOTrainer(config=config, on_step=on_step).train()
    return summarize(times, tokens)


def run_trl(args: argparse.Namespace, out: str) -> dict[str, float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rounds.models import tiny

    path = str(tiny())
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    rows = [
        {"prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt(i)}]}
        for i in range(256)
    ]

    def reward(completions: list[Any], **_: Any) -> list[float]:
        return [vowel(c[0]["content"] if isinstance(c, list) else str(c)) for c in completions]

    times: list[float] = []
    tokens: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, _args: Any, state: Any, *a: Any, **k: Any) -> None:
            if state.global_step > WARMUP:
                times.append(time.perf_counter() - self.start)

        def on_log(self, _args: Any, state: Any, control: Any, logs: Any = None, **k: Any) -> None:
            if logs and "completions/mean_length" in logs and state.global_step > WARMUP:
                tokens.append(logs["completions/mean_length"] * args.prompts * args.group)

    config = GRPOConfig(
        output_dir=out,
        max_steps=args.steps + WARMUP,
        per_device_train_batch_size=args.prompts * args.group,
        num_generations=args.group,
        max_completion_length=args.tokens,
        learning_rate=1e-5,
        beta=0.0,
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=42,
        temperature=1.0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[Timer()],
    )
    trainer.train()
    return summarize(times, tokens)


def summarize(times: list[float], tokens: list[float]) -> dict[str, float]:
    per_step = statistics.median(times)
    count = statistics.median(tokens) if tokens else float("nan")
    return {"step_s": per_step, "tokens": count, "tokens_per_s": count / per_step}


# ----------------------------------------------------------------- multi-turn workload

ENV_ID = "rounds/DiagGym-v0"
#: Exams the shared checkpoint learns to order, one at random each turn: two catalogue names
#: that differ from their first token, so that the episodes of a group differ (and so do their
#: rewards) while sampling (at ``--temperature``) keeps the call valid.
EXAMS = ("Complete blood count", "Chest X-ray")


def env_kwargs(turns: int) -> dict[str, Any]:
    """The one env configuration both trainers use: short prompt, fixed turn limit, and the
    info-gain weight so that turns carry rewards of their own."""
    return {"list_exams": False, "max_turns": turns, "reward_weights": {"info_gain": 0.1}}


def tool_calling_model(turns: int, seed: int = 0, conversations: int = 6) -> str:
    """The tiny model fine-tuned to answer every turn with an ``order_exam`` tool call, in
    rounds' chat (observations as user turns) and in TRL's (observations as tool results).

    Cross-entropy on the reply tokens of ``conversations`` scripted episodes played to the
    turn limit, until the loss is near zero: a benchmark fixture, so that both trainers
    play full episodes; not a policy. Built once per setting into the model cache (about
    100 steps: a minute on a quiet CPU, ten on a busy one) and reused by later runs.
    """
    from rounds.models import tiny
    from rounds.models.tiny import build_once, cache_dir

    base = tiny()
    settings = {
        "base": base.name,
        "turns": turns,
        "seed": seed,
        "conversations": conversations,
        "version": 4,
    }
    key = hashlib.sha256(json.dumps([settings, EXAMS, env_kwargs(turns)]).encode()).hexdigest()
    target = cache_dir() / f"bench-tool-calls-{key[:16]}"
    return str(build_once(target, _fine_tune_tool_calls, settings | {"path": str(base)}))


def _fine_tune_tool_calls(out: Path, settings: dict[str, Any]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import get_json_schema

    from rounds.integrations.trl import environment_factory, task_rows

    turns, seed = settings["turns"], settings["seed"]
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(settings["path"])
    model = AutoModelForCausalLM.from_pretrained(settings["path"])
    kwargs = env_kwargs(turns)
    env_class = environment_factory(ENV_ID, **kwargs)
    probe = env_class()
    rounds_tools = probe.env.unwrapped.tools
    # TRL lists an environment's methods in name order (inspect.getmembers): so does its prompt.
    names = sorted(spec["name"] for spec in env_class.tool_specs)
    trl_tools = [get_json_schema(getattr(probe, name)) for name in names]
    rng = random.Random(seed)
    rows: list[tuple[list[int], list[int]]] = []
    for n, row in enumerate(task_rows(ENV_ID, settings["conversations"], seed=seed, **kwargs)):
        trl_style = n % 2 == 1
        tools = trl_tools if trl_style else rounds_tools
        messages: list[dict[str, Any]] = [
            row["prompt"][0],
            {"role": "user", "content": probe.reset(task_id=row["task_id"])},
        ]
        spans: list[tuple[int, int]] = []
        for _ in range(turns):
            call = {"name": "order_exam", "arguments": {"exam": rng.choice(EXAMS)}}
            start = len(_chat_ids(tokenizer, messages, tools, generation_prompt=True))
            reply = f"<tool_call>{json.dumps(call)}</tool_call>{tokenizer.eos_token}"
            spans.append((start, start + len(tokenizer(reply, add_special_tokens=False).input_ids)))
            observation = probe.order_exam(exam=call["arguments"]["exam"])
            if trl_style:
                messages.append(
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"type": "function", "function": call}],
                    }
                )
                messages.append({"role": "tool", "name": "order_exam", "content": observation})
            else:
                messages.append(
                    {"role": "assistant", "content": reply.removesuffix(tokenizer.eos_token)}
                )
                messages.append({"role": "user", "content": observation})
        ids = _chat_ids(tokenizer, messages[:-1], tools, generation_prompt=False)
        mask = [0] * len(ids)
        for start, end in spans:
            mask[start:end] = [1] * (end - start)
        rows.append((ids, mask))
    width = max(len(ids) for ids, _ in rows)
    pad = [(width - len(ids)) for ids, _ in rows]
    input_ids = torch.tensor([ids + [0] * p for (ids, _), p in zip(rows, pad, strict=True)])
    attention = torch.tensor(
        [[1] * len(ids) + [0] * p for (ids, _), p in zip(rows, pad, strict=True)]
    )
    labels = torch.tensor(
        [
            [t if m else -100 for t, m in zip(ids, mask, strict=True)] + [-100] * p
            for (ids, mask), p in zip(rows, pad, strict=True)
        ]
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    for step in range(300):
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"tool-call fine-tuning step {step}: loss {loss.item():.4f}", file=sys.stderr)
        if loss.item() < 0.02:
            break
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _chat_ids(
    tokenizer: Any, messages: list[dict[str, Any]], tools: Any, generation_prompt: bool
) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages,
        tools=tools,
        add_generation_prompt=generation_prompt,
        tokenize=True,
        return_dict=False,
    )
    return list(ids)


def run_rounds_multi(args: argparse.Namespace, model: str, out: str) -> dict[str, Any]:
    from rounds.trainers import GRPOConfig, GRPOTrainer

    times: list[float] = []
    turns: list[float] = []
    tokens: list[float] = []
    phases: dict[str, list[float]] = {"time_rollout": [], "time_update": [], "reward/format": []}

    def on_step(metrics: dict[str, Any]) -> None:
        if metrics["step"] >= args.warmup:
            times.append(metrics["time_step"])
            turns.append(metrics["turns_mean"])
            tokens.append(metrics["sampled_tokens"])
            for name, values in phases.items():
                values.append(float(metrics.get(name, 0.0)))

    config = GRPOConfig(
        env_id=ENV_ID,
        env_kwargs=env_kwargs(args.turns),
        model=model,
        steps=args.steps + args.warmup,
        tasks_per_step=args.prompts,
        group_size=args.group,
        max_new_tokens=args.tokens,
        max_episode_tokens=args.episode_tokens,
        advantage="turn",
        temperature=args.temperature,
        learning_rate=1e-5,
        micro_batch_size=args.prompts * args.group,
        output_dir=out,
        resume=False,
        log_episodes=False,
        checkpoint_every=10_000,
        seed=42,
        progress=False,
    )
    GRPOTrainer(config=config, on_step=on_step).train()
    return spread(times) | {
        "turns_per_episode": statistics.mean(turns),
        "sampled_tokens_per_step": statistics.median(tokens),
        "rollout_s": statistics.median(phases["time_rollout"]),
        "update_s": statistics.median(phases["time_update"]),
        # The env's penalty for invalid replies, summed over an episode (0: every call valid).
        "format_penalty_per_episode": statistics.mean(phases["reward/format"]),
        "learns_from": "turn-level rewards (advantage: turn)",
    }


def run_trl_multi(args: argparse.Namespace, model_path: str, out: str) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rounds.integrations.trl import environment_factory, task_rows, use_chatml_tool_parser

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    kwargs = env_kwargs(args.turns)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    tokenizer = use_chatml_tool_parser(AutoTokenizer.from_pretrained(model_path))
    tokenizer.padding_side = "left"
    rows = task_rows(ENV_ID, 64, seed=42, **kwargs)
    times: list[float] = []
    turns: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, _args: Any, state: Any, *a: Any, **k: Any) -> None:
            if state.global_step > args.warmup:
                times.append(time.perf_counter() - self.start)

        def on_log(self, _args: Any, state: Any, control: Any, logs: Any = None, **k: Any) -> None:
            if logs and "tools/call_frequency" in logs and state.global_step > args.warmup:
                turns.append(1.0 + logs["tools/call_frequency"])

    config = GRPOConfig(
        output_dir=out,
        max_steps=args.steps + args.warmup,
        per_device_train_batch_size=args.prompts * args.group,
        num_generations=args.group,
        max_completion_length=args.episode_tokens,
        max_tool_calling_iterations=args.turns - 1,
        generation_kwargs={"max_new_tokens": args.tokens},
        learning_rate=1e-5,
        beta=0.0,
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=42,
        temperature=args.temperature,
    )
    trainer = GRPOTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[Timer()],
        environment_factory=environment_factory(ENV_ID, **kwargs),
    )
    trainer.remove_callback(PrinterCallback)  # its log lines would mix with the table / JSON
    trainer.train()
    return spread(times) | {
        "turns_per_episode": statistics.mean(turns) if turns else float("nan"),
        "learns_from": "one reward per rollout (get_reward: the episode's return)",
    }


def spread(times: list[float]) -> dict[str, Any]:
    return {
        "step_s": {
            "median": statistics.median(times),
            "min": min(times),
            "max": max(times),
        },
        "steps": len(times),
    }


def multi_turn(args: argparse.Namespace, work: str) -> None:
    model = tool_calling_model(args.turns)
    ours = run_rounds_multi(args, model, f"{work}/rounds")
    theirs = run_trl_multi(args, model, f"{work}/trl")
    ratio = ours["step_s"]["median"] / theirs["step_s"]["median"]
    if args.json:
        print(json.dumps({"rounds": ours, "trl": theirs, "rounds_over_trl": ratio}))
        return
    print(
        f"# GRPO step, multi-turn: {ENV_ID} through its tools, {args.turns} turns, tiny model on CPU, "
        f"{args.prompts} tasks x {args.group} rollouts, up to {args.tokens} tokens a reply, "
        f"temperature {args.temperature}, {args.steps} measured steps after {args.warmup} warm-up"
    )
    print(f"{'trainer':<8} {'median s':>9} {'min s':>7} {'max s':>7} {'turns/ep':>9}  learns from")
    for name, row in (("rounds", ours), ("trl", theirs)):
        t = row["step_s"]
        print(
            f"{name:<8} {t['median']:>9.3f} {t['min']:>7.3f} {t['max']:>7.3f} "
            f"{row['turns_per_episode']:>9.2f}  {row['learns_from']}"
        )
    print(
        f"rounds' step: rollout {ours['rollout_s']:.3f} s, update {ours['update_s']:.3f} s (medians); "
        f"{ours['sampled_tokens_per_step']:.0f} sampled tokens a step; invalid-reply penalty "
        f"{ours['format_penalty_per_episode']:.2f} an episode"
    )
    print(f"rounds step time / TRL step time: {ratio:.2f}x (goal: <= 0.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workload", choices=("single-turn", "multi-turn"), default="single-turn")
    parser.add_argument("--steps", type=int, default=None, help="measured steps (12; multi-turn 4)")
    parser.add_argument(
        "--prompts", type=int, default=None, help="tasks (GRPO groups) per step (4; multi-turn 2)"
    )
    parser.add_argument(
        "--group", type=int, default=None, help="completions per task (8; multi-turn 4)"
    )
    parser.add_argument(
        "--tokens", type=int, default=None, help="token limit of one reply (32; multi-turn 64)"
    )
    parser.add_argument("--turns", type=int, default=4, help="multi-turn: the env's turn limit")
    parser.add_argument(
        "--episode-tokens", type=int, default=4096, help="multi-turn: token budget of an episode"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.3,
        help="multi-turn: sampling temperature of both (low, so the tiny checkpoint's calls stay valid)",
    )
    parser.add_argument("--json", action="store_true", help="multi-turn: one JSON line")
    args = parser.parse_args()
    multi = args.workload == "multi-turn"
    for name, single, several in (
        ("steps", 12, 4),
        ("prompts", 4, 2),
        ("group", 8, 4),
        ("tokens", 32, 64),
    ):
        if getattr(args, name) is None:
            setattr(args, name, several if multi else single)
    args.warmup = 1 if multi else WARMUP
    if multi and args.turns < 2:
        parser.error("--turns must be at least 2 for the multi-turn workload")
    work = tempfile.mkdtemp(prefix="rounds-bench-")
    try:
        if multi:
            multi_turn(args, work)
            return
        ours = run_rounds(args, f"{work}/rounds")
        theirs = run_trl(args, f"{work}/trl")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"# GRPO step, tiny model on CPU: {args.prompts} prompts x {args.group} completions, up to {args.tokens} tokens each"
    )
    print(f"{'trainer':<8} {'median step s':>14} {'tokens/step':>12} {'tokens/s':>10}")
    for name, row in (("rounds", ours), ("trl", theirs)):
        print(
            f"{name:<8} {row['step_s']:>14.3f} {row['tokens']:>12.0f} {row['tokens_per_s']:>10.0f}"
        )
    print(
        f"speed ratio (TRL step time / rounds step time): {theirs['step_s'] / ours['step_s']:.2f}x"
    )


if __name__ == "__main__":
    main()
