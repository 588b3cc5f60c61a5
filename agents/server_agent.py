"""``server``: generation on a rollout server (SGLang's native API) with token ids in and out.

A trainer on one set of GPUs and an inference server on another is how RL runs at
scale: the server batches and caches, the trainer trains. The ``server`` agent keeps
each episode's token sequence here (:class:`~rounds.agents.engine_agent.EngineAgent`)
and sends the server only token ids (``/generate`` with ``input_ids`` and
``return_logprob``; see :mod:`rounds.models.rollout_protocol`), so the episode's
sequence is exactly what was sampled. The log-probs are the server's: whether they
are taken after temperature scaling depends on the server (the trainer corrects the
remaining mismatch by truncated importance sampling).

:class:`RolloutServerClient` is the HTTP side, shared with the trainer's weight sync:
every request has a timeout; a request the server did not answer (a connection
error, or 502/503/504 while it restarts) is retried with exponential backoff, and
after the last try it fails with :class:`RolloutServerError`, which says where and
what to do. A server that came back from a restart serves the weights it was
started with, so before generating again the client checks the server's
``weight_version`` and reloads the trainer's last pushed weights if they differ.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import httpx

from rounds.agents.engine_agent import EngineAgent, Sample
from rounds.agents.tokens import ConversationTokens
from rounds.models.rollout_protocol import (
    ModelInfo,
    SamplingParams,
    UpdateWeightsFromDiskRequest,
    UpdateWeightsResponse,
    output_tokens,
)

#: Answers of a server that is (re)starting or overloaded: worth another try.
RETRY_STATUS = frozenset({502, 503, 504})
#: Requests that load weights (a retry of one does not first restore weights).
WEIGHT_PATHS = frozenset(
    {"/update_weights_from_disk", "/init_weights_update_group", "/update_weights_from_distributed"}
)


class RolloutServerError(RuntimeError):
    """The rollout server did not answer after every retry, or refused a request."""


class RolloutServerClient:
    """HTTP calls to one rollout server, with timeouts, retries and the expected weights.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:30000``.
        timeout_s: the limit of one request.
        retries: extra tries of a request the server did not answer.
        retry_backoff_s: the wait before the first retry, doubled each time.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 600.0,
        retries: int = 5,
        retry_backoff_s: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.retry_backoff_s = retry_backoff_s
        self.timeout_s = timeout_s
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s, trust_env=False)
        #: The weights the server should serve (the last successful push), or None: its own.
        self.expected_weights: UpdateWeightsFromDiskRequest | None = None
        #: The ``weight_version`` the server should report (the last push), or None.
        self.expected_version: str | None = None
        #: Requests that failed and were tried again (the trainer logs it).
        self.retried = 0

    @property
    def _http(self) -> httpx.Client:
        """The HTTP client, opened again after :meth:`close` (a trainer's ``train()`` closes
        its engine at the end; a later call reconnects)."""
        if self._client.is_closed:
            self._client = httpx.Client(
                base_url=self.base_url, timeout=self.timeout_s, trust_env=False
            )
        return self._client

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """``method path`` with ``body`` as JSON; the answer's JSON. Retries what the server
        did not answer; a server that came back gets the expected weights again first.

        Raises:
            RolloutServerError: no answer after every retry, or a 4xx/5xx the server meant.
        """
        attempts = 1 + self.retries
        failure = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
                self.retried += 1
            try:
                if attempt and path not in WEIGHT_PATHS:
                    self._restore_weights()
                response = self._http.request(method, path, json=body)
            except (httpx.TransportError, _Unanswered) as err:
                failure = str(err) or type(err).__name__
                continue
            if response.status_code in RETRY_STATUS:
                failure = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                raise RolloutServerError(
                    f"the rollout server at {self.base_url} refused {method} {path} "
                    f"(HTTP {response.status_code}): {response.text[:500]}"
                )
            return response.json()
        raise RolloutServerError(
            f"the rollout server at {self.base_url} did not answer {method} {path} after "
            f"{attempts} tries (last: {failure}); start it (python -m rounds.models.serve, or "
            "your SGLang server), check rollout.base_url, or raise rollout.retries"
        )

    def _restore_weights(self) -> None:
        """After a failed request: if the server lost the pushed weights (a restart), reload
        them. A server still down raises :class:`_Unanswered` (the caller retries)."""
        version = self.expected_version
        if version is None:
            return
        try:
            info = ModelInfo.model_validate(self._http.get("/get_model_info").json())
            if info.weight_version == version:
                return
            expected = self.expected_weights
            if expected is None:
                raise RolloutServerError(
                    f"the rollout server at {self.base_url} serves weight_version "
                    f"{info.weight_version!r}, not the trainer's last push {version!r} (did it "
                    "restart?); broadcast weights (weight_sync nccl or gloo) cannot be sent "
                    "again mid-step: use weight_sync disk for a server that may restart"
                )
            answer = self._http.post("/update_weights_from_disk", json=expected.model_dump())
        except httpx.TransportError as err:
            raise _Unanswered(str(err) or type(err).__name__) from err
        if answer.status_code in RETRY_STATUS:
            raise _Unanswered(f"HTTP {answer.status_code}")
        result = UpdateWeightsResponse.model_validate(answer.json())
        if not result.success:
            raise RolloutServerError(
                f"the rollout server at {self.base_url} restarted and could not reload the "
                f"trainer's weights from {expected.model_path}: {result.message}"
            )

    def model_info(self) -> ModelInfo:
        return ModelInfo.model_validate(self.request("GET", "/get_model_info"))

    def update_weights_from_disk(self, model_path: str, weight_version: str) -> None:
        """Make the server load the weights in ``model_path``; they are the expected weights
        from now on.

        Raises:
            RolloutServerError: the server could not load them (its message says why).
        """
        update = UpdateWeightsFromDiskRequest(model_path=model_path, weight_version=weight_version)
        result = UpdateWeightsResponse.model_validate(
            self.request("POST", "/update_weights_from_disk", update.model_dump())
        )
        if not result.success:
            raise RolloutServerError(
                f"the rollout server at {self.base_url} could not load the weights in "
                f"{model_path}: {result.message}. It must read that directory (rollout.sync_dir "
                "on a disk both machines see) and serve the trainer's model architecture"
            )
        self.expected_weights = update
        self.expected_version = weight_version

    def expect_version(self, weight_version: str) -> None:
        """The server now serves ``weight_version``, pushed another way than from disk (a
        broadcast): there is no file to reload it from after a restart."""
        self.expected_weights = None
        self.expected_version = weight_version

    def generate(
        self, prompts: Sequence[list[int]], params: Sequence[SamplingParams]
    ) -> list[dict[str, Any]]:
        """One ``/generate`` call for a batch of token-id prompts; one result per prompt.

        The results must come from the trainer's last pushed weights: a server that restarted
        between two calls (no failed request to notice it by) answers with its launch
        weights, so the answer's ``weight_version`` (each result's ``meta_info``, or
        ``/get_model_info`` when the server does not put it there) is checked, and on a
        mismatch the weights are reloaded and the batch sampled again.
        """
        body = {
            "input_ids": [list(p) for p in prompts],
            "sampling_params": [p.model_dump(exclude_none=True) for p in params],
            "return_logprob": True,
        }
        for _ in range(1 + self.retries):
            results = self.request("POST", "/generate", body)
            if not isinstance(results, list) or len(results) != len(prompts):
                raise RolloutServerError(
                    f"the rollout server at {self.base_url} answered a batch of {len(prompts)} "
                    f"prompts with {len(results) if isinstance(results, list) else 'no list of'} "
                    "results; it must answer /generate batches as SGLang does"
                )
            if self._expected_served(results):
                return results
            self.retried += 1
            with contextlib.suppress(_Unanswered):  # still down: the next request retries
                self._restore_weights()
        raise RolloutServerError(
            f"the rollout server at {self.base_url} kept generating with other weights than "
            f"the trainer's last push ({self.expected_version}); "
            "is another trainer pushing to the same server?"
        )

    def _expected_served(self, results: list[dict[str, Any]]) -> bool:
        expected = self.expected_version
        if expected is None:
            return True
        versions = {
            (r.get("meta_info") or {}).get("weight_version") if isinstance(r, dict) else None
            for r in results
        }
        if versions == {None}:  # the server does not say per result: ask it
            versions = {self.model_info().weight_version}
        return versions == {expected}


