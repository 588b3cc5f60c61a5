"""``GRPOConfig``: every setting of the trainer, with its default and a one-line help.

A pydantic model: ``GRPOConfig(...)`` in Python and ``rounds train config.yaml``
on the command line build the same object (``GRPOConfig.from_yaml``), and the
run directory's ``config.yaml`` is this model dumped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rounds.shaping import RewardShaping
from rounds.storage import read_yaml
from rounds.trainers.curriculum import Curriculum
from rounds.trainers.likelihood import LikelihoodRewards
from rounds.trainers.prover import ProverProgress


class LoRAConfig(BaseModel):
    """Train low-rank adapters (peft) instead of every weight."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1, description="Adapter rank.")
    alpha: int = Field(default=32, ge=1, description="Adapter scaling (lora_alpha).")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout on adapter inputs.")
    target_modules: list[str] | str = Field(
        default="all-linear", description="Modules that get adapters."
    )


class WarmStart(BaseModel):
    """Behaviour cloning from one of the env's scripted baselines before the first GRPO step."""

    model_config = ConfigDict(extra="forbid")

    policy: str = Field(
        description="The env's scripted baseline to imitate (e.g. bayes, expert, reference)."
    )
    episodes: int = Field(default=128, ge=1, description="Episodes of the baseline to clone.")
    epochs: int = Field(default=4, ge=1, description="Passes over them.")
    learning_rate: float = Field(
        default=3e-4, gt=0.0, description="AdamW learning rate of the cloning."
    )
    micro_batch_size: int = Field(default=8, ge=1, description="Episodes per cloning step.")


