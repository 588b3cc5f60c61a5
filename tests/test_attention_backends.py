"""Generation and the trainer's forward passes run without cuDNN attention (its per-shape
plans made an H200 rollout 3-4x slower; rounds.models.attention), and the flags come back."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from rounds.agents.base import Chat
from rounds.agents.hf import HFAgent
from rounds.models.attention import shape_stable_attention
from rounds.registration import make


def flags() -> dict[str, bool]:
    cuda = torch.backends.cuda
    return {
        "cudnn": cuda.cudnn_sdp_enabled(),
        "flash": cuda.flash_sdp_enabled(),
        "efficient": cuda.mem_efficient_sdp_enabled(),
        "math": cuda.math_sdp_enabled(),
    }


def test_cudnn_is_left_out_inside_and_restored_after() -> None:
    before = flags()
    assert before["cudnn"]  # PyTorch's default: the case this guards against
    with shape_stable_attention():
        assert flags() == {"cudnn": False, "flash": True, "efficient": True, "math": True}
    assert flags() == before


def test_the_hf_agent_generates_under_it(monkeypatch: Any) -> None:
    seen: list[bool] = []
    agent = HFAgent("tiny", max_new_tokens=4, temperature=0.0, reuse_cache=False)
    forward = agent.lm.forward

    @functools.wraps(forward)
    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return forward(*args, **kwargs)

    monkeypatch.setattr(agent.lm, "forward", spy)
    env = make("rounds/Household-v0").unwrapped
    observation, _ = env.reset(seed=0)
    chat = Chat(
        messages=[
            {"role": "system", "content": env.system_prompt},
            {"role": "user", "content": observation},
        ],
        tools=[],
        env=env,
        rng=np.random.default_rng(0),
    )
    action = agent.act(chat)
    assert action.token_ids  # it generated
    assert action.sampled_mask is not None
    # A prefill, then a step per sampled token but the last; never with cuDNN.
    assert seen == [False] * sum(action.sampled_mask)
    assert torch.backends.cuda.cudnn_sdp_enabled()


def test_the_trainer_forward_runs_under_it() -> None:
    from types import SimpleNamespace

    from rounds.trainers.loss import token_logprobs

    seen: list[bool] = []

    def model(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, 5))

    ids = torch.tensor([[1, 2, 3]])
    chosen, _ = token_logprobs(
        model, ids, torch.ones_like(ids), torch.tensor([[False, True, True]]), 1.0
    )
    assert seen == [False]
    assert torch.allclose(chosen, torch.full((2,), -torch.log(torch.tensor(5.0))))
