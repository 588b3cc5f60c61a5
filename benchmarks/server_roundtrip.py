"""``rounds serve`` round trip: one env step locally, over HTTP (``rounds/Remote-v0``) and over
the OpenEnv WebSocket session, on 127.0.0.1.

Usage: python benchmarks/server_roundtrip.py [--steps 500] [--repeats 3] [--json]

The server is ``rounds serve`` in its own process, on
``rounds/Household-v0`` whose own step takes about 30 us, so the figures are the
protocol's cost: JSON, HTTP or WebSocket framing, the event loop and the env thread
pool. Each figure is the median step latency of one run; reported as the median of
``--repeats`` runs with min and max. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import httpx
from websockets.sync.client import connect

import rounds  # noqa: F401  (registers the envs)

ENV = "rounds/Household-v0"


def median_ms(step: Callable[[], Any], steps: int) -> float:
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def gym_steps(env: gym.Env[str, str]) -> Callable[[], Any]:
    env.reset(seed=0)

    def step() -> None:
        _, _, terminated, truncated, _ = env.step("look")
        if terminated or truncated:
            env.reset(seed=0)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}"
    serve = "import sys; from rounds.cli import main; sys.argv[0] = 'rounds'; main()"
    server = subprocess.Popen(
        [sys.executable, "-c", serve, "serve", ENV, "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/health")
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("rounds serve did not start") from None
            time.sleep(0.2)

    local = gym.make(ENV)
    remote = gym.make("rounds/Remote-v0", url=url)
    runs: dict[str, list[float]] = {"local": [], "http": [], "websocket": []}
    with connect(url.replace("http://", "ws://") + "/ws") as ws:
        ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
        ws.recv()

        def ws_step() -> None:
            ws.send(json.dumps({"type": "step", "data": {"text": "look"}}))
            if json.loads(ws.recv())["data"]["done"]:
                ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
                ws.recv()

        for _ in range(args.repeats):
            runs["local"].append(median_ms(gym_steps(local), args.steps))
            runs["http"].append(median_ms(gym_steps(remote), args.steps))
            runs["websocket"].append(median_ms(ws_step, args.steps))
    remote.close()
    server.terminate()
    server.wait(timeout=10)

    figures = {
        f"step_ms/{name}": {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
        }
        for name, values in runs.items()
    }
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "figures": figures,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{ENV} step round trip on {report['machine']}")
    for name, value in figures.items():
        print(f"  {name:<20} {value['median']:>8.3f} ms  [{value['min']:.3f}, {value['max']:.3f}]")


if __name__ == "__main__":
    main()
