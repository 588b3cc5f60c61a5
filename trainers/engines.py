"""The run's rollout engine when it is not the in-process ``hf`` agent: who samples, and how
the trainer's weights reach it (``GRPOConfig.rollout``).

- ``server``: a :class:`~rounds.agents.server_agent.ServerAgent` per rollout, sharing one
  :class:`~rounds.agents.server_agent.RolloutServerClient`; weights go through disk
  (:class:`~rounds.trainers.weight_sync.DiskWeightSync`) or a broadcast
  (:class:`~rounds.trainers.weight_sync.BroadcastWeightSync`).
- ``vllm``: one :class:`~rounds.agents.vllm_agent.VLLMAgent` (its engine) for the whole
  run; weights go in process (``load_weights``).

Either way the engine is marked stale when the policy changes (an update, a warm start)
and gets the weights before its next rollout, so it never samples from old weights;
the first rollout of a run (or of a resumed run) pushes too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rounds.agents.base import BaseAgent
from rounds.agents.engine_agent import EngineAgent
from rounds.agents.server_agent import RolloutServerClient, ServerAgent
from rounds.trainers.config import GRPOConfig
from rounds.trainers.weight_sync import BroadcastWeightSync, DiskWeightSync


class RolloutEngine:
    """The ``vllm`` or ``server`` rollout backend of a run.

    Raises:
        ImportError: ``vllm`` without vLLM installed (the message says how to get it).
        ValueError: ``hf``, which needs no engine.
    """

    def __init__(self, config: GRPOConfig) -> None:
        rollout = config.rollout
        if rollout.backend == "hf":
            raise ValueError("the hf rollout backend samples the live policy: it has no engine")
        self.config = config
        #: Whether the engine's weights are older than the policy's.
        self.stale = True
        self.sync_seconds = 0.0
        self.client: RolloutServerClient | None = None
        self.vllm: Any = None
        if rollout.backend == "server":
            self.client = RolloutServerClient(
                str(rollout.base_url),
                timeout_s=rollout.request_timeout_s,
                retries=rollout.retries,
                retry_backoff_s=rollout.retry_backoff_s,
            )
            self.pusher: DiskWeightSync | BroadcastWeightSync = (
                DiskWeightSync(
                    self.client, rollout.sync_dir or Path(config.output_dir) / "weight_sync"
                )
                if rollout.weight_sync == "disk"
                else BroadcastWeightSync(self.client, rollout.weight_sync, rollout.master_address)
            )
        else:
            from rounds.agents.vllm_agent import VLLMAgent

            self.vllm = VLLMAgent(
                config.model,
                max_new_tokens=config.max_new_tokens,
                temperature=config.temperature,
                seed=config.seed,
                max_context_tokens=config.max_episode_tokens,
                max_episode_tokens=config.max_episode_tokens,
                use_tools=config.use_tools,
                **config.rollout_agent_options,
            )

    def agent(self, seed: int, tokenizer: Any, policy: Any) -> BaseAgent:
        """The agent of one rollout (``seed`` seeds its sampling)."""
        if self.vllm is not None:
            self.vllm.seed = seed
            return self.vllm  # type: ignore[no-any-return]
        assert self.client is not None
        config = self.config
        stops = getattr(getattr(policy, "generation_config", None), "eos_token_id", None)
        return ServerAgent(
            config.model,
            client=self.client,
            tokenizer=tokenizer,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            seed=seed,
            max_context_tokens=config.max_episode_tokens,
            max_episode_tokens=config.max_episode_tokens,
            use_tools=config.use_tools,
            stop_ids=[s for s in (stops if isinstance(stops, list) else [stops]) if s is not None],
            **config.rollout_agent_options,
        )

    def sync(self, policy: Any, label: str) -> None:
        """Push the policy's weights if the engine's are stale; ``label`` names the push."""
        if not self.stale:
            return
        started = time.perf_counter()
        if self.client is not None:
            self.pusher.push(policy, label)
        else:
            self.vllm.load_weights(policy.named_parameters())
        self.stale = False
        self.sync_seconds += time.perf_counter() - started

    def step_metrics(self) -> dict[str, float]:
        """Seconds spent pushing weights and server requests retried since the last call."""
        retried = float(self.client.retried) if self.client is not None else 0.0
        metrics = {"time_weight_sync": self.sync_seconds, "rollout_retries": retried}
        self.sync_seconds = 0.0
        if self.client is not None:
            self.client.retried = 0
        return metrics

    @staticmethod
    def raise_failure(agent: BaseAgent) -> None:
        """Re-raise the engine failure that ended a rollout's episodes (the chat loop records
        an agent's error per episode and goes on; a dead engine must stop the run instead).

        Raises:
            RolloutServerError: the rollout server did not answer after every retry, or failed.
        """
        if isinstance(agent, EngineAgent) and agent.failure is not None:
            failure, agent.failure = agent.failure, None
            raise failure

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
