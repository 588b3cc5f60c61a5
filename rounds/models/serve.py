"""A local rollout server: a causal LM behind SGLang's native endpoints, on 127.0.0.1.

``python -m rounds.models.serve --model tiny --port 30000`` serves the embedded tiny
model (or any local causal LM) through the endpoints the trainer's ``server``
rollout backend uses (:mod:`rounds.models.rollout_protocol`): ``/generate`` with
token ids and log-probs, ``/update_weights_from_disk``, the weight broadcast
(``/init_weights_update_group``, ``/update_weights_from_distributed``; gloo on a
CPU, NCCL on GPUs), ``/get_model_info`` and ``/health``. It is what the CPU tests train against, and a stand-in for an SGLang
server while developing without a GPU; it runs one generation at a time (no
continuous batching, no paged KV cache).

Sampling follows the ``hf`` agent: left-padded batches through ``generate`` with the
model's own generation defaults switched off, each prompt stopping at its own stop
token, log-probs ``log softmax(logits / temperature)`` of the sampled tokens (after
temperature scaling; raw logits when greedy). The prompts' ``sampling_seed`` values
together seed the batch's sampling, so the same batch gives the same tokens.
Weights load in place from a directory of safetensors (what ``save_pretrained``
writes); a load that does not fit the model (another architecture, missing or
unexpected tensors) answers ``success: false`` and keeps the weights it had.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rounds.models.rollout_protocol import (
    GenerateRequest,
    InitWeightsUpdateGroupRequest,
    ModelInfo,
    SamplingParams,
    UpdateWeightsFromDiskRequest,
    UpdateWeightsFromDistributedRequest,
    UpdateWeightsResponse,
)
from rounds.models.sampling import SamplingSettings, sample


class GenerationServer:
    """The model a local rollout server serves, and its generation and weight loading.

    Args:
        model: a local path, a hub id (offline: only if cached) or ``"tiny"``.
        device: where the model runs.
        dtype: ``"auto"``, ``"float32"``, ``"bfloat16"``...
    """

    def __init__(self, model: str = "tiny", *, device: str = "cpu", dtype: str = "auto") -> None:
        from rounds.models import load_model_and_tokenizer

        self.model_path = model
        self.device = device
        self.lm, self.tokenizer = load_model_and_tokenizer(model, dtype=dtype, device=device)
        self.lm.eval()
        self.weight_version = "default"
        self.context = int(getattr(self.lm.config, "max_position_embeddings", 32_768))
        #: One generation or weight load at a time.
        self.lock = threading.Lock()
        #: ``/generate`` requests answered so far (tests watch it).
        self.generate_calls = 0
        #: Weight-broadcast groups joined, by name.
        self.groups: dict[str, Any] = {}

    def info(self) -> ModelInfo:
        return ModelInfo(
            model_path=self.model_path,
            tokenizer_path=self.model_path,
            weight_version=self.weight_version,
        )

    # ------------------------------------------------------------ generation

    def generate(self, request: GenerateRequest) -> list[dict[str, Any]]:
        """One result per prompt, in SGLang's ``/generate`` result format.

        Raises:
            ValueError: an empty prompt, a prompt that does not fit the context, a token id
                outside the vocabulary, or prompts with different sampling settings (only
                their seeds may differ).
        """
        prompts, params, _ = request.batch()
        vocab = int(self.lm.config.vocab_size)
        for prompt in prompts:
            if not prompt:
                raise ValueError("an empty prompt: send at least one token id")
            if any(not 0 <= t < vocab for t in prompt):
                raise ValueError(f"a prompt holds token ids outside the vocabulary [0, {vocab})")
        first = params[0]
        if any(
            p.model_copy(update={"sampling_seed": None})
            != first.model_copy(update={"sampling_seed": None})
            for p in params
        ):
            raise ValueError(
                "this server samples a batch with one setting: send prompts whose "
                "sampling_params differ only in sampling_seed"
            )
        longest = max(len(p) for p in prompts)
        if longest + first.max_new_tokens > self.context:
            raise ValueError(
                f"a prompt of {longest} tokens plus max_new_tokens {first.max_new_tokens} "
                f"exceeds the model's context of {self.context} tokens"
            )
        seed = zlib.crc32(",".join(str(p.sampling_seed) for p in params).encode())
        with self.lock:
            self.generate_calls += 1
            rows = self._sample(prompts, first, seed)
        return [
            self._result(prompt, ids, logprobs, first, request.return_logprob)
            for prompt, (ids, logprobs) in zip(prompts, rows, strict=True)
        ]

    def _sample(
        self, prompts: list[list[int]], params: SamplingParams, seed: int
    ) -> list[tuple[list[int], list[float]]]:
        import torch

        pad = self.tokenizer.pad_token_id
        pad = int(pad if pad is not None else self.tokenizer.eos_token_id)
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor(
            [[pad] * (width - len(p)) + p for p in prompts], device=self.device
        )
        attention = torch.tensor(
            [[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device
        )
        stops = sorted(set(params.stop_token_ids) | {int(self.tokenizer.eos_token_id)})
        settings = SamplingSettings(
            max_new_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            stop_ids=tuple(stops),
            pad_id=pad,
        )
        drawn = sample(self.lm, input_ids, attention, settings, seed=seed)
        new, logprobs = drawn.tokens, drawn.logprobs
        rows = []
        for row in range(len(prompts)):
            sampled = new[row].tolist()
            stop = next((i + 1 for i, t in enumerate(sampled) if t in stops), len(sampled))
            rows.append((sampled[:stop], logprobs[row, :stop].tolist()))
        return rows

    def _result(
        self,
        prompt: list[int],
        ids: list[int],
        logprobs: list[float],
        params: SamplingParams,
        with_logprobs: bool,
    ) -> dict[str, Any]:
        stops = set(params.stop_token_ids) | {int(self.tokenizer.eos_token_id)}
        stopped = bool(ids) and ids[-1] in stops
        finish: dict[str, Any] = (
            {"type": "stop", "matched": ids[-1]}
            if stopped
            else {"type": "length", "length": len(ids)}
        )
        shown = ids if params.no_stop_trim or not stopped else ids[:-1]
        meta: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "finish_reason": finish,
            "prompt_tokens": len(prompt),
            "completion_tokens": len(ids),
            "weight_version": self.weight_version,
        }
        if with_logprobs:
            meta["output_token_logprobs"] = [
                [lp, tok, None] for lp, tok in zip(logprobs, ids, strict=True)
            ]
        return {
            "text": self.tokenizer.decode(shown, skip_special_tokens=params.skip_special_tokens),
            "output_ids": ids,
            "meta_info": meta,
        }

    # ------------------------------------------------------------ weights

    def update_weights_from_disk(
        self, request: UpdateWeightsFromDiskRequest
    ) -> UpdateWeightsResponse:
        """Load the safetensors in ``request.model_path`` into the model, in place; on any
        mismatch keep the old weights and say why."""
        from safetensors.torch import load_file

        directory = Path(request.model_path)
        files = sorted(directory.glob("*.safetensors")) if directory.is_dir() else []
        if not files:
            return UpdateWeightsResponse(
                success=False, message=f"no *.safetensors files in {request.model_path}"
            )
        state: dict[str, Any] = {}
        try:
            for file in files:
                state.update(load_file(str(file)))
        except Exception as err:  # a torn or foreign file: refuse, keep serving
            return UpdateWeightsResponse(success=False, message=f"cannot read the weights: {err}")
        return self._load(state, request.model_path, request.weight_version)

    def _load(
        self, state: dict[str, Any], source: str, weight_version: str | None
    ) -> UpdateWeightsResponse:
        """Load ``state`` in place if it fits the model exactly (a tied LM head may be left
        out); else keep the weights and say why."""
        own = self.lm.state_dict()
        tied = {
            name
            for name in own
            if name not in state
            and getattr(self.lm.config, "tie_word_embeddings", False)
            and name.endswith("lm_head.weight")
        }
        missing = sorted(set(own) - set(state) - tied)
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(
            name
            for name in set(state) & set(own)
            if tuple(state[name].shape) != tuple(own[name].shape)
        )
        if missing or unexpected or wrong:
            return UpdateWeightsResponse(
                success=False,
                message=(
                    f"the weights do not fit the served model ({len(missing)} missing, "
                    f"{len(unexpected)} unexpected, {len(wrong)} of another shape; e.g. "
                    f"{(missing + unexpected + wrong)[:3]})"
                ),
            )
        with self.lock:
            self.lm.load_state_dict(state, strict=False)
            if tied:
                self.lm.tie_weights()
            self.model_path = source
            self.weight_version = weight_version or source
        return UpdateWeightsResponse(success=True, message="Succeeded to update model weights.")

    def init_weights_update_group(
        self, request: InitWeightsUpdateGroupRequest
    ) -> UpdateWeightsResponse:
        """Join the trainer's weight-broadcast group (blocks until every rank has joined)."""
        from rounds.models.weight_broadcast import join_weight_group

        try:
            group = join_weight_group(
                request.backend,
                request.master_address,
                request.master_port,
                request.rank_offset,
                request.world_size,
                request.group_name,
            )
        except Exception as err:  # a refused backend, a rendezvous that timed out
            return UpdateWeightsResponse(success=False, message=f"cannot join the group: {err}")
        self.groups[request.group_name] = group
        return UpdateWeightsResponse(success=True, message="Succeeded to initialize the group.")

    def update_weights_from_distributed(
        self, request: UpdateWeightsFromDistributedRequest
    ) -> UpdateWeightsResponse:
        """Receive every announced tensor from rank 0's broadcasts, then load them."""
        import torch

        group = self.groups.get(request.group_name)
        if group is None:
            return UpdateWeightsResponse(
                success=False,
                message=f"no weight-update group {request.group_name!r}: call "
                "/init_weights_update_group first",
            )
        if not len(request.names) == len(request.dtypes) == len(request.shapes):
            return UpdateWeightsResponse(
                success=False, message="names, dtypes and shapes must have one entry per tensor"
            )
        state: dict[str, Any] = {}
        for name, dtype, shape in zip(request.names, request.dtypes, request.shapes, strict=True):
            kind = getattr(torch, dtype, None)
            if not isinstance(kind, torch.dtype):
                return UpdateWeightsResponse(success=False, message=f"unknown dtype {dtype!r}")
            tensor = torch.empty(shape, dtype=kind, device=group.device)
            group.broadcast(tensor)
            state[name] = tensor.to(self.device)
        return self._load(state, f"broadcast:{request.group_name}", request.weight_version)


