"""Pushing the trainer's weights to its rollout engine after each update.

With ``rollout.backend: server`` the engine is another process (an SGLang server,
or ``rounds.models.serve``) and the weights travel through a disk both see: the
policy is saved as safetensors (``save_pretrained``, the model's own layout) into
a hidden temporary directory beside the target, renamed into place in one step (a
reader never sees half a checkpoint), and the server is told to load it with
``POST /update_weights_from_disk`` and a fresh ``weight_version``. The client keeps
that request, so a server that restarts mid-step gets the weights again before it
generates (:class:`~rounds.agents.server_agent.RolloutServerClient`). Older pushes
are removed once the server has loaded a newer one.

With ``rollout.backend: vllm`` the engine lives in this process and takes the named
tensors directly (:meth:`~rounds.agents.vllm_agent.VLLMAgent.load_weights`).

With ``weight_sync: nccl`` (or ``gloo`` on CPUs) the tensors are broadcast to the
server instead (:class:`BroadcastWeightSync`, SGLang's distributed weight update).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from rounds.agents.server_agent import RolloutServerClient, RolloutServerError
from rounds.models.rollout_protocol import UpdateWeightsResponse


class DiskWeightSync:
    """Weights to a rollout server through safetensors in ``directory``.

    Args:
        client: the server's client (it remembers the last push, for restarts).
        directory: where pushes are written; the server must read the same path.
    """

    def __init__(self, client: RolloutServerClient, directory: str | Path) -> None:
        self.client = client
        self.directory = Path(directory).resolve()
        self.pushes = 0

    def push(self, model: Any, label: str) -> Path:
        """Write ``model``'s weights and have the server load them; returns their directory.

        ``label`` names the push (e.g. ``step-000003``); the weight version is the label
        with a push counter, unique within the run.

        Raises:
            RolloutServerError: the server did not answer or could not load the weights.
        """
        self.pushes += 1
        version = f"{label}.push-{self.pushes:05d}"
        self.directory.mkdir(parents=True, exist_ok=True)
        staging = self.directory / f".{version}.{uuid.uuid4().hex[:8]}.tmp"
        target = self.directory / version
        try:
            model.save_pretrained(staging, safe_serialization=True)
            os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        self.client.update_weights_from_disk(str(target), version)
        for old in self.directory.glob("*.push-*"):  # earlier pushes only, nothing else there
            if old != target and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        return target


class BroadcastWeightSync:
    """Weights to a rollout server by broadcast (SGLang's ``/init_weights_update_group`` and
    ``/update_weights_from_distributed``): no disk, the tensors go rank 0 -> server.

    The first push creates the group: the trainer hosts its store on ``master_address`` and
    a free port and joins as rank 0 while the server joins as rank 1. Each push announces
    the tensors (names, dtypes, shapes, the new ``weight_version``) in a request that the
    server answers once it has received and loaded them all, while the trainer broadcasts
    them in that order. ``backend`` is ``nccl`` (GPUs, tensors on CUDA) or ``gloo`` (CPU,
    what the tests run). A server that restarts loses the group and the weights: the
    client then stops the run with that reason (disk sync can reload; this cannot).

    Args:
        client: the server's client.
        backend: ``nccl`` or ``gloo``.
        master_address: the trainer's address as the server reaches it.
    """

    group_name = "rounds_weight_update"

    def __init__(
        self, client: RolloutServerClient, backend: str, master_address: str = "127.0.0.1"
    ) -> None:
        self.client = client
        self.backend = backend
        self.master_address = master_address
        self.group: Any = None
        self.pushes = 0

    def _connect(self) -> None:
        from rounds.models.serve import bind
        from rounds.models.weight_broadcast import join_weight_group

        probe = bind(self.master_address, 0)
        port = int(probe.getsockname()[1])
        probe.close()
        request = {
            "master_address": self.master_address,
            "master_port": port,
            "rank_offset": 1,
            "world_size": 2,
            "group_name": self.group_name,
            "backend": self.backend,
        }
        with cf.ThreadPoolExecutor(1) as http:
            answer = http.submit(self.client.request, "POST", "/init_weights_update_group", request)
            group = join_weight_group(
                self.backend, self.master_address, port, 0, 2, self.group_name
            )
            result = UpdateWeightsResponse.model_validate(answer.result())
        if not result.success:
            raise RolloutServerError(
                f"the rollout server at {self.client.base_url} could not join the weight "
                f"broadcast group: {result.message}"
            )
        self.group = group

    def push(self, model: Any, label: str) -> str:
        """Broadcast ``model``'s parameters and have the server load them; returns the weight
        version.

        Raises:
            RolloutServerError: the server refused or could not load them.
        """
        if self.group is None:
            self._connect()
        self.pushes += 1
        version = f"{label}.push-{self.pushes:05d}"
        tensors = [(name, p.detach()) for name, p in model.named_parameters()]
        announce = {
            "names": [name for name, _ in tensors],
            "dtypes": [str(t.dtype).removeprefix("torch.") for _, t in tensors],
            "shapes": [list(t.shape) for _, t in tensors],
            "group_name": self.group_name,
            "weight_version": version,
        }
        with cf.ThreadPoolExecutor(1) as http:
            answer = http.submit(
                self.client.request, "POST", "/update_weights_from_distributed", announce
            )
            for _, tensor in tensors:
                self.group.broadcast(tensor.to(self.group.device).contiguous())
            result = UpdateWeightsResponse.model_validate(answer.result())
        if not result.success:
            raise RolloutServerError(
                f"the rollout server at {self.client.base_url} could not load the broadcast "
                f"weights: {result.message}"
            )
        self.client.expect_version(version)
        return version
