"""The rollout server's wire format: SGLang's native endpoints, the part RL trainers use.

``rounds`` generates through a rollout server with the endpoints SGLang serves
(``python -m sglang.launch_server``) and RL frameworks drive (slime, AReaL, verl's
server mode), so the same trainer works against a real SGLang server on GPUs and
against ``python -m rounds.models.serve`` (the local test server) on a CPU:

- ``POST /generate`` with ``input_ids`` (one prompt or a batch, as token ids: the
  server never tokenizes text, so the episode's sequence stays exact),
  ``sampling_params`` (one dict for the batch, or one per prompt) and
  ``return_logprob: true``. Each result's ``meta_info.output_token_logprobs`` holds
  ``[logprob, token_id, text]`` per sampled token; ``meta_info.finish_reason`` is
  ``{"type": "stop", "matched": id}`` or ``{"type": "length", "length": n}``.
- ``POST /update_weights_from_disk`` with ``model_path`` (a directory of safetensors
  in the model's layout) and an optional ``weight_version``: the server loads the
  weights in place and answers ``{"success", "message"}``.
- ``GET /get_model_info`` (``model_path``, ``weight_version``) and ``GET /health``.

Only the fields rounds sends or reads are modelled; the local server refuses a
sampling parameter it does not implement rather than ignore it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SamplingParams(BaseModel):
    """SGLang's sampling parameters that rounds uses."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(default=128, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, description="0: greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=-1, description="-1 (or 0): no top-k cut.")
    stop_token_ids: list[int] = Field(default_factory=list)
    skip_special_tokens: bool = True
    no_stop_trim: bool = False
    sampling_seed: int | None = None


class GenerateRequest(BaseModel):
    """``POST /generate`` with token ids (SGLang's ``GenerateReqInput``, token-id form)."""

    model_config = ConfigDict(extra="forbid")

    input_ids: list[int] | list[list[int]]
    sampling_params: SamplingParams | list[SamplingParams] = Field(default_factory=SamplingParams)
    return_logprob: bool = False

    def batch(self) -> tuple[list[list[int]], list[SamplingParams], bool]:
        """The prompts, one sampling-parameter set per prompt, and whether the request was a
        batch (a batch is answered with a list)."""
        ids = self.input_ids
        prompts = [list(p) for p in ids if isinstance(p, list)]
        batched = bool(prompts)
        if not batched:
            prompts = [[p for p in ids if isinstance(p, int)]]
        params = self.sampling_params
        per_prompt = params if isinstance(params, list) else [params] * len(prompts)
        if len(per_prompt) != len(prompts):
            raise ValueError(
                f"{len(per_prompt)} sampling_params for {len(prompts)} prompts: send one dict "
                "for the batch or one per prompt"
            )
        return prompts, per_prompt, batched


class UpdateWeightsFromDiskRequest(BaseModel):
    """``POST /update_weights_from_disk`` (SGLang's ``UpdateWeightFromDiskReqInput``)."""

    model_config = ConfigDict(extra="forbid")

    model_path: str
    load_format: str | None = None
    weight_version: str | None = None
    abort_all_requests: bool = False


class UpdateWeightsResponse(BaseModel):
    success: bool
    message: str
    num_paused_requests: int = 0


class ModelInfo(BaseModel):
    """``GET /get_model_info``."""

    model_path: str
    tokenizer_path: str | None = None
    is_generation: bool = True
    weight_version: str | None = None


def output_tokens(result: dict[str, Any]) -> tuple[list[int], list[float], dict[str, Any]]:
    """A ``/generate`` result's sampled token ids, their log-probs and its finish reason.

    Raises:
        ValueError: the result has no ``meta_info.output_token_logprobs`` (the request
            did not ask for log-probs, or the server is not SGLang-compatible).
    """
    meta = result.get("meta_info")
    entries = meta.get("output_token_logprobs") if isinstance(meta, dict) else None
    if not isinstance(entries, list):
        raise ValueError(
            "the rollout server's /generate result has no meta_info.output_token_logprobs; "
            "it must answer return_logprob requests as SGLang does"
        )
    ids = [int(entry[1]) for entry in entries]
    logprobs = [float(entry[0]) for entry in entries]
    finish = meta.get("finish_reason") if isinstance(meta, dict) else None
    return ids, logprobs, finish if isinstance(finish, dict) else {}


class InitWeightsUpdateGroupRequest(BaseModel):
    """``POST /init_weights_update_group`` (SGLang's ``InitWeightsUpdateGroupReqInput``): join
    the trainer's weight-broadcast group as ranks ``rank_offset`` and up."""

    model_config = ConfigDict(extra="forbid")

    master_address: str
    master_port: int
    rank_offset: int = 1
    world_size: int = 2
    group_name: str = "weight_update_group"
    backend: str = "nccl"


class UpdateWeightsFromDistributedRequest(BaseModel):
    """``POST /update_weights_from_distributed`` (SGLang's
    ``UpdateWeightsFromDistributedReqInput``): receive these tensors, in this order, from
    rank 0's broadcasts, and load them."""

    model_config = ConfigDict(extra="forbid")

    names: list[str]
    dtypes: list[str]
    shapes: list[list[int]]
    group_name: str = "weight_update_group"
    flush_cache: bool = True
    abort_all_requests: bool = False
    weight_version: str | None = None
