"""``GRPOTrainer``: agentic multi-turn GRPO on any `rounds` env.

Each training step reads top to bottom:

1. :meth:`GRPOTrainer.rollout` — G episodes of each of the step's tasks, generated
   in one batch by the current policy, envs stepped in a thread pool;
2. :meth:`GRPOTrainer.score` — reward shaping (and IGPO information gain);
3. :meth:`GRPOTrainer.advantages` — outcome or turn-level advantages, plus GiGPO;
4. :meth:`GRPOTrainer.update` — the clipped policy-gradient update over the
   episodes' token sequences;
5. :meth:`GRPOTrainer.log` and :meth:`GRPOTrainer.checkpoint`.

All randomness of step ``s`` is seeded from ``(seed, s)``, so a run resumed from a
checkpoint continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import copy
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rounds.agents.loop import EpisodeSpec, Rollout, run_episodes
from rounds.records import Episode
from rounds.registration import make
from rounds.shaping import ShapedEpisode
from rounds.stats import pass_at_k
from rounds.storage import RunDir
from rounds.trainers.advantages import outcome_advantages, step_group_advantages, turn_advantages
from rounds.trainers.checkpoint import (
    latest_checkpoint,
    read_state,
    save_checkpoint,
    trim_after,
)
from rounds.trainers.config import GRPOConfig
from rounds.trainers.info_gain import answer_logprobs, information_gains, turn_contexts
from rounds.trainers.loss import ppo_clip_loss, token_logprobs
from rounds.trainers.sequences import TrainSequence, build_sequence, has_tokens


def step_seed(*parts: object) -> int:
    """A 31-bit seed from ``parts``, stable across processes."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


@dataclass
class Scored:
    """One episode after shaping: its return, outcome and per-turn rewards."""

    rollout: Rollout
    shaped: ShapedEpisode
    turn_rewards: list[float]
    info_gains: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.shaped.outcome + float(sum(self.turn_rewards))


