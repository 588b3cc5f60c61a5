"""Chat backends for the env-side models (the LLM rubric judge, the LLM patient).

The same two backends as the clinic's LLM world model: a local causal LM through
transformers (``"tiny"``, a path or a hub id, loaded offline) or an
OpenAI-compatible server (``/chat/completions``, e.g. ``vllm serve``) through
:class:`rounds.models.openai_client.OpenAIClient`. Decoding is greedy by default
(``temperature=0``), so the embedded backend answers the same every time.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any


class ChatModel:
    """``chat(messages) -> reply text`` through transformers or an OpenAI-compatible endpoint.

    Args:
        model: ``"tiny"``, a local path or hub id (transformers), or a served model's name.
        backend: ``"transformers"`` or ``"openai"``.
        base_url: the server for ``backend="openai"``, e.g. ``http://127.0.0.1:8000/v1``.
        max_new_tokens: the longest reply.
        temperature: 0 decodes greedily (deterministic).
        timeout_s: per reply; a slower generation is cut (transformers) or fails (HTTP).
        device, dtype: for ``backend="transformers"``.
        client_options: for the HTTP client (``max_retries``, ``api_key_env``, ...).
    """

    def __init__(
        self,
        model: str = "tiny",
        *,
        backend: str = "transformers",
        base_url: str | None = None,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        timeout_s: float = 60.0,
        device: str = "cpu",
        dtype: str = "auto",
        **client_options: Any,
    ) -> None:
        self.model_name = model
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._client: Any = None
        self._model: Any = None
        self._tokenizer: Any = None
        if backend == "openai":
            if not base_url:
                raise ValueError("backend='openai' needs base_url, e.g. http://127.0.0.1:8000/v1")
            from rounds.models.openai_client import OpenAIClient

            self._client = OpenAIClient(base_url, timeout_s=timeout_s, **client_options)
        elif backend == "transformers":
            if client_options:
                raise ValueError(f"options {sorted(client_options)} only apply to backend='openai'")
            from rounds.models import load_causal_lm, load_tokenizer

            self._tokenizer = load_tokenizer(model)
            self._model = load_causal_lm(model, dtype=dtype, device=device)
            self._model.eval()
            self.device = device
        else:
            raise ValueError(f"unknown backend {backend!r}; choose transformers or openai")

    def __call__(self, messages: Sequence[Mapping[str, str]], *, seed: int = 0) -> str:
        """The model's reply to ``messages`` (``seed`` matters only when sampling)."""
        chat = [{"role": m["role"], "content": m["content"]} for m in messages]
        if self._client is not None:
            reply = self._client.chat(
                self.model_name,
                chat,
                max_tokens=self.max_new_tokens,
                temperature=self.temperature,
                seed=seed,
            )
            return str(reply.text)
        import torch

        ids = self._tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        sample = self.temperature > 0
        with self._lock, torch.no_grad():
            torch.manual_seed(seed)
            output = self._model.generate(
                **ids,
                max_new_tokens=self.max_new_tokens,
                do_sample=sample,
                temperature=self.temperature if sample else None,
                top_p=None,
                top_k=None,
                max_time=self.timeout_s,
                pad_token_id=self._tokenizer.pad_token_id,
            )
        new_tokens = output[0, ids["input_ids"].shape[1] :]
        return str(self._tokenizer.decode(new_tokens, skip_special_tokens=True))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
