"""What a rollout server costs on top of its engine: the HTTP round trip and a weight push.

Usage: python benchmarks/rollout_server.py [--models embedded,30m] [--batch 16]
       [--prompt-tokens 64] [--new-tokens 32] [--repeats 3] [--json]

For each model (the embedded tiny model; a ~30M-parameter Qwen2 built locally, as in
``benchmarks/rollout.py``) a local rollout server (``rounds.models.serve``, on
127.0.0.1) samples the same batch twice: called in process (the engine alone) and
through ``POST /generate`` by the trainer's client (engine, JSON and HTTP). Their
difference is what the server adds per generation round (both on a worker thread). Then a disk weight push
(``DiskWeightSync``: ``save_pretrained`` to safetensors, atomic rename,
``/update_weights_from_disk``, the server loading the tensors in place) is timed:
the per-step cost of ``rollout.weight_sync: disk``. Medians of ``--repeats`` runs
with min and max. A benchmark, not a test; timings on a shared CPU are noisy.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

# The same ~30M shape as the rollout benchmark (this script's folder is on sys.path).
from rollout import MODEL_30M

from rounds.agents.server_agent import RolloutServerClient
from rounds.models import tiny
from rounds.models.rollout_protocol import GenerateRequest, SamplingParams
from rounds.models.serve import BackgroundServer, GenerationServer
from rounds.trainers.weight_sync import DiskWeightSync


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def timed(call: Callable[[], Any], repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def measure(
    name: str, batch: int, prompt_tokens: int, new_tokens: int, repeats: int
) -> dict[str, Any]:
    path = "tiny" if name == "embedded" else str(tiny(None, **MODEL_30M))
    server = GenerationServer(path, dtype="float32")
    vocab = int(server.lm.config.vocab_size)
    prompts = torch.randint(
        0, vocab, (batch, prompt_tokens), generator=torch.Generator().manual_seed(0)
    )
    ids = prompts.tolist()
    # The same seeds on both paths: the same tokens, so the same work.
    params = [SamplingParams(max_new_tokens=new_tokens, sampling_seed=row) for row in range(batch)]
    request = GenerateRequest(input_ids=ids, sampling_params=params, return_logprob=True)
    front = BackgroundServer(server)
    with front.running() as url, tempfile.TemporaryDirectory() as sync_dir:
        client = RolloutServerClient(url)
        # The engine alone runs on a worker thread too, as the server's handlers do (torch's
        # intra-op threads behave differently on the main thread of a loaded machine).
        with cf.ThreadPoolExecutor(1) as worker:
            worker.submit(server.generate, request).result()  # warm-up
            engine = timed(lambda: worker.submit(server.generate, request).result(), repeats)
        http = timed(lambda: client.generate(ids, params), repeats)
        sync = DiskWeightSync(client, sync_dir)
        policy = server.lm  # pushing the served weights back measures the same bytes
        push = timed(lambda: sync.push(policy, "bench"), repeats)
        client.close()
    parameters = sum(p.numel() for p in server.lm.parameters())
    overhead = [h - e for h, e in zip(sorted(http), sorted(engine), strict=True)]
    return {
        "name": name,
        "parameters_m": parameters / 1e6,
        "engine_generate_s": spread(engine),
        "http_generate_s": spread(http),
        "http_overhead_s": spread(overhead),
        "weight_push_s": spread(push),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="embedded,30m")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = [
        measure(name, args.batch, args.prompt_tokens, args.new_tokens, args.repeats)
        for name in args.models.split(",")
    ]
    if args.json:
        print(json.dumps({"figures": rows}))
        return
    print(
        f"batch {args.batch} x {args.prompt_tokens} prompt tokens, {args.new_tokens} new tokens; "
        f"medians of {args.repeats} [min, max]"
    )
    print(
        f"{'model':<10} {'params':>8} {'engine s':>10} {'http s':>10} {'overhead s':>11} {'push s':>8}"
    )
    for row in rows:
        print(
            f"{row['name']:<10} {row['parameters_m']:>7.1f}M "
            f"{row['engine_generate_s']['median']:>10.3f} {row['http_generate_s']['median']:>10.3f} "
            f"{row['http_overhead_s']['median']:>11.3f} {row['weight_push_s']['median']:>8.3f}"
        )


if __name__ == "__main__":
    main()
