"""``GRPOTrainer``: agentic multi-turn GRPO on any `rounds` env.

Each training step reads top to bottom:

1. :meth:`GRPOTrainer.rollout` — G episodes of each of the step's tasks, generated
   in one batch by the current policy, envs stepped in a thread pool;
2. :meth:`GRPOTrainer.score` — reward shaping (and IGPO information gain);
3. :meth:`GRPOTrainer.advantages` — outcome or turn-level advantages, plus GiGPO;
4. :meth:`GRPOTrainer.update` — the clipped policy-gradient update over the
   episodes' token sequences;
5. :meth:`GRPOTrainer.log` and :meth:`GRPOTrainer.checkpoint`.

The parts live beside it: the policy's loading (``policy``), the step's episodes and
seeds (``rollout``), shaping and information gain (``scoring``), the advantage
estimators (``advantages``), the loss (``loss``), metrics and trackers
(``metrics``), held-out evaluation (``evaluation``), checkpoints and the resume check
(``checkpoint``, ``resume``) and the progress display (``progress``).

All randomness of step ``s`` is seeded from ``(seed, s)``, so a run resumed from a
checkpoint continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from rounds.agents.base import BaseAgent
from rounds.agents.loop import EpisodeSpec, Rollout, run_episodes
from rounds.agents.recording import unwrap_text_env
from rounds.agents.registry import make_agent
from rounds.distributed.workers import EnvWorkers
from rounds.registration import make
from rounds.storage import RunDir, read_episodes
from rounds.trainers.advantages import group_advantages
from rounds.trainers.checkpoint import latest_checkpoint, read_state, save_checkpoint, trim_after
from rounds.trainers.config import GRPOConfig
from rounds.trainers.curriculum import PassRateCurriculum
from rounds.trainers.engines import RolloutEngine
from rounds.trainers.evaluation import config_env_kwargs, evaluation_metrics, plan_evaluation
from rounds.trainers.likelihood import StdFilter, add_likelihood_rewards
from rounds.trainers.loss import ppo_clip_loss, token_logprobs
from rounds.trainers.metrics import MetricTrackers, require_trackers, step_metrics
from rounds.trainers.off_policy import importance_corrected
from rounds.trainers.policy import autocast_dtype, load_policy, resolve_device
from rounds.trainers.progress import TrainingProgress
from rounds.trainers.prover import add_prover_progress
from rounds.trainers.resume import check_resume
from rounds.trainers.rollout import group_by_task, step_episodes
from rounds.trainers.scoring import Scored, add_information_gain, shape_group
from rounds.trainers.sequences import (
    TrainSequence,
    build_sequence,
    collate,
    has_tokens,
    micro_batches,
    trains_tokens,
)

if TYPE_CHECKING:
    import gymnasium as gym
    from rich.console import Console


class GRPOTrainer:
    """Trains a causal LM policy with GRPO on episodes of a `rounds` env.

    Args:
        model: a path, hub id or ``"tiny"`` (overrides ``config.model``), or a loaded
            ``PreTrainedModel`` (then pass ``tokenizer``).
        env_id: overrides ``config.env_id``.
        config: every setting; see :class:`GRPOConfig`.
        tokenizer: with a loaded model.
        on_step: called with each step's metrics.
        on_warm_start: called with each warm-start epoch and its loss.
        console: where the progress bar is drawn (``config.progress``); default stdout.

    Raises:
        ValueError: bad settings, an env without tasks, or a resume with settings that
            change the run (:class:`~rounds.trainers.resume.ResumeError`).
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
        console: Console | None = None,
    ) -> None:
        import torch

        from rounds.offline import apply_offline_defaults

        apply_offline_defaults()
        updates: dict[str, Any] = {}
        if isinstance(model, str):
            updates["model"] = model
        if env_id is not None:
            updates["env_id"] = env_id
        base = config or GRPOConfig()
        # Validated again with the overrides, so a bad model or env id fails like a bad config.
        self.config = config = (
            GRPOConfig.model_validate({**base.model_dump(), **updates}) if updates else base
        )
        self.on_step = on_step
        self.on_warm_start = on_warm_start
        self.console = console
        #: The display of the running ``train()`` call (None outside it).
        self.progress: TrainingProgress | None = None
        self.run = RunDir(config.output_dir)
        self.checkpoints = self.run.checkpoints_path
        resume_from = latest_checkpoint(self.checkpoints) if config.resume else None
        if resume_from is not None:
            check_resume(config, self.run.config_path, resume_from)
        #: Whether the weights come from a checkpoint (then any warm start is in them).
        self.resumed = resume_from is not None
        self.start_step = int(read_state(resume_from)["step"]) if resume_from is not None else 0

        #: The vllm or server rollout engine (None: the hf agent samples the live policy);
        #: built first, so a missing vLLM or a bad server setting fails before any loading.
        self.engine = RolloutEngine(config) if config.rollout.backend != "hf" else None
        self.env_kwargs = config_env_kwargs(config)
        #: Where rollout envs run (``env_backend``); local envs serve probes and warm starts.
        self.env_workers = EnvWorkers(
            config.env_backend,
            config.env_workers or config.concurrency or config.tasks_per_step * config.group_size,
            resources=config.env_worker_resources,
        )
        probe = self.make_env()
        self.env = unwrap_text_env(probe)
        self.task_ids = list(self.env.task_ids(config.split))
        probe.close()
        if not self.task_ids:
            raise ValueError(f"{config.env_id} has no tasks in split {config.split!r}")
        if config.eval_every:
            # Plan the held-out evaluation now: a split too small for eval_tasks fails here,
            # not after the first eval_every steps.
            eval_probe = self.make_env(config.eval_split)
            try:
                plan_evaluation(config, unwrap_text_env(eval_probe))
            finally:
                eval_probe.close()

        require_trackers(config.report_to)
        self.device = resolve_device(config.device)
        self.autocast = autocast_dtype(config.bf16, self.device)
        torch.manual_seed(config.seed)
        policy = load_policy(
            config,
            None if isinstance(model, str) else model,
            tokenizer,
            resume_from,
            device=self.device,
            autocast=self.autocast,
        )
        self.policy, self.tokenizer, self.reference = (
            policy.model,
            policy.tokenizer,
            policy.reference,
        )
        params = [p for p in self.policy.parameters() if p.requires_grad]
        # The fused kernel updates every tensor in one call (CPU and CUDA, float weights): on a
        # small model the per-tensor loop of the default costs more than the step's backward.
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
        self.optimizer = torch.optim.AdamW(
            params,
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
            fused=fused or None,
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
        else:
            # Starting over (the settings checked above): rows and checkpoints of an earlier
            # run here, or of one killed before its first checkpoint, are not this run's.
            self.run.clear()
        self.run.write_config({"kind": "train", **config.model_dump(mode="json")})
        self.trackers = MetricTrackers(
            config.report_to, self.run.path, config.model_dump(mode="json")
        )
        #: Task sampling by pass rate (``curriculum``), RLPR's std filter, and the step's
        #: costs and values of the optional learning signals (merged into its metrics).
        self.curriculum = (
            PassRateCurriculum(config.curriculum) if config.curriculum is not None else None
        )
        if self.curriculum is not None and self.resumed:
            self.curriculum.replay(read_episodes(self.run.episodes_path))
        self.std_filter = (
            StdFilter(config.likelihood.rlpr_ema)
            if config.likelihood is not None
            and config.likelihood.rlpr_weight
            and config.likelihood.rlpr_std_filter
            else None
        )
        self.signal_stats: dict[str, float] = {}

    # ------------------------------------------------------------------ the loop

    def train(self) -> dict[str, Any]:
        """Warm-start if configured (a new run only), then run the remaining steps, showing
        progress; returns the last step's metrics."""
        config = self.config
        metrics: dict[str, Any] = {}
        with TrainingProgress(
            config.steps, self.start_step, show=config.progress, console=self.console
        ) as progress:
            self.progress = progress
            if self.start_step:
                progress.note(
                    f"Resuming from step {self.start_step} (checkpoint in {self.checkpoints})."
                )
            start_eval = config.eval_every and config.eval_at_start and not self.resumed
            if start_eval:
                self.evaluate_at_start("eval_start")
            if config.warm_start is not None and not self.resumed:
                progress.note(
                    f"Warm start: cloning the env's '{config.warm_start.policy}' baseline on "
                    f"{config.warm_start.episodes} episodes before GRPO."
                )
                self.warm_start()
                if start_eval:
                    self.evaluate_at_start("eval_warm_start")
            try:
                for step in range(self.start_step, config.steps):
                    metrics = self.train_step(step)
            finally:
                self.progress = None
                self.trackers.close()
                self.env_workers.close()
                if self.engine is not None:
                    self.engine.close()
        return metrics

    def train_step(self, step: int) -> dict[str, Any]:
        """One step: rollout, score, advantages, update, log, checkpoint."""
        started = time.perf_counter()
        self.signal_stats = {}
        groups, timing = self.rollout(step)
        scored = [self.score(group) for group in groups]
        if self.curriculum is not None:
            for group in scored:
                for item in group:
                    episode = item.rollout.episode
                    self.curriculum.update(str(episode.task_id), [float(episode.success)])
            self.signal_stats.update(self.curriculum.metrics(self.task_ids))
        trained = scored
        if self.std_filter is not None:
            keep = self.std_filter.keep(
                [
                    [
                        float(i.rollout.episode.turns[-1].info.get("rlpr", 0.0))
                        for i in g
                        if i.rollout.episode.turns
                    ]
                    for g in scored
                ]
            )
            trained = [g for g, k in zip(scored, keep, strict=True) if k]
            self.signal_stats["rlpr_filtered_groups"] = float(len(scored) - len(trained))
        sequences, advantage_stats = self.advantages(trained)
        if self.engine is not None and self.config.rollout.importance_sampling_cap is not None:
            sequences = self.correct_off_policy(sequences)
        update_started = time.perf_counter()
        update_stats = self.update(sequences)
        if self.engine is not None:
            self.engine.stale = True  # the next rollout pushes the updated weights first
        timing["time_update"] = time.perf_counter() - update_started
        timing["time_step"] = time.perf_counter() - started
        metrics = step_metrics(
            step,
            scored,
            group_size=self.config.group_size,
            advantage_stats=advantage_stats,
            update_stats=update_stats,
            timing=timing,
        )
        if self.config.eval_every and (step + 1) % self.config.eval_every == 0:
            metrics.update(self.evaluate())
        metrics.update(self.signal_stats)
        if self.config.env_backend != "thread":
            metrics.update(self.env_workers.metrics())
        self.log(step, metrics, scored)
        self.checkpoint(step)
        return metrics

    def evaluate_at_start(self, phase: str) -> dict[str, Any]:
        """A held-out evaluation before GRPO (``eval_at_start``), logged as a step -1 row of
        ``phase`` ``eval_start`` (before any training: the run's "before") or
        ``eval_warm_start`` (after the warm start, so its share of the rise shows)."""
        result: dict[str, Any] = {"step": -1, "phase": phase, **self.evaluate()}
        with self.run.metrics_writer() as writer:
            writer.write(result)
        if self.progress is not None:
            self.progress.note(
                f"Held-out success ({phase}): {100 * result.get('eval/success', 0.0):.0f}%"
            )
        return result

    # ------------------------------------------------------------------ 0. warm start

    def warm_start(self) -> list[float]:
        """Clone the configured scripted baseline; logs a ``phase: warm_start`` row per epoch."""
        from rounds.agents.tokens import ConversationTokens
        from rounds.trainers.warm_start import clone, clone_sequence, collect

        settings = self.config.warm_start
        if settings is None:
            raise ValueError("warm_start() needs config.warm_start (the baseline to clone)")
        started = time.perf_counter()
        rollouts = collect(
            self.make_env,
            self.config.env_id,
            settings.policy,
            settings.episodes,
            self.config.seed,
            self.task_ids,
        )
        tokens = ConversationTokens(
            self.tokenizer, max_context_tokens=self.config.max_episode_tokens
        )
        sequences = [clone_sequence(r, tokens, self.env) for r in rollouts]
        sequences = [
            s
            for s in sequences
            if s.input_ids and len(s.input_ids) <= self.config.max_episode_tokens
        ]

        def on_epoch(epoch: int, loss: float) -> None:
            if self.progress is not None:
                self.progress.warm_start_epoch(epoch, settings.epochs, loss)
            if self.on_warm_start is not None:
                self.on_warm_start(epoch, loss)

        losses = clone(
            self.policy,
            sequences,
            epochs=settings.epochs,
            learning_rate=settings.learning_rate,
            micro_batch_size=settings.micro_batch_size,
            pad_id=int(self.tokenizer.pad_token_id),
            device=self.device,
            seed=self.config.seed,
            on_epoch=on_epoch,
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
        if self.engine is not None:
            self.engine.stale = True
        self._save(0)  # a run killed later resumes with the warm-started weights
        return losses

    # ------------------------------------------------------------------ 1. rollout

    def make_env(self, split: str | None = None) -> gym.Env[str, str]:
        """One env of the run (its ``env_kwargs`` and ``max_turns``) on ``split`` (default: the
        training split)."""
        return make(self.config.env_id, split=split or self.config.split, **self.env_kwargs)

    def rollout_agent(self, seed: int) -> BaseAgent:
        """The rollout agent of ``config.rollout``: the hf agent sampling from the live policy,
        or the vllm/server engine's agent."""
        if self.engine is not None:
            return self.engine.agent(seed, self.tokenizer, self.policy)
        config = self.config
        agent = make_agent(
            config.rollout_agent,
            self.env,
            **{
                "model": config.model,
                "model_obj": self.policy,
                "tokenizer": self.tokenizer,
                "device": self.device,
                "max_new_tokens": config.max_new_tokens,
                "temperature": config.temperature,
                "max_context_tokens": config.max_episode_tokens,
                "max_episode_tokens": config.max_episode_tokens,
                "seed": seed,
                "use_tools": config.use_tools,
                "timeout_s": config.generation_timeout_s,
                **config.rollout_agent_options,
            },
        )
        return agent

    def play(self, specs: list[EpisodeSpec], split: str, seed: int) -> tuple[list[Rollout], float]:
        """Run ``specs`` with the current policy (one generation batch); returns the rollouts
        and the seconds spent generating."""
        config = self.config
        if self.engine is not None:
            self.engine.sync(self.policy, f"update-{int(self.scheduler.last_epoch):06d}")
        agent = self.rollout_agent(seed)
        self.policy.eval()
        try:
            rollouts = list(
                run_episodes(
                    lambda: self.env_workers.make(
                        config.env_id, split=split or config.split, **self.env_kwargs
                    ),
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
            agent.close()
        if self.engine is not None:
            self.engine.raise_failure(agent)
        return rollouts, agent.generation_seconds

    def rollout(self, step: int) -> tuple[list[list[Rollout]], dict[str, float]]:
        """G episodes of each of the step's tasks, grouped by task (in a fixed order)."""
        config = self.config
        weights = self.curriculum.weights(self.task_ids) if self.curriculum is not None else None
        specs, sampling_seed = step_episodes(config, self.task_ids, step, weights=weights)
        started = time.perf_counter()
        rollouts, generation = self.play(specs, config.split, sampling_seed)
        elapsed = time.perf_counter() - started
        env_time = sum(
            float(t.info.get("env_latency_s", 0.0)) for r in rollouts for t in r.episode.turns
        )
        return group_by_task(rollouts, config.tasks_per_step), {
            "time_rollout": elapsed,
            "time_generation": generation,
            "time_env": env_time,
            **(self.engine.step_metrics() if self.engine is not None else {}),
        }

    def evaluate(self) -> dict[str, float]:
        """Held-out evaluation with the current policy, planned and summarised as ``rounds eval``
        does (see :mod:`rounds.trainers.evaluation`); returns ``eval/``-prefixed metrics."""
        config = self.config
        started = time.perf_counter()
        probe = self.make_env(config.eval_split)
        env = unwrap_text_env(probe)
        specs = plan_evaluation(config, env)
        derived = dict(env.derived_metrics)
        probe.close()
        rollouts, _ = self.play(specs, config.eval_split, config.seed)
        result = evaluation_metrics(
            [r.episode for r in rollouts], derived=derived, seed=config.seed
        )
        result["time_eval"] = time.perf_counter() - started
        return result

    # ------------------------------------------------------------------ 2. score

    def score(self, group: list[Rollout]) -> list[Scored]:
        """Shape each episode's rewards; add the policy's information gain per turn (IGPO)."""
        config = self.config
        scored = shape_group(group, config.shaping)
        if config.info_gain_weight > 0:
            add_information_gain(
                scored,
                self.policy,
                self.tokenizer,
                weight=config.info_gain_weight,
                kind=config.info_gain_kind,
                temperature=config.temperature,
            )
        if config.prover_progress is not None:
            cost = add_prover_progress(
                scored, self.make_env, config.prover_progress, seed=config.seed
            )
            self._add_stats(cost)
        if config.likelihood is not None:
            self._add_stats(
                add_likelihood_rewards(
                    scored,
                    self.policy,
                    self.tokenizer,
                    config.likelihood,
                    temperature=config.temperature,
                )
            )
        return scored

    def _add_stats(self, stats: dict[str, float]) -> None:
        """Sum counts and times over the step's groups; means are averaged over groups."""
        groups = float(self.config.tasks_per_step)
        for key, value in stats.items():
            share = value / groups if key.endswith("_mean") else value
            self.signal_stats[key] = self.signal_stats.get(key, 0.0) + share

    # ------------------------------------------------------------------ 3. advantages

    def advantages(
        self, groups: list[list[Scored]]
    ) -> tuple[list[TrainSequence], dict[str, float]]:
        """Per-turn advantages (written into each turn's record) and the training sequences of
        every trainable episode, with the step's advantage statistics."""
        config = self.config
        sequences: list[TrainSequence] = []
        zero_variance = untrainable = 0
        values: list[float] = []
        for group in groups:
            returns = [item.total for item in group]
            if config.filter_zero_variance and np.allclose(returns, returns[0]):
                zero_variance += 1
                continue
            per_turn = group_advantages(
                [item.turn_rewards for item in group],
                [item.shaped.outcome for item in group],
                [[t.observation for t in item.rollout.episode.turns] for item in group],
                estimator=config.advantage,
                scale_by_std=config.scale_by_std,
                gamma=config.gamma,
                turn_normalization=config.turn_normalization,
                step_group_weight=config.step_group_weight,
            )
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

    def correct_off_policy(self, sequences: list[TrainSequence]) -> list[TrainSequence]:
        """Rollouts from a vllm or server engine: the trainer's log-probs become PPO's old
        log-probs and each trained token's advantage is weighted by its truncated importance
        weight (:mod:`rounds.trainers.off_policy`); the mismatch statistics join the step's
        metrics."""
        cap = self.config.rollout.importance_sampling_cap
        if cap is None or not sequences:
            return sequences
        corrected, stats = importance_corrected(
            self.policy,
            sequences,
            cap=cap,
            temperature=self.config.temperature,
            pad_id=int(self.tokenizer.pad_token_id),
            device=self.device,
            micro_batch_size=self.config.micro_batch_size,
            micro_batch_tokens=self.config.micro_batch_tokens,
            autocast=self.autocast,
        )
        self.signal_stats.update(stats)
        return corrected

    # ------------------------------------------------------------------ 4. update

    def update(self, sequences: list[TrainSequence]) -> dict[str, float]:
        """``epochs`` passes of the clipped objective over the step's sequences, one optimizer
        step each; a non-finite loss or gradient skips the pass's step.

        The sequences go through :meth:`accumulate_gradients` in micro-batches grouped by
        length (:func:`~rounds.trainers.sequences.micro_batches`: ``micro_batch_size``
        episodes and ``micro_batch_tokens`` padded tokens at most); an episode without a
        trained token is left out, as it adds nothing to the loss or its gradient.
        """
        import torch

        config = self.config
        tokens = float(sum(sum(s.loss_mask) for s in sequences))
        result = {
            "tokens_trained": tokens,
            "grad_norm": 0.0,
            "skipped_nonfinite": 0.0,
            "learning_rate": float(self.scheduler.get_last_lr()[0]),
        }
        names = ("policy_loss", "kl", "entropy", "clipped", "ratio")
        totals = dict.fromkeys(("loss", *names), 0.0)
        trained = [s for s in sequences if trains_tokens(s)]
        if not trained or tokens == 0:
            return {**result, **dict.fromkeys(totals, 0.0), "clip_fraction": 0.0}
        params = [p for p in self.policy.parameters() if p.requires_grad]
        batches = micro_batches(
            [len(s.input_ids) for s in trained],
            max_sequences=config.micro_batch_size,
            max_tokens=config.micro_batch_tokens,
        )
        for _ in range(config.epochs):
            finite, loss, sums = self.accumulate_gradients(trained, batches, tokens)
            if finite:
                totals["loss"] += loss / config.epochs
                for key in names:
                    totals[key] += sums[key] / tokens / config.epochs
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
        if result["skipped_nonfinite"] < config.epochs:
            self.scheduler.step()  # the schedule counts optimizer steps taken
        return {
            **result,
            "loss": totals["loss"],
            "policy_loss": totals["policy_loss"],
            "kl": totals["kl"],
            "entropy": totals["entropy"],
            "clip_fraction": totals["clipped"],
            "ratio_mean": totals["ratio"],
        }

    def accumulate_gradients(
        self, sequences: list[TrainSequence], batches: list[list[int]], tokens: float
    ) -> tuple[bool, float, dict[str, float]]:
        """Backpropagate the loss of each micro-batch (``batches`` index ``sequences``), each
        divided by the step's ``tokens``, so the parameters' gradients add up to the whole
        batch's whatever the grouping.

        Returns:
            Whether every micro-batch's loss was finite (it stops at the first that is not),
            the summed loss, and the token-weighted sums of the loss statistics.
        """
        import torch

        pad = int(self.tokenizer.pad_token_id)
        total = 0.0
        sums = dict.fromkeys(("policy_loss", "kl", "entropy", "clipped", "ratio"), 0.0)
        for indices in batches:
            batch = collate([sequences[i] for i in indices], pad_id=pad, device=self.device)
            loss, stats = self._micro_batch_loss(batch, tokens)
            if not torch.isfinite(loss):
                return False, total, sums
            torch.autograd.backward(loss)
            total += float(loss.detach())
            for key in sums:
                sums[key] += float(getattr(stats, key))
        return True, total, sums

    def _micro_batch_loss(self, batch: dict[str, Any], tokens: float) -> tuple[Any, Any]:
        """The clipped loss of one micro-batch (normalised by the step's ``tokens``), under
        bf16 autocast when training in bf16. Log-probs are computed for the trained tokens
        only; the reference runs only when the loss has a KL term."""
        import torch

        config = self.config
        targets = batch["targets"]
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
                targets,
                config.temperature,
                entropy=True,
                entropy_grad=config.entropy_coef != 0,
            )
            ref = self._reference_logprobs(batch) if config.kl_coef > 0 else None
            return ppo_clip_loss(
                logprobs,
                batch["old_logprobs"][targets],
                batch["advantages"][targets],
                batch["loss_mask"][targets],
                clip_low=config.clip_low,
                clip_high=config.clip_high,
                normalizer=tokens,
                ref_logprobs=ref,
                kl_coef=config.kl_coef,
                entropy=entropy,
                entropy_coef=config.entropy_coef,
            )

    def _reference_logprobs(self, batch: dict[str, Any]) -> Any:
        """Log-probs of the trained tokens under the frozen reference: the initial policy, or
        the LoRA base."""
        import torch

        frozen = self.reference is not None
        model = self.reference if frozen else self.policy
        adapter_off = contextlib.nullcontext() if frozen else self.policy.disable_adapter()
        with torch.no_grad(), adapter_off:
            ref, _ = token_logprobs(
                model,
                batch["input_ids"],
                batch["attention_mask"],
                batch["targets"],
                self.config.temperature,
            )
        return ref

    # ------------------------------------------------------------------ 5. log and checkpoint

    def log(self, step: int, metrics: dict[str, Any], groups: list[list[Scored]]) -> None:
        """Append the step's metrics (and its episodes) to the run directory, report them to the
        trackers, and show them."""
        with self.run.metrics_writer() as writer:
            writer.write(metrics)
        if self.config.log_episodes:
            with self.run.episode_writer() as writer:
                for group in groups:
                    for item in group:
                        writer.write(item.rollout.episode)
        self.trackers.log(metrics, step)
        if self.progress is not None:
            self.progress.step(metrics)
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
