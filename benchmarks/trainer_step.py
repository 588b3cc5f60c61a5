"""Time per GRPO step and tokens/s: rounds' GRPOTrainer beside TRL's, same model and task.

Usage: python benchmarks/trainer_step.py [--steps 12] [--prompts 4] [--group 8] [--tokens 32]

Both trainers run here, in one process, on the embedded tiny model (CPU): the
same prompts (a system and a user message through the same chat template), the
same group size, completion length, learning rate, no KL, one optimisation pass
per generation batch, and a rule reward (the reply starts with a vowel). TRL's
side needs ``pip install "trl==1.16.*"`` (not a rounds dependency). The first two
steps of each are warm-up and not counted. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, default=12, help="measured steps (after 2 warm-up steps)"
    )
    parser.add_argument("--prompts", type=int, default=4, help="prompts (GRPO groups) per step")
    parser.add_argument("--group", type=int, default=8, help="completions per prompt")
    parser.add_argument("--tokens", type=int, default=32, help="completion length limit")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="rounds-bench-")
    try:
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