class _Unanswered(Exception):
    """The server did not answer a request made while restoring weights (retry)."""


def model_context(model: str) -> int:
    """``model``'s context length from its local config, or 32768 when there is none."""
    from transformers import AutoConfig

    from rounds.models import resolve_model

    try:
        config = AutoConfig.from_pretrained(resolve_model(model))
    except (OSError, ValueError):
        return 32_768
    return int(getattr(config, "max_position_embeddings", 32_768))


class ServerAgent(EngineAgent):
    """Generation on a rollout server, batched across episodes.

    Args:
        model: the model's local path, hub id or ``"tiny"``: its tokenizer builds the token
            sequences (the server must serve the same model).
        base_url: the rollout server; or pass ``client`` (the trainer shares its own).
        tokenizer: the tokenizer, if already loaded.
        max_new_tokens, temperature, top_p, top_k: sampling (``temperature=0``: greedy).
        seed: seeds each prompt's ``sampling_seed`` (with the call count and its row).
        max_context_tokens: the served model's context (default: ``model``'s config's
            ``max_position_embeddings``, else 32768).
        max_episode_tokens: end an episode before its token sequence could exceed this.
        use_tools: pass env tool specs to the chat template.
        timeout_s, retries, retry_backoff_s: see :class:`RolloutServerClient`.
        stop_ids: tokens that end a reply besides the tokenizer's end-of-turn token (the
            model's ``generation_config.eos_token_id``).
    """

    def __init__(
        self,
        model: str = "tiny",
        *,
        base_url: str | None = None,
        client: RolloutServerClient | None = None,
        tokenizer: Any = None,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
        max_context_tokens: int | None = None,
        max_episode_tokens: int | None = None,
        use_tools: bool = True,
        timeout_s: float | None = 600.0,
        retries: int = 5,
        retry_backoff_s: float = 0.5,
        stop_ids: Sequence[int] | None = None,
    ) -> None:
        from rounds.models import load_tokenizer

        if client is None and not base_url:
            raise ValueError(
                "the server agent needs base_url, the rollout server's address "
                "(python -m rounds.models.serve starts a local one)"
            )
        self.name = "server"
        self.model = model
        self._own_client = client is None
        self.client = client or RolloutServerClient(
            str(base_url),
            timeout_s=timeout_s or 600.0,
            retries=retries,
            retry_backoff_s=retry_backoff_s,
        )
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model)
        tokens = ConversationTokens(
            self.tokenizer,
            use_tools=use_tools,
            max_context_tokens=max_context_tokens or model_context(model),
        )
        tokens.stop_ids = {tokens.eos_id, *(int(s) for s in stop_ids or ())}
        self._set_sampling(
            tokens,
            max_new_tokens=max_new_tokens,
            max_episode_tokens=max_episode_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            seed=seed,
        )

    def sample(self, prompts: Sequence[list[int]]) -> list[Sample]:
        params = [
            SamplingParams(
                max_new_tokens=self.max_new_tokens,
                temperature=max(self.temperature, 0.0),
                top_p=self.top_p,
                top_k=self.engine_top_k,
                stop_token_ids=sorted(self.tokens.stop_ids),
                skip_special_tokens=False,
                no_stop_trim=True,
                sampling_seed=seed,
            )
            for seed in self.row_seeds(len(prompts))
        ]
        samples = []
        for result in self.client.generate(prompts, params):
            ids, logprobs, finish = output_tokens(result)
            kind = finish.get("type")
            if kind == "abort":
                raise RolloutServerError(
                    f"the rollout server at {self.client.base_url} aborted a generation: "
                    f"{finish.get('message', finish)}"
                )
            ids = ids[: self.max_new_tokens]
            samples.append(Sample(ids, logprobs[: len(ids)]))
        return samples

    def close(self) -> None:
        if self._own_client:
            self.client.close()