def create_app(server: GenerationServer) -> Any:
    """The FastAPI app of ``server``'s endpoints."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI(title="rounds rollout server")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/get_model_info")
    def get_model_info() -> dict[str, Any]:
        return server.info().model_dump()

    @app.post("/generate", response_model=None)
    def generate(request: GenerateRequest) -> Any:
        try:
            results = server.generate(request)
        except ValueError as err:
            return JSONResponse({"error": {"message": str(err)}}, status_code=400)
        _, _, batched = request.batch()
        return results if batched else results[0]

    @app.post("/update_weights_from_disk")
    def update_weights_from_disk(request: UpdateWeightsFromDiskRequest) -> dict[str, Any]:
        return server.update_weights_from_disk(request).model_dump()

    @app.post("/init_weights_update_group")
    def init_weights_update_group(request: InitWeightsUpdateGroupRequest) -> dict[str, Any]:
        return server.init_weights_update_group(request).model_dump()

    @app.post("/update_weights_from_distributed")
    def update_weights_from_distributed(
        request: UpdateWeightsFromDistributedRequest,
    ) -> dict[str, Any]:
        return server.update_weights_from_distributed(request).model_dump()

    return app


class BackgroundServer:
    """A :class:`GenerationServer` served by uvicorn in a thread, bound to ``host``.

    ``port=0`` takes a free port; :meth:`stop` and :meth:`start` again serve on the same
    port (a restart, as tests need). ``url`` is the address once started.
    """

    def __init__(self, server: GenerationServer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = server
        self.host = host
        self.port = port
        self._runner: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> str:
        import uvicorn

        sock = bind(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            create_app(self.server), log_level="warning", lifespan="off", timeout_keep_alive=1
        )
        self._runner = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._runner.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._runner.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the rollout server on {self.url} did not start")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._runner = self._thread = None

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        """Serve for the ``with`` block; yields the url."""
        self.start()
        try:
            yield self.url
        finally:
            self.stop()


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port`` (0: a free port), reusable after a restart."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def main(argv: list[str] | None = None) -> None:
    """``python -m rounds.models.serve``: serve a model until interrupted."""
    import uvicorn

    from rounds.offline import apply_offline_defaults

    parser = argparse.ArgumentParser(
        prog="python -m rounds.models.serve", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", default="tiny", help="local path or 'tiny' (default)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=30000, help="port (0: a free one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args(argv)
    apply_offline_defaults()
    server = GenerationServer(args.model, device=args.device, dtype=args.dtype)
    sock = bind(args.host, args.port)
    sock.listen(128)  # connections queue from now on, so the printed address answers
    port = sock.getsockname()[1]
    print(f"rounds rollout server: {args.model} on http://{args.host}:{port}", flush=True)
    config = uvicorn.Config(create_app(server), log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1:])
