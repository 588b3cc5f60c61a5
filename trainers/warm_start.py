"""Warm start: behaviour cloning from one of the env's scripted baselines before GRPO.

A randomly initialised or weak policy rarely produces a valid action, so RL has no
signal to learn from; DiagAgent, for one, was cold-started with supervised
fine-tuning before RL. The warm start plays ``episodes`` episodes with a scripted
baseline (e.g. DiagGym's ``bayes``, Household's ``expert``), turns each into the
policy's chat format — the observations as the chat template renders them, the
baseline's replies as the assistant's tokens — and minimises the cross-entropy of
the reply tokens for ``epochs`` passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rounds.agents.base import Chat
from rounds.agents.loop import EpisodeSpec, Rollout, run_episodes
from rounds.agents.registry import make_agent
from rounds.agents.tokens import ConversationTokens
from rounds.text_env import TextEnv
from rounds.trainers.loss import token_logprobs


@dataclass
class ClonedSequence:
    """An episode as the policy would have produced it: tokens, and which are the replies."""

    input_ids: list[int]
    loss_mask: list[int]


def clone_sequence(rollout: Rollout, tokens: ConversationTokens, env: TextEnv) -> ClonedSequence:
    """Teacher-forced tokens of a scripted episode of ``env`` in the policy's chat format."""
    chat = Chat(
        messages=list(rollout.messages[:2]), tools=env.tools, env=env, rng=np.random.default_rng(0)
    )
    ids: list[int] = []
    mask: list[int] = []
    for t, action in enumerate(rollout.actions):
        if action.error is not None or action.end_reason is not None:
            break
        _, delta, _ = tokens.prompt(chat, 0)
        reply = [*tokens.encode(action.text), tokens.eos_id]
        tokens.record(chat, reply)
        ids += delta + reply
        mask += [0] * len(delta) + [1] * len(reply)
        chat.messages = list(rollout.messages[: 2 + 2 * (t + 1)])
    return ClonedSequence(ids, mask)


def collect(
    env_factory: Any, env_id: str, policy: str, episodes: int, seed: int, split_ids: Any
) -> list[Rollout]:
    """Play ``episodes`` episodes of the split's tasks with the scripted ``policy``."""
    probe = env_factory()
    agent = make_agent(policy, probe.unwrapped)
    probe.close()
    rng = np.random.default_rng([seed, 7])
    picks = rng.choice(len(split_ids), size=episodes, replace=len(split_ids) < episodes)
    specs = [
        EpisodeSpec(task_id=str(split_ids[int(i)]), seed=int(seed + n), agent_seed=int(seed + n))
        for n, i in enumerate(picks)
    ]
    rollouts = run_episodes(env_factory, agent, specs, env_id=env_id, concurrency=2)
    # In the order they were planned, not finished: the clone then sees the same data in the
    # same order on every run.
    order = {spec.seed: n for n, spec in enumerate(specs)}  # seeds are distinct (seed + n)
    return sorted(rollouts, key=lambda rollout: order[rollout.episode.seed])


def clone(
    model: Any,
    sequences: list[ClonedSequence],
    *,
    epochs: int,
    learning_rate: float,
    micro_batch_size: int,
    pad_id: int,
    device: str,
    seed: int,
    max_grad_norm: float = 1.0,
    on_epoch: Any = None,
) -> list[float]:
    """Minimise the reply tokens' cross-entropy; returns the mean loss of each epoch."""
    import torch

    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=learning_rate
    )
    model.train()
    losses = []
    for epoch in range(epochs):
        # Each micro-batch is an optimizer step, so its episodes are a random sample. Grouping
        # them by length (less padding) made batches of one answer wherever the length tells
        # the answer (DiagGym's complaints), and the clone learned the marginal, not the task.
        order = [int(i) for i in np.random.default_rng([seed, epoch]).permutation(len(sequences))]
        total, batches = 0.0, 0
        for start in range(0, len(order), micro_batch_size):
            batch = [sequences[i] for i in order[start : start + micro_batch_size]]
            width = max(len(s.input_ids) for s in batch)
            ids = torch.tensor(
                [s.input_ids + [pad_id] * (width - len(s.input_ids)) for s in batch], device=device
            )
            attention = torch.tensor(
                [[1] * len(s.input_ids) + [0] * (width - len(s.input_ids)) for s in batch],
                device=device,
            )
            targets = torch.tensor(
                [s.loss_mask + [0] * (width - len(s.loss_mask)) for s in batch],
                device=device,
                dtype=torch.bool,
            )
            targets[:, 0] = False  # the first token has no prediction (and is never a reply)
            # The reply tokens' log-probs alone: the LM head runs only where they are predicted.
            chosen, _ = token_logprobs(model, ids, attention, targets, 1.0)
            loss = -chosen.mean()
            if not torch.isfinite(loss):
                optimizer.zero_grad(set_to_none=True)
                continue
            torch.autograd.backward(loss)
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total += float(loss.detach())
            batches += 1
        losses.append(total / max(batches, 1))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return losses
