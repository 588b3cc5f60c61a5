"""``vllm``: generation with the vLLM engine, for GPU machines.

vLLM is imported only when this agent is built (its wheels pin their own torch
and CUDA; install with ``pip install rounds[vllm]``). Prompts are the same
incremental token sequences as the ``hf`` agent's, passed as token ids, so the
tokens and log-probs it returns are exactly what the trainer trains on.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from typing import Any

from rounds.agents.base import Action, BaseAgent, Chat
from rounds.agents.tokens import ConversationTokens


def load_vllm() -> Any:
    """Import vLLM, or explain how to get it."""
    try:
        return importlib.import_module("vllm")
    except ImportError as err:
        raise ImportError(
            "the vllm agent needs vLLM and a CUDA GPU: pip install 'rounds[vllm]' on a GPU machine"
        ) from err


class VLLMAgent(BaseAgent):
    """Batched generation with ``vllm.LLM``.

    Args:
        model: a local path or hub id (or ``"tiny"``).
        max_new_tokens, temperature, top_p: sampling.
        seed: the engine's seed.
        max_context_tokens: default: the engine's ``max_model_len``.
        use_tools: pass env tool specs to the chat template.
        engine_options: passed to ``vllm.LLM`` (``gpu_memory_utilization``, ``dtype``, ...).
    """

    batched = True

    def __init__(
        self,
        model: str,
        *,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        max_context_tokens: int | None = None,
        use_tools: bool = True,
        **engine_options: Any,
    ) -> None:
        from rounds.models import resolve_model

        vllm = load_vllm()
        self.vllm = vllm
        self.name = "vllm"
        self.model = model
        self.engine = vllm.LLM(model=resolve_model(model), seed=seed, **engine_options)
        tokenizer = self.engine.get_tokenizer()
        context = max_context_tokens or int(self.engine.llm_engine.model_config.max_model_len)
        self.tokens = ConversationTokens(tokenizer, use_tools=use_tools, max_context_tokens=context)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p

    def act(self, chat: Chat) -> Action:
        return self.act_batch([chat])[0]

    def act_batch(self, chats: Sequence[Chat]) -> list[Action]:
        started = time.perf_counter()
        prompts = [self.tokens.prompt(chat, self.max_new_tokens) for chat in chats]
        params = self.vllm.SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_new_tokens,
            logprobs=0,
            stop_token_ids=sorted(self.tokens.stop_ids),
        )
        outputs = self.engine.generate(
            [{"prompt_token_ids": ids} for ids, _, _ in prompts], params, use_tqdm=False
        )
        elapsed = time.perf_counter() - started
        self.generation_seconds += elapsed
        actions = []
        for chat, prompt, output in zip(chats, prompts, outputs, strict=True):
            sample = output.outputs[0]
            completion = list(sample.token_ids)
            logprobs = [
                float(step[token].logprob)
                for token, step in zip(completion, sample.logprobs or [], strict=False)
            ]
            actions.append(
                self.tokens.action(
                    chat,
                    prompt,
                    completion,
                    logprobs,
                    latency_s=elapsed,
                    finish_reason=sample.finish_reason,
                )
            )
        return actions

    def load_weights(self, named_tensors: Any) -> None:
        """Replace the engine's weights with the trainer's (``model.named_parameters()``)."""
        runner = self.engine.llm_engine.model_executor.driver_worker.model_runner
        runner.model.load_weights(named_tensors)
