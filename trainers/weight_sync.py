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

An NCCL broadcast to a server (``weight_sync: nccl``) is not built: the config refuses it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from rounds.agents.server_agent import RolloutServerClient


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
