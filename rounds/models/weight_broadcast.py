"""The process group a trainer and a rollout server share to broadcast weights.

SGLang's ``/init_weights_update_group`` and ``/update_weights_from_distributed`` put
the trainer (rank 0, the broadcast's source) and the server's ranks in one process
group of their own, beside any the trainer already has: a ``TCPStore`` hosted by
rank 0 at ``master_address:master_port``, prefixed by the group's name, and a
``ProcessGroupNCCL`` (GPUs) or ``ProcessGroupGloo`` (CPUs: the tests' stand-in) on
it. Both sides build it here, so they agree on how.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

BACKENDS = ("nccl", "gloo")


@dataclass
class WeightGroup:
    """A process group for weight broadcasts, with the store it rendezvoused on (kept alive
    as long as the group)."""

    group: Any
    store: Any
    rank: int
    world_size: int
    device: str

    def broadcast(self, tensor: Any) -> None:
        """Broadcast ``tensor`` from rank 0 (in place on the other ranks), and wait for it."""
        self.group.broadcast(tensor, 0).wait()


def join_weight_group(
    backend: str,
    master_address: str,
    master_port: int,
    rank: int,
    world_size: int,
    group_name: str,
    *,
    timeout_s: float = 300.0,
) -> WeightGroup:
    """Join (rank 0: host) the weight-update group; returns once every rank has joined.

    Raises:
        ValueError: a backend other than ``nccl`` or ``gloo``.
    """
    import torch.distributed as dist

    if backend not in BACKENDS:
        raise ValueError(f"weight broadcast backend {backend!r}: use nccl (GPUs) or gloo (CPUs)")
    timeout = timedelta(seconds=timeout_s)
    # torch.distributed re-exports its C++ stores without declaring them (hence the ignores).
    store = dist.TCPStore(  # type: ignore[attr-defined]
        master_address,
        master_port,
        world_size,
        is_master=rank == 0,
        timeout=timeout,
        wait_for_workers=False,
    )
    prefixed = dist.PrefixStore(group_name, store)  # type: ignore[attr-defined]
    if backend == "gloo":
        group: Any = dist.ProcessGroupGloo(prefixed, rank, world_size, timeout)
        device = "cpu"
    else:
        group = dist.ProcessGroupNCCL(  # only in CUDA builds of torch
            prefixed, rank, world_size, dist.ProcessGroupNCCL.Options()
        )
        device = "cuda"
    return WeightGroup(group, store, rank, world_size, device)
