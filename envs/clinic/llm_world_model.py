"""The DiagGym-style generative world model: a causal LM writes each exam's result.

The prompt is DiagGym's, exactly: the case summary, then

    "\\nThe following summarizes the results from the patient's medical examination:\\n"
    + "<SEP>".join("Exam name:\\n{name}\\nExam results:\\n{result}" for earlier exams)
    + "<SEP>Exam name:\\n{exam}\\nExam results:\\n"

and generation stops at ``<SEP>``. The model is any causal LM: a local
directory or hub id loaded with transformers (``backend="transformers"``; the
DiagGym checkpoint is a path away), or a model served by vLLM or another
OpenAI-compatible ``/completions`` endpoint (``backend="openai"``).
Results are cached per (case, exam), so a case keeps its results across episodes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from rounds.envs.clinic.world_model import ClinicCase, ExamOutcome, ExamRequest, WorldModel

SEP = "<SEP>"
EXAM_HEADER = "\nThe following summarizes the results from the patient's medical examination:\n"


def diaggym_prompt(context: str, past: list[tuple[str, str]], exam_name: str) -> str:
    """DiagGym's world-model prompt for ``exam_name`` after the ``past`` (name, result) pairs."""
    prompt = context + EXAM_HEADER
    if past:
        prompt += (
            SEP.join(f"Exam name:\n{name}\nExam results:\n{result}" for name, result in past) + SEP
        )
    return prompt + f"Exam name:\n{exam_name}\nExam results:\n"


def cut_at_stop(text: str, stop: str = SEP) -> str:
    """The text before the first ``stop`` string, stripped."""
    return text.split(stop, 1)[0].strip()


class TransformersGenerator:
    """Continues prompts with a local causal LM (CPU or GPU), stopping at ``<SEP>``."""

    def __init__(self, model: str, *, device: str = "cpu", dtype: str = "auto") -> None:
        from rounds.models import load_model_and_tokenizer

        self.model, self.tokenizer = load_model_and_tokenizer(model, dtype=dtype, device=device)
        self.model.eval()
        self.device = device
        self._lock = threading.Lock()

    def __call__(
        self, prompt: str, *, max_new_tokens: int, temperature: float, seed: int, timeout_s: float
    ) -> str:
        import torch

        inputs = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        with self._lock, torch.no_grad():
            torch.manual_seed(seed)
            output = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=None,
                top_k=None,
                stop_strings=[SEP],
                tokenizer=self.tokenizer,
                max_time=timeout_s,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return str(self.tokenizer.decode(new_tokens, skip_special_tokens=True))


class OpenAICompletionsGenerator:
    """Continues prompts through an OpenAI-compatible ``/completions`` endpoint (e.g. ``vllm serve``)."""

    def __init__(
        self, model: str, *, base_url: str, timeout_s: float, **client_options: Any
    ) -> None:
        from rounds.models.openai_client import OpenAIClient

        self.model_name = model
        self.client = OpenAIClient(base_url, timeout_s=timeout_s, **client_options)

    def __call__(
        self, prompt: str, *, max_new_tokens: int, temperature: float, seed: int, timeout_s: float
    ) -> str:
        completion = self.client.complete(
            self.model_name,
            prompt,
            max_tokens=max_new_tokens,
            temperature=temperature,
            stop=[SEP],
            seed=seed,
        )
        return completion.text

    def close(self) -> None:
        self.client.close()


class LLMWorldModel(WorldModel):
    """Exam results written by a causal LM prompted in DiagGym's format.

    Args:
        model: a local path, a hub id, or ``"tiny"`` (the embedded tiny model).
        backend: ``"transformers"`` (load locally) or ``"openai"`` (an OpenAI-compatible server).
        base_url: the server for ``backend="openai"``.
        max_new_tokens: the longest result.
        temperature: sampling temperature (DiagGym samples at 1.0).
        timeout_s: a generation slower than this yields "no result" instead of stalling.
        seed: sampling seed; with the case and exam it makes results reproducible.
        cache_size: how many (case, exam) results to keep.
        device, dtype: for ``backend="transformers"``.
        client_options: passed to the HTTP client (``max_retries``, ``api_key_env`` ...).
    """

    name = "llm"

    def __init__(
        self,
        model: str = "tiny",
        *,
        backend: str = "transformers",
        base_url: str | None = None,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        timeout_s: float = 60.0,
        seed: int = 0,
        cache_size: int = 100_000,
        device: str = "cpu",
        dtype: str = "auto",
        **client_options: Any,
    ) -> None:
        if backend == "transformers":
            if client_options:
                raise ValueError(f"options {sorted(client_options)} only apply to backend='openai'")
            self.generate: Any = TransformersGenerator(model, device=device, dtype=dtype)
        elif backend == "openai":
            if not base_url:
                raise ValueError("backend='openai' needs base_url, e.g. http://127.0.0.1:8000/v1")
            self.generate = OpenAICompletionsGenerator(
                model, base_url=base_url, timeout_s=timeout_s, **client_options
            )
        else:
            raise ValueError(f"unknown backend {backend!r}; choose transformers or openai")
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.seed = seed
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.calls = 0

    def examine(self, patient: ClinicCase, request: ExamRequest) -> ExamOutcome:
        key = (patient.record.note_id, request.name)
        if key in self._cache:
            self._cache.move_to_end(key)
            return ExamOutcome(self._cache[key])
        prompt = diaggym_prompt(patient.record.case_summary, patient.history, request.name)
        seed = (self.seed * 1_000_003 + hash_text(f"{key[0]}\x1f{key[1]}")) % (2**31)
        self.calls += 1
        try:
            raw = self.generate(
                prompt,
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                seed=seed,
                timeout_s=self.timeout_s,
            )
        except Exception as err:  # a backend failure is a missing result, never a crashed episode
            return ExamOutcome(
                f"No result: the world model failed ({type(err).__name__}: {err}).", available=False
            )
        text = cut_at_stop(raw) or "No result was returned."
        self._cache[key] = text
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return ExamOutcome(text)

    def close(self) -> None:
        close = getattr(self.generate, "close", None)
        if callable(close):
            close()


def hash_text(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode("utf-8"))
