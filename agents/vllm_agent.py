"""``vllm``: generation with the vLLM engine in process, for GPU machines.

vLLM is imported only when this agent is built (its wheels pin their own torch
and CUDA; install with ``pip install rounds[vllm]``). Prompts are the same
incremental token sequences as the ``hf`` agent's, passed as token ids
(``{"prompt_token_ids": ...}``), so the tokens and log-probs it returns are exactly
what the trainer trains on. Only vLLM's public API is used: ``vllm.LLM``,
``LLM.generate`` with one ``SamplingParams`` per prompt (its own seed, so the
members of a GRPO group sample differently), ``logprobs=0`` (the sampled token's
log-prob) and the engine option ``logprobs_mode="processed_logprobs"``, so the
log-probs are those of the distribution sampled from, after temperature scaling
(vLLM's default returns the raw model's). New weights go through
``LLM.collective_rpc`` to :class:`WeightLoader`, a worker extension
(``worker_extension_cls``), as vLLM's RLHF examples do.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from typing import Any

from rounds.agents.engine_agent import EngineAgent, Sample
from rounds.agents.tokens import ConversationTokens

#: The worker extension vLLM loads into each worker (by this qualified name).
WEIGHT_LOADER = "rounds.agents.vllm_agent.WeightLoader"


def load_vllm() -> Any:
    """Import vLLM, or explain how to get it."""
    try:
        return importlib.import_module("vllm")
    except ImportError as err:
        raise ImportError(
            "the vllm agent (rollout.backend: vllm) needs vLLM and a CUDA GPU: pip install "
            "'rounds[vllm]' on a GPU machine, or use rollout.backend hf (in process) or "
            "server (an SGLang server)"
        ) from err


class WeightLoader:
    """vLLM worker extension: load named tensors into the worker's model.

    vLLM mixes this class into each worker (``LLM(worker_extension_cls=...)``), so
    ``self`` is the worker and ``self.model_runner.model`` its model.
    """

    model_runner: Any

    def load_named_weights(self, weights: list[tuple[str, Any]]) -> None:
        self.model_runner.model.load_weights(weights=weights)


class VLLMAgent(EngineAgent):
    """Batched generation with ``vllm.LLM``.

    Args:
        model: a local path or hub id (or ``"tiny"``).
        max_new_tokens, temperature, top_p, top_k: sampling (``top_k=0``: no cut).
        seed: seeds each prompt's sampling (with the call count and its row).
        max_context_tokens: the engine's ``max_model_len`` (default: the model's).
        max_episode_tokens: end an episode before its token sequence could exceed this.
        use_tools: pass env tool specs to the chat template.
        engine_options: passed to ``vllm.LLM`` (``gpu_memory_utilization``, ``dtype``, ...).
    """

    def __init__(
        self,
        model: str,
        *,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
        max_context_tokens: int | None = None,
        max_episode_tokens: int | None = None,
        use_tools: bool = True,
        **engine_options: Any,
    ) -> None:
        from rounds.models import resolve_model

        vllm = load_vllm()
        self.vllm = vllm
        self.name = "vllm"
        self.model = model
        engine_options.setdefault("logprobs_mode", "processed_logprobs")
        engine_options.setdefault("worker_extension_cls", WEIGHT_LOADER)
        if max_context_tokens is not None:
            engine_options.setdefault("max_model_len", max_context_tokens)
        self.engine = vllm.LLM(model=resolve_model(model), seed=seed, **engine_options)
        tokenizer = self.engine.get_tokenizer()
        if max_context_tokens is None:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(resolve_model(model))
            max_context_tokens = int(getattr(config, "max_position_embeddings", 32_768))
        self._set_sampling(
            ConversationTokens(
                tokenizer, use_tools=use_tools, max_context_tokens=max_context_tokens
            ),
            max_new_tokens=max_new_tokens,
            max_episode_tokens=max_episode_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            seed=seed,
        )

    def sample(self, prompts: Sequence[list[int]]) -> list[Sample]:
        params = [
            self.vllm.SamplingParams(
                temperature=self.temperature,
                top_p=self.top_p,
                top_k=self.engine_top_k,
                max_tokens=self.max_new_tokens,
                logprobs=0,
                stop_token_ids=sorted(self.tokens.stop_ids),
                skip_special_tokens=False,
                seed=seed,
            )
            for seed in self.row_seeds(len(prompts))
        ]
        outputs = self.engine.generate(
            [{"prompt_token_ids": list(ids)} for ids in prompts], params, use_tqdm=False
        )
        samples = []
        for output in outputs:
            completion = output.outputs[0]
            tokens = list(completion.token_ids)
            logprobs = [
                float(step[token].logprob)
                for token, step in zip(tokens, completion.logprobs or [], strict=False)
            ]
            samples.append(Sample(tokens, logprobs))
        return samples

    def load_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Replace the engine's weights with the trainer's (``model.named_parameters()``)."""
        weights = [(name, tensor.detach()) for name, tensor in named_tensors]
        self.engine.collective_rpc("load_named_weights", args=(weights,))