class GRPOTrainer:
    """Trains a causal LM policy with GRPO on episodes of a `rounds` env.

    Args:
        model: a path, hub id or ``"tiny"`` (overrides ``config.model``), or a loaded
            ``PreTrainedModel`` (then pass ``tokenizer``).
        env_id: overrides ``config.env_id``.
        config: every setting; see :class:`GRPOConfig`.
        tokenizer: with a loaded model.
        on_step: called with each step's metrics (the CLI's progress display).
        on_warm_start: called with each warm-start epoch and its loss.
    """

    def __init__(
        self,
        model: str | Any | None = None,
        env_id: str | None = None,
        config: GRPOConfig | None = None,
        *,
        tokenizer: Any = None,
        on_step: Callable[[dict[str, Any]], None] | None = None,
        on_warm_start: Callable[[int, float], None] | None = None,
    ) -> None:
        import torch

        from rounds.offline import apply_offline_defaults

        apply_offline_defaults()
        updates: dict[str, Any] = {}
        if isinstance(model, str):
            updates["model"] = model
        if env_id is not None:
            updates["env_id"] = env_id
        self.config = (config or GRPOConfig()).model_copy(update=updates)
        config = self.config
        self.on_step = on_step
        self.on_warm_start = on_warm_start
        self.device = self._device(config.device)
        self.run = RunDir(config.output_dir)
        self.checkpoints = self.run.checkpoints_path
        resume_from = latest_checkpoint(self.checkpoints) if config.resume else None
        self.start_step = int(read_state(resume_from)["step"]) if resume_from is not None else 0

        torch.manual_seed(config.seed)
        self.autocast = self._autocast_dtype(config.bf16)
        self.policy, self.tokenizer, self.reference = self._load_policy(
            model, tokenizer, resume_from
        )
        if config.gradient_checkpointing:
            self.policy.gradient_checkpointing_enable()
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        warmup = config.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
        )
        if resume_from is not None:
            self.optimizer.load_state_dict(
                torch.load(resume_from / "optimizer.pt", weights_only=True)
            )
            self.scheduler.load_state_dict(
                torch.load(resume_from / "scheduler.pt", weights_only=True)
            )
            trim_after(self.run.metrics_path, self.start_step, lambda row: row.get("step"))
            trim_after(
                self.run.episodes_path,
                self.start_step,
                lambda row: (row.get("meta") or {}).get("step"),
            )
        #: Whether the weights come from a checkpoint (then any warm start is in them).
        self.resumed = resume_from is not None

        self.env_kwargs = dict(config.env_kwargs)
        if config.max_turns is not None:
            self.env_kwargs["max_turns"] = config.max_turns
        probe = make(config.env_id, split=config.split, **self.env_kwargs)
        self.task_ids = probe.unwrapped.task_ids(config.split)
        probe.close()
        if len(self.task_ids) == 0:
            raise ValueError(f"{config.env_id} has no tasks in split {config.split!r}")
        if resume_from is None:
            # Starting over (the settings checked above): rows and checkpoints of an earlier
            # run here, or of one killed before its first checkpoint, are not this run's.
            self.run.clear()
        self.run.write_config({"kind": "train", **config.model_dump(mode="json")})
        self._loggers = self._external_loggers()

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _device(choice: str) -> str:
        import torch

        if choice == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return choice

    def _autocast_dtype(self, bf16: bool | str) -> Any:
        import torch

        wanted = bf16 is True or (bf16 == "auto" and self.device.startswith("cuda"))
        if wanted and self.device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if bf16 is True and not self.device.startswith("cuda"):
            raise ValueError(
                "bf16=True needs a CUDA GPU; use bf16='auto' to train in float32 on CPU"
            )
        return None

    def _load_policy(
        self, model: Any, tokenizer: Any, checkpoint: Path | None
    ) -> tuple[Any, Any, Any]:
        """The policy (from ``checkpoint`` when resuming), its tokenizer, and the frozen KL
        reference: the initial policy, also on resume.

        Trained weights are float32 whatever their stored dtype (a model passed in is
        converted in place): AdamW steps on bf16 weights mostly round away, so bf16 is
        used only through autocast. Frozen weights (the reference, a LoRA base) are bf16
        when training in bf16; peft keeps adapters in float32.
        """
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from rounds.models import resolve_model

        hf_logging.disable_progress_bar()
        config = self.config
        frozen_dtype = self.autocast or torch.float32  # weights no optimizer steps

        def load(source: Any, dtype: Any) -> Any:
            return AutoModelForCausalLM.from_pretrained(source, dtype=dtype)

        loaded = model is not None and not isinstance(model, str)
        if loaded:
            if tokenizer is None:
                raise ValueError("pass tokenizer= together with a loaded model")
            if config.lora is None:
                model.float()  # in place: the master weights must be float32
        else:
            source = resolve_model(config.model)
            tokenizer = AutoTokenizer.from_pretrained(source)
        reference = None
        if config.kl_coef > 0 and config.lora is None:
            reference = (
                copy.deepcopy(model).to(dtype=frozen_dtype)
                if loaded
                else load(source, frozen_dtype)
            )
            reference = reference.eval().to(self.device)
            for parameter in reference.parameters():
                parameter.requires_grad_(False)
        if config.lora is not None:
            from peft import LoraConfig, PeftModel, get_peft_model

            base = model if loaded else load(source, frozen_dtype)
            if checkpoint is not None:
                policy = PeftModel.from_pretrained(base, checkpoint / "model", is_trainable=True)
            else:
                lora = config.lora
                policy = get_peft_model(
                    base,
                    LoraConfig(
                        r=lora.r,
                        lora_alpha=lora.alpha,
                        lora_dropout=lora.dropout,
                        target_modules=lora.target_modules,
                    ),
                )
        elif checkpoint is not None:
            saved = load(checkpoint / "model", torch.float32)
            if loaded:
                model.load_state_dict(saved.state_dict())
            policy = model if loaded else saved
        else:
            policy = model if loaded else load(source, torch.float32)
        return policy.to(self.device), tokenizer, reference

    def _external_loggers(self) -> list[Any]:
        loggers: list[Any] = []
        if self.config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError(
                    "tensorboard=True needs the tensorboard package: pip install tensorboard"
                ) from err
            loggers.append(SummaryWriter(log_dir=str(self.run.path / "tensorboard")))
        if self.config.wandb:
            try:
                import wandb
            except ImportError as err:
                raise ImportError("wandb=True needs the wandb package: pip install wandb") from err
            loggers.append(
                wandb.init(
                    project="rounds",
                    dir=str(self.run.path),
                    config=self.config.model_dump(mode="json"),
                )
            )
        return loggers

    # ------------------------------------------------------------------ the loop

    def train(self) -> dict[str, Any]:
        """Warm-start if configured (a new run only), then run the remaining steps; returns the
        last step's metrics."""
        metrics: dict[str, Any] = {}
        if self.config.warm_start is not None and not self.resumed:
            self.warm_start()
        for step in range(self.start_step, self.config.steps):
            metrics = self.train_step(step)
        for logger in self._loggers:
            logger.close() if hasattr(logger, "close") else logger.finish()
        return metrics

    def train_step(self, step: int) -> dict[str, Any]:
        """One step: rollout, score, advantages, update, log, checkpoint."""
        started = time.perf_counter()
        groups, timing = self.rollout(step)
        scored = [self.score(group) for group in groups]
        sequences, advantage_stats = self.advantages(scored)
        update_started = time.perf_counter()
        update_stats = self.update(sequences, step)
        timing["time_update"] = time.perf_counter() - update_started
        timing["time_step"] = time.perf_counter() - started
        metrics = self.metrics(step, scored, advantage_stats, update_stats, timing)
        if self.config.eval_every and (step + 1) % self.config.eval_every == 0:
            metrics.update(self.evaluate(step))
        self.log(step, metrics, scored)
        self.checkpoint(step)
        return metrics

    # ------------------------------------------------------------------ 0. warm start

    def warm_start(self) -> list[float]:
        """Clone the configured scripted baseline; logs a ``phase: warm_start`` row per epoch."""
        from rounds.agents.tokens import ConversationTokens
        from rounds.trainers.warm_start import clone, clone_sequence, collect

        settings = self.config.warm_start
        assert settings is not None
        started = time.perf_counter()
        rollouts = collect(
            self.make_env,
            self.config.env_id,
            settings.policy,
            settings.episodes,
            self.config.seed,
            self.task_ids,
        )
        probe = self.make_env()
        tools = probe.unwrapped.tools
        probe.close()
        tokens = ConversationTokens(
            self.tokenizer, max_context_tokens=self.config.max_episode_tokens
        )
        sequences = [clone_sequence(r, tokens, tools) for r in rollouts]
        sequences = [
            s
            for s in sequences
            if s.input_ids and len(s.input_ids) <= self.config.max_episode_tokens
        ]
        losses = clone(
            self.policy,
            sequences,
            epochs=settings.epochs,
            learning_rate=settings.learning_rate,
            micro_batch_size=settings.micro_batch_size,
            pad_id=int(self.tokenizer.pad_token_id),
            device=self.device,
            seed=self.config.seed,
            on_epoch=self.on_warm_start,
        )
        with self.run.metrics_writer() as writer:
            for epoch, loss in enumerate(losses):
                writer.write(
                    {
                        "step": -1,
                        "phase": "warm_start",
                        "epoch": epoch,
                        "warm_start_loss": loss,
                        "episodes": len(sequences),
                        "policy": settings.policy,
                        "time": time.perf_counter() - started,
                    }
                )
        self._save(0)  # a run killed later resumes with the warm-started weights
        return losses

    # ------------------------------------------------------------------ 1. rollout

    def make_env(self) -> Any:
        return make(self.config.env_id, split=self.config.split, **self.env_kwargs)

    def play(self, specs: list[EpisodeSpec], split: str, seed: int) -> tuple[list[Rollout], float]:
        """Run ``specs`` with the current policy (one generation batch); returns the rollouts
        and the seconds spent generating."""
        from rounds.agents.hf import HFAgent

        config = self.config
        agent = HFAgent(
            model_obj=self.policy,
            tokenizer=self.tokenizer,
            device=self.device,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            max_context_tokens=config.max_episode_tokens,
            max_episode_tokens=config.max_episode_tokens,
            seed=seed,
            use_tools=config.use_tools,
            timeout_s=config.generation_timeout_s,
        )
        agent.model = config.model
        self.policy.eval()
        try:
            rollouts = list(
                run_episodes(
                    lambda: make(config.env_id, split=split, **self.env_kwargs),
                    agent,
                    specs,
                    env_id=config.env_id,
                    concurrency=config.concurrency or len(specs),
                    step_timeout_s=config.step_timeout_s,
                    straggler_s=config.straggler_s,
                )
            )
        finally:
            self.policy.train()
        return rollouts, agent.generation_seconds

    def rollout(self, step: int) -> tuple[list[list[Rollout]], dict[str, float]]:
        """G episodes of each of the step's tasks, grouped by task (in a fixed order)."""

        config = self.config
        rng = np.random.default_rng([config.seed, step])
        count = len(self.task_ids)
        picks = rng.choice(count, size=config.tasks_per_step, replace=count < config.tasks_per_step)
        specs = [
            EpisodeSpec(
                task_id=str(self.task_ids[int(task)]),
                seed=step_seed(config.seed, step, g),  # a group shares the task and its env seed
                agent_seed=step_seed("agent", config.seed, step, g, k),
                meta={"step": step, "group": g, "member": k},
            )
            for g, task in enumerate(picks)
            for k in range(config.group_size)
        ]
        started = time.perf_counter()
        rollouts, generation = self.play(
            specs, config.split, step_seed("sample", config.seed, step)
        )
        elapsed = time.perf_counter() - started
        rollouts.sort(key=lambda r: (r.episode.meta["group"], r.episode.meta["member"]))
        groups: list[list[Rollout]] = [[] for _ in range(config.tasks_per_step)]
        for rollout in rollouts:
            groups[int(rollout.episode.meta["group"])].append(rollout)
        env_time = sum(
            float(t.info.get("env_latency_s", 0.0)) for r in rollouts for t in r.episode.turns
        )
        return groups, {
            "time_rollout": elapsed,
            "time_generation": generation,
            "time_env": env_time,
        }

    def evaluate(self, step: int) -> dict[str, float]:
        """Held-out evaluation with the current policy: K samples of the eval split's first T tasks.

        Returns ``eval/``-prefixed metrics: success, pass@k for k = 1, 2, 4, ... K, and the
        answer-level entropy where the env reports final answers.
        """
        from rounds.stats import answer_entropy, final_answer, powers_of_two

        config = self.config
        started = time.perf_counter()
        probe = make(config.env_id, split=config.eval_split, **self.env_kwargs)
        ids = probe.unwrapped.task_ids(config.eval_split)
        probe.close()
        k_samples = config.eval_samples_per_task
        specs = [
            EpisodeSpec(
                task_id=str(ids[t % len(ids)]),
                seed=step_seed("eval", config.seed, t),
                agent_seed=step_seed("eval-agent", config.seed, step, t, k),
                meta={"task": t},
            )
            for t in range(config.eval_tasks)
            for k in range(k_samples)
        ]
        rollouts, _ = self.play(
            specs, config.eval_split, step_seed("eval-sample", config.seed, step)
        )
        by_task: dict[int, list[Episode]] = {}
        for rollout in rollouts:
            by_task.setdefault(int(rollout.episode.meta["task"]), []).append(rollout.episode)
        successes = [[float(e.success) for e in group] for group in by_task.values()]
        result = {"eval/success": float(np.mean([s for group in successes for s in group]))}
        for k in powers_of_two(k_samples):
            result[f"eval/pass@{k}"] = float(
                np.mean([pass_at_k(len(s), int(sum(s)), k) for s in successes])
            )
        answers = [
            [a for a in (final_answer(e) for e in group) if a is not None]
            for group in by_task.values()
        ]
        if any(answers):
            result["eval/answer_entropy"] = float(np.mean([answer_entropy(a) for a in answers]))
        result["time_eval"] = time.perf_counter() - started
        return result

    # ------------------------------------------------------------------ 2. score

    def score(self, group: list[Rollout]) -> list[Scored]:
        """Shape each episode's rewards; add the policy's information gain per turn (IGPO)."""
        config = self.config
        scored = []
        for rollout in group:
            shaped = config.shaping.shape(rollout.episode)
            scored.append(Scored(rollout, shaped, list(shaped.turn_rewards)))
        if config.info_gain_weight > 0:
            for item in scored:
                answer = (item.rollout.episode.meta.get("reset_info") or {}).get("answer")
                contexts = turn_contexts(item.rollout)
                if not answer or not contexts or not has_tokens(item.rollout):
                    continue
                answer_ids = self.tokenizer(str(answer), add_special_tokens=False).input_ids
                self.policy.eval()
                logps = answer_logprobs(
                    self.policy,
                    contexts,
                    answer_ids,
                    pad_id=int(self.tokenizer.pad_token_id),
                    temperature=config.temperature,
                )
                self.policy.train()
                item.info_gains = information_gains(logps, kind=config.info_gain_kind)
                for t, gain in enumerate(item.info_gains):
                    item.turn_rewards[t] += config.info_gain_weight * gain
        return scored

    # ------------------------------------------------------------------ 3. advantages

    def advantages(
        self, groups: list[list[Scored]]
    ) -> tuple[list[TrainSequence], dict[str, float]]:
        """Per-turn advantages for every trainable episode, and the step's advantage statistics."""
        config = self.config
        sequences: list[TrainSequence] = []
        zero_variance = untrainable = 0
        values: list[float] = []
        for group in groups:
            returns = [item.total for item in group]
            if config.filter_zero_variance and np.allclose(returns, returns[0]):
                zero_variance += 1
                continue
            if config.advantage == "outcome":
                episode_advantages = outcome_advantages(returns, scale_by_std=config.scale_by_std)
                per_turn = [
                    np.full(len(item.turn_rewards), a)
                    for item, a in zip(group, episode_advantages, strict=True)
                ]
            else:
                per_turn = turn_advantages(
                    [item.turn_rewards for item in group],
                    [item.shaped.outcome for item in group],
                    gamma=config.gamma,
                    normalization=config.turn_normalization,
                    scale_by_std=config.scale_by_std,
                )
            if config.step_group_weight > 0:
                step_advantages = step_group_advantages(
                    [[t.observation for t in item.rollout.episode.turns] for item in group],
                    [item.turn_rewards for item in group],
                    [item.shaped.outcome for item in group],
                    gamma=config.gamma,
                )
                per_turn = [
                    a + config.step_group_weight * s
                    for a, s in zip(per_turn, step_advantages, strict=True)
                ]
            for item, advantages in zip(group, per_turn, strict=True):
                for turn, advantage in zip(item.rollout.episode.turns, advantages, strict=False):
                    turn.advantage = float(advantage)
                if not has_tokens(item.rollout):
                    untrainable += 1
                    continue
                sequences.append(build_sequence(item.rollout, advantages.tolist()))
                values += [float(a) for a in advantages]
        array = np.asarray(values) if values else np.zeros(1)
        return sequences, {
            "zero_variance_groups": float(zero_variance),
            "untrainable_episodes": float(untrainable),
            "advantage_mean": float(array.mean()),
            "advantage_std": float(array.std()),
            "advantage_abs_mean": float(np.abs(array).mean()),
        }

    # ------------------------------------------------------------------ 4. update

    def _collate(self, sequences: list[TrainSequence]) -> dict[str, Any]:
        import torch

        pad = int(self.tokenizer.pad_token_id)
        width = max(len(s.input_ids) for s in sequences)

        def padded(rows: list[list[Any]], value: Any, dtype: Any) -> Any:
            return torch.tensor(
                [r + [value] * (width - len(r)) for r in rows], dtype=dtype, device=self.device
            )

        return {
            "input_ids": padded([s.input_ids for s in sequences], pad, torch.long),
            "attention_mask": padded([[1] * len(s.input_ids) for s in sequences], 0, torch.long),
            "loss_mask": padded([s.loss_mask for s in sequences], 0, torch.float),
            "old_logprobs": padded([s.old_logprobs for s in sequences], 0.0, torch.float),
            "advantages": padded([s.advantages for s in sequences], 0.0, torch.float),
        }

    def update(self, sequences: list[TrainSequence], step: int) -> dict[str, float]:
        """``epochs`` passes of the clipped objective over the step's sequences, one optimizer step each."""
        import contextlib

        import torch

        config = self.config
        totals = {
            "loss": 0.0,
            "policy_loss": 0.0,
            "kl": 0.0,
            "entropy": 0.0,
            "clipped": 0.0,
            "ratio": 0.0,
        }
        tokens = float(sum(sum(s.loss_mask) for s in sequences))
        result = {
            "tokens_trained": tokens,
            "grad_norm": 0.0,
            "skipped_nonfinite": 0.0,
            "learning_rate": self.scheduler.get_last_lr()[0],
        }
        if not sequences or tokens == 0:
            return {**result, **dict.fromkeys(totals, 0.0), "clip_fraction": 0.0}
        params = [p for p in self.policy.parameters() if p.requires_grad]
        for epoch in range(config.epochs):
            order = np.random.default_rng([config.seed, step, epoch]).permutation(len(sequences))
            finite = True
            for start in range(0, len(order), config.micro_batch_size):
                batch = self._collate(
                    [sequences[i] for i in order[start : start + config.micro_batch_size]]
                )
                autocast = (
                    torch.autocast(device_type="cuda", dtype=self.autocast)
                    if self.autocast is not None
                    else contextlib.nullcontext()
                )
                with autocast:
                    logprobs, entropy = token_logprobs(
                        self.policy,
                        batch["input_ids"],
                        batch["attention_mask"],
                        config.temperature,
                        entropy=True,
                        entropy_grad=config.entropy_coef != 0,
                    )
                    ref = None
                    if config.kl_coef > 0:
                        ref = self._reference_logprobs(batch)
                    loss, stats = ppo_clip_loss(
                        logprobs,
                        batch["old_logprobs"][:, 1:],
                        batch["advantages"][:, 1:],
                        batch["loss_mask"][:, 1:],
                        clip_low=config.clip_low,
                        clip_high=config.clip_high,
                        normalizer=tokens,
                        ref_logprobs=ref,
                        kl_coef=config.kl_coef,
                        entropy=entropy,
                        entropy_coef=config.entropy_coef,
                    )
                if not torch.isfinite(loss):
                    finite = False
                    break
                loss.backward()
                totals["loss"] += float(loss.detach()) / config.epochs
                for key, value in (
                    ("policy_loss", stats.policy_loss),
                    ("kl", stats.kl),
                    ("entropy", stats.entropy),
                    ("clipped", stats.clipped),
                    ("ratio", stats.ratio),
                ):
                    totals[key] += value / tokens / config.epochs
            grad_norm = (
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                if finite
                else torch.tensor(math.nan)
            )
            if not finite or not torch.isfinite(grad_norm):
                self.optimizer.zero_grad(set_to_none=True)
                result["skipped_nonfinite"] += 1
                continue
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            result["grad_norm"] = float(grad_norm)
        self.scheduler.step()
        return {
            **result,
            "loss": totals["loss"],
            "policy_loss": totals["policy_loss"],
            "kl": totals["kl"],
            "entropy": totals["entropy"],
            "clip_fraction": totals["clipped"],
            "ratio_mean": totals["ratio"],
        }

    def _reference_logprobs(self, batch: dict[str, Any]) -> Any:
        """Log-probs under the frozen reference: the initial policy, or the LoRA base."""
        import contextlib

        import torch

        frozen = self.reference is not None
        model = self.reference if frozen else self.policy
        with torch.no_grad(), contextlib.nullcontext() if frozen else self.policy.disable_adapter():
            ref, _ = token_logprobs(
                model, batch["input_ids"], batch["attention_mask"], self.config.temperature
            )
        return ref

    # ------------------------------------------------------------------ 5. log and checkpoint

    def metrics(
        self,
        step: int,
        groups: list[list[Scored]],
        advantage_stats: dict[str, float],
        update_stats: dict[str, float],
        timing: dict[str, float],
    ) -> dict[str, Any]:
        episodes = [item.rollout.episode for group in groups for item in group]
        returns = np.array([item.total for group in groups for item in group])
        components: dict[str, list[float]] = {}
        for episode in episodes:
            sums: dict[str, float] = {}
            for turn in episode.turns:
                for key, value in turn.reward_components.items():
                    sums[key] = sums.get(key, 0.0) + value
            for key, value in sums.items():
                components.setdefault(key, []).append(value)
        sampled = sum(
            sum(a.sampled_mask or [])
            for group in groups
            for item in group
            for a in item.rollout.actions
        )
        successes = [[float(item.rollout.episode.success) for item in group] for group in groups]
        g = self.config.group_size
        metrics: dict[str, Any] = {
            "step": step,
            "episodes": len(episodes),
            "reward_mean": float(returns.mean()),
            "reward_std": float(returns.std()),
            "outcome_mean": float(np.mean([e.outcome for e in episodes])),
            "success_rate": float(np.mean([s for group in successes for s in group])),
            "pass@1": float(np.mean([pass_at_k(len(s), int(sum(s)), 1) for s in successes])),
            f"pass@{g}": float(np.mean([pass_at_k(len(s), int(sum(s)), g) for s in successes])),
            "turns_mean": float(np.mean([e.num_turns for e in episodes])),
            "truncated_rate": float(np.mean([e.truncated for e in episodes])),
            "sampled_tokens": float(sampled),
            "tokens_per_s": float(sampled / timing["time_generation"])
            if timing["time_generation"]
            else 0.0,
            **{
                f"reward/{key}": float(np.mean(values))
                for key, values in sorted(components.items())
            },
            **advantage_stats,
            **update_stats,
            **timing,
        }
        info_gains = [g for group in groups for item in group for g in item.info_gains]
        if info_gains:
            metrics["info_gain_mean"] = float(np.mean(info_gains))
        return metrics

    def log(self, step: int, metrics: dict[str, Any], groups: list[list[Scored]]) -> None:
        """Append the step's metrics (and its episodes) to the run directory."""
        with self.run.metrics_writer() as writer:
            writer.write(metrics)
        if self.config.log_episodes:
            with self.run.episode_writer() as writer:
                for group in groups:
                    for item in group:
                        episode: Episode = item.rollout.episode
                        writer.write(episode)
        for logger in self._loggers:
            if hasattr(logger, "add_scalar"):
                for key, value in metrics.items():
                    if isinstance(value, int | float):
                        logger.add_scalar(key, value, step)
            else:
                logger.log(
                    {k: v for k, v in metrics.items() if isinstance(v, int | float)}, step=step
                )
        if self.on_step is not None:
            self.on_step(metrics)

    def checkpoint(self, step: int) -> None:
        """Save after every ``checkpoint_every`` steps and after the last."""
        done = step + 1
        if done % self.config.checkpoint_every and done != self.config.steps:
            return
        self._save(done)

    def _save(self, done: int) -> None:
        save_checkpoint(
            self.checkpoints,
            done,
            model=self.policy,
            tokenizer=self.tokenizer,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            state={"config": self.config.model_dump(mode="json")},
            keep=self.config.keep_checkpoints,
        )