class RolloutConfig(BaseModel):
    """Where rollouts are generated: the in-process ``hf`` agent (default), an in-process vLLM
    engine, or a rollout server reached over HTTP (SGLang's native ``/generate`` and
    ``/update_weights_from_disk``; ``rounds.models.serve`` is a local one). With ``vllm`` or
    ``server`` the trainer pushes its weights to the engine before each rollout that follows
    an update, and corrects the engine's log-probs by truncated importance sampling."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["hf", "vllm", "server"] = Field(
        default="hf",
        description="hf: the live policy in process; vllm: a vLLM engine in process; server: a rollout server.",
    )
    base_url: str | None = Field(
        default=None,
        description="The rollout server (backend server), e.g. http://127.0.0.1:30000.",
    )
    weight_sync: Literal["disk", "nccl", "gloo"] = Field(
        default="disk",
        description=(
            "server: disk (safetensors, /update_weights_from_disk), or a broadcast to it over "
            "nccl (GPUs) or gloo (CPUs) (/update_weights_from_distributed)."
        ),
    )
    master_address: str = Field(
        default="127.0.0.1",
        description="nccl/gloo: the trainer's address as the server reaches it (hosts the group).",
    )
    sync_dir: str | None = Field(
        default=None,
        description="Where disk sync writes the weights (default: OUTPUT_DIR/weight_sync); the server must read it.",
    )
    request_timeout_s: float = Field(
        default=600.0, gt=0, description="Limit of one request to the rollout server."
    )
    retries: int = Field(
        default=5, ge=0, description="Extra tries of a request the server did not answer."
    )
    retry_backoff_s: float = Field(
        default=0.5, ge=0, description="Wait before the first retry (doubled each time)."
    )
    importance_sampling_cap: float | None = Field(
        default=3.0,
        gt=0,
        description=(
            "vllm/server: truncated importance sampling, each token's loss weighted by "
            "min(π_trainer/π_engine, cap) (TRL's vllm_importance_sampling_clip_max); None: off."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> RolloutConfig:
        if self.weight_sync != "disk" and self.backend != "server":
            raise ValueError(
                f"rollout.weight_sync {self.weight_sync!r} broadcasts to a rollout server: set "
                "backend: server (the hf and vllm backends share the trainer's process)"
            )
        if self.backend == "server" and not self.base_url:
            raise ValueError(
                "rollout.backend 'server' needs rollout.base_url, the rollout server's address "
                "(e.g. http://127.0.0.1:30000; python -m rounds.models.serve starts a local one)"
            )
        if self.backend != "server" and self.base_url:
            raise ValueError(
                f"rollout.base_url is set but rollout.backend is {self.backend!r}; set "
                "backend: server to generate on that server, or drop base_url"
            )
        return self


#: Rollout-agent options the trainer sets itself (from its own settings and its live policy).
TRAINER_AGENT_OPTIONS = (
    "model",
    "model_obj",
    "tokenizer",
    "device",
    "max_new_tokens",
    "temperature",
    "max_context_tokens",
    "max_episode_tokens",
    "seed",
    "use_tools",
    "timeout_s",
)


class GRPOConfig(BaseModel):
    """Agentic multi-turn GRPO: rollouts in an env, advantages, a clipped policy-gradient update."""

    model_config = ConfigDict(extra="forbid")

    # --- what to train, where
    env_id: str = Field(default="rounds/DiagGym-v0", description="Registered env id.")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for gym.make."
    )
    split: str = Field(default="train", description="Task split rollouts sample from.")
    model: str = Field(default="tiny", description="Policy: a local path, a hub id, or 'tiny'.")
    output_dir: str = Field(
        default="runs/train", description="Run directory (config, metrics, episodes, checkpoints)."
    )
    seed: int = Field(default=0, description="Seeds task order, sampling and initialisation.")

    # --- rollout
    steps: int = Field(default=50, ge=1, description="Training steps (rollout + update).")
    tasks_per_step: int = Field(default=4, ge=1, description="Tasks (GRPO groups) per step.")
    group_size: int = Field(default=4, ge=2, description="Rollouts per task (G).")
    max_new_tokens: int = Field(default=64, ge=1, description="Token budget of one turn's reply.")
    max_episode_tokens: int = Field(
        default=4096, ge=16, description="Token budget of a whole episode."
    )
    temperature: float = Field(default=1.0, gt=0.0, description="Sampling temperature of rollouts.")
    rollout: RolloutConfig = Field(
        default_factory=RolloutConfig,
        description="Where rollouts are generated (in process, vLLM, a rollout server) and how weights reach it.",
    )
    rollout_agent_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Further options of the rollout agent (e.g. top_p, top_k for hf).",
    )
    use_tools: bool = Field(
        default=True,
        description="Render the env's tool specs in the prompt (when the template can).",
    )
    max_turns: int | None = Field(default=None, ge=1, description="Override the env's turn limit.")
    concurrency: int | None = Field(
        default=None, ge=1, description="Episodes generated together (default: the whole step)."
    )
    step_timeout_s: float = Field(
        default=60.0, gt=0, description="Env step timeout; the episode is truncated."
    )
    env_backend: Literal["thread", "process", "ray"] = Field(
        default="thread",
        description="Where rollout envs run: the chat loop's threads, worker processes, or Ray actors.",
    )
    env_workers: int | None = Field(
        default=None,
        ge=1,
        description="Env workers of a process/ray backend (default: one per concurrent episode).",
    )
    env_worker_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Ray custom resources each env worker needs (e.g. {docker: 1}), beside the env's own.",
    )
    generation_timeout_s: float | None = Field(
        default=600.0,
        gt=0,
        description="A generation call longer than this stops where it is (finish_reason timeout).",
    )
    straggler_s: float | None = Field(
        default=1.0,
        gt=0,
        description=(
            "How long a generation round waits for env steps before going on without the "
            "slow ones (they rejoin later); None waits for all, for reproducible batches "
            "with slow envs."
        ),
    )

    warm_start: WarmStart | None = Field(
        default=None, description="Clone a scripted baseline before GRPO."
    )

    # --- rewards and advantages
    shaping: RewardShaping = Field(
        default_factory=RewardShaping, description="Reward shaping before advantages."
    )
    advantage: Literal["outcome", "turn"] = Field(
        default="outcome",
        description="outcome: group z-score of the episode return; turn: z-scored per-turn rewards, discounted to each turn.",
    )
    scale_by_std: bool = Field(
        default=True, description="Divide by the group std (False: Dr. GRPO)."
    )
    turn_normalization: Literal["joint", "separate"] = Field(
        default="joint",
        description="turn advantage: z-score turn rewards with the outcome, or apart from it.",
    )
    gamma: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Discount of turn-level returns (IGPO: 1)."
    )
    step_group_weight: float = Field(
        default=0.0, ge=0.0, description="GiGPO: weight w of the anchor-group advantage."
    )
    info_gain_weight: float = Field(
        default=0.0, ge=0.0, description="IGPO: weight of the policy's information gain per turn."
    )
    info_gain_kind: Literal["prob", "logprob"] = Field(
        default="prob", description="IGPO gain: probability or log-probability difference."
    )
    filter_zero_variance: bool = Field(
        default=False, description="Drop groups whose returns are all equal."
    )
    prover_progress: ProverProgress | None = Field(
        default=None,
        description="Turn reward from a scripted prover's rollouts out of env snapshots (Rewarding Progress).",
    )
    likelihood: LikelihoodRewards | None = Field(
        default=None, description="RLPR and SAR rewards from the policy's own likelihoods."
    )
    curriculum: Curriculum | None = Field(
        default=None, description="Sample tasks by their recent pass rate (skip saturated ones)."
    )
    eval_at_start: bool = Field(
        default=False,
        description="Also evaluate before training and after any warm start (step -1 rows).",
    )

    # --- optimisation
    learning_rate: float = Field(default=1e-5, gt=0.0, description="AdamW learning rate.")
    warmup_steps: int = Field(default=0, ge=0, description="Linear warm-up steps.")
    weight_decay: float = Field(default=0.0, ge=0.0, description="AdamW weight decay.")
    epochs: int = Field(default=1, ge=1, description="Optimisation epochs over each step's batch.")
    micro_batch_size: int = Field(
        default=8, ge=1, description="Episodes per forward/backward (gradient accumulation)."
    )
    micro_batch_tokens: int | None = Field(
        default=16384,
        ge=1,
        description="Token budget of a micro-batch (episodes × its longest, padding included; episodes grouped by length); None: micro_batch_size alone.",
    )
    clip_low: float = Field(
        default=0.2, ge=0.0, description="PPO clip: ratio lower bound 1 - clip_low."
    )
    clip_high: float = Field(
        default=0.28,
        ge=0.0,
        description="PPO clip: ratio upper bound 1 + clip_high (DAPO clip-higher).",
    )
    kl_coef: float = Field(
        default=0.0, ge=0.0, description="Weight of the k3 KL to the frozen reference policy."
    )
    entropy_coef: float = Field(default=0.0, description="Entropy bonus weight.")
    max_grad_norm: float = Field(default=1.0, gt=0.0, description="Gradient clipping norm.")
    bf16: bool | Literal["auto"] = Field(
        default="auto", description="bfloat16 autocast (auto: on CUDA GPUs that support it)."
    )
    lora: LoRAConfig | None = Field(default=None, description="Train LoRA adapters through peft.")
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations to save memory."
    )
    device: str = Field(default="auto", description="cpu, cuda, or auto.")

    # --- held-out evaluation during training
    eval_every: int = Field(
        default=0, ge=0, description="Evaluate every N steps on eval_split (0: never)."
    )
    eval_tasks: int = Field(
        default=16, ge=1, description="Tasks of each evaluation (the split's first T)."
    )
    eval_samples_per_task: int = Field(
        default=4, ge=1, description="Samples per task (K) for pass@k."
    )
    eval_split: str = Field(default="validation", description="Split of the held-out evaluation.")

    # --- logging and checkpoints
    checkpoint_every: int = Field(
        default=10, ge=1, description="Save a checkpoint every N steps (and at the end)."
    )
    keep_checkpoints: int = Field(default=2, ge=1, description="Checkpoints kept on disk.")
    resume: bool = Field(
        default=True, description="Continue from the latest checkpoint in output_dir."
    )
    log_episodes: bool = Field(default=True, description="Append every rollout to episodes.jsonl.")
    report_to: list[Literal["tensorboard", "wandb"]] = Field(
        default_factory=list,
        description="Also log metrics to these trackers (wandb offline unless WANDB_MODE says otherwise).",
    )
    progress: bool = Field(
        default=True,
        description="Show a progress bar (step, reward, success, loss) while training, in Python as in the CLI.",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_trackers(cls, data: Any) -> Any:
        """Configs (and run directories' config.yaml) written before ``report_to`` said
        ``tensorboard: true`` / ``wandb: true``; they still load, as ``report_to``."""
        if not isinstance(data, dict) or not {"tensorboard", "wandb"} & set(data):
            return data
        data = dict(data)
        trackers = list(data.get("report_to") or [])
        for name in ("tensorboard", "wandb"):
            if data.pop(name, False) and name not in trackers:
                trackers.append(name)
        data["report_to"] = trackers
        return data

    @model_validator(mode="before")
    @classmethod
    def _legacy_rollout_agent(cls, data: Any) -> Any:
        """Configs written before ``rollout`` named the rollout agent ``rollout_agent: hf``; it
        still loads, as ``rollout.backend``."""
        if not isinstance(data, dict) or "rollout_agent" not in data:
            return data
        data = dict(data)
        agent = data.pop("rollout_agent")
        backends = ("hf", "vllm", "server")
        if agent not in backends:
            raise ValueError(
                f"rollout_agent {agent!r} cannot sample from the trainer's live weights; set "
                f"rollout.backend to one of: {', '.join(backends)}"
            )
        rollout = data.get("rollout")
        if rollout is None:
            data["rollout"] = {"backend": agent}
        elif (
            rollout.backend
            if isinstance(rollout, RolloutConfig)
            else dict(rollout).get("backend", "hf")
        ) != agent:
            raise ValueError(
                f"rollout_agent {agent!r} and rollout.backend disagree; set only rollout.backend"
            )
        return data

    @property
    def rollout_agent(self) -> str:
        """The rollout agent's registry name (``rollout.backend``)."""
        return self.rollout.backend

    @model_validator(mode="after")
    def _check(self) -> GRPOConfig:
        if self.max_new_tokens >= self.max_episode_tokens:
            raise ValueError("max_new_tokens must be smaller than max_episode_tokens")
        if self.rollout.backend != "hf" and self.lora is not None:
            raise ValueError(
                f"rollout.backend {self.rollout.backend!r} takes full weights after each update; "
                "training LoRA adapters with it is not supported (the adapters are not merged "
                "for the engine): use rollout.backend hf with lora, or train every weight"
            )
        owned = sorted(set(self.rollout_agent_options) & set(TRAINER_AGENT_OPTIONS))
        if owned:
            raise ValueError(
                f"rollout_agent_options may not set {', '.join(owned)}: the trainer sets them "
                "from its own settings (model, device, max_new_tokens, temperature, "
                "max_episode_tokens, seed, use_tools, generation_timeout_s), so the sampling "
                "distribution and the loss agree"
            )
        return self

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> GRPOConfig:
        """Load a YAML config; ``overrides`` replace top-level keys."""
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ValueError(
                f"{path}: a config is a YAML mapping of settings, got {type(data).__name__}"
            )
        return cls.model_validate({**data, **overrides})
