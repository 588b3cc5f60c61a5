"""``rounds serve`` and ``rounds/Remote-v0``: the OpenEnv protocol on 127.0.0.1 only."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import httpx
import numpy as np
import pytest

import rounds
from rounds.records import jsonable

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import uvicorn

from rounds.server.app import EnvServer, create_app
from rounds.server.client import RemoteEnv, RemoteEnvError

HOUSEHOLD = "rounds/Household-v0"
HOSTILE = [
    "",
    "   \n\t ",
    "x" * 200_000,
    "\x00\x01\x1b[2J\x7f",
    "go to 💥 ‮rtl‬",
    '{"name": "order_exam", "arguments": {"exam": ' * 50,
    "'; DROP TABLE episodes; --",
    "\ud800 lone surrogate",
    "<script>alert(1)</script>",
]


@contextmanager
def served(env_id: str = HOUSEHOLD, **kwargs: Any) -> Iterator[str]:
    """A server on 127.0.0.1 (a free port), in a thread; yields its url."""
    reap_every_s = kwargs.pop("reap_every_s", None)
    port = kwargs.pop("port", 0)  # 0: a free port
    server = EnvServer(env_id, kwargs.pop("env_kwargs", None), **kwargs)
    config = uvicorn.Config(
        create_app(server, reap_every_s=reap_every_s),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not runner.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = runner.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        runner.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with served(max_sessions=128) as address:
        yield address


def admissible_policy(info: dict[str, Any], rng: np.random.Generator) -> str:
    """A policy that needs only what the env shows: a random admissible command, now and then
    something invalid."""
    if rng.random() < 0.15:
        return str(rng.choice(["fly to the moon", "", "open"]))
    commands = info["admissible_commands"]
    return str(commands[int(rng.integers(len(commands)))])


def play(env: gym.Env[str, str], seed: int, turns: int = 12) -> list[Any]:
    """Everything an episode returns, as JSON text (the bytes a client compares)."""
    rng = np.random.default_rng(seed)
    observation, info = env.reset(seed=seed)
    trace: list[Any] = [observation, jsonable(info)]
    for _ in range(turns):
        observation, reward, terminated, truncated, info = env.step(admissible_policy(info, rng))
        trace.append([observation, float(reward), terminated, truncated, jsonable(info)])
        if terminated or truncated:
            break
    return trace


def test_remote_episodes_equal_local_ones_byte_for_byte(url: str) -> None:
    local = gym.make(HOUSEHOLD)
    remote = gym.make("rounds/Remote-v0", url=url, env_id=HOUSEHOLD)
    try:
        for seed in range(6):
            expected = json.dumps(play(local, seed))
            assert json.dumps(play(remote, seed)) == expected
        # The same seed twice, and a task chosen by id, give the same episode remotely too.
        assert json.dumps(play(remote, 3)) == json.dumps(play(local, 3))
        task = local.unwrapped.task_ids()[5]
        assert remote.reset(seed=1, options={"task_id": task}) == local.reset(
            seed=1, options={"task_id": task}
        )
    finally:
        local.close()
        remote.close()


def test_schema_carries_the_env_contract(url: str) -> None:
    local = gym.make(HOUSEHOLD).unwrapped
    remote = RemoteEnv(url)
    try:
        assert remote.system_prompt == local.system_prompt
        assert remote.tools == local.tools
        assert list(remote.task_ids("test")) == list(local.task_ids("test"))
        assert remote.episode_meta() == local.episode_meta()
        assert remote.reward_component_names == local.reward_component_names
        assert remote.max_turns == local.max_turns
        schema = httpx.get(f"{url}/schema").json()
        assert set(schema) == {"action", "observation", "state", "env"}
        assert schema["action"]["properties"]["text"]["type"] == "string"
        assert httpx.get(f"{url}/health").json()["status"] == "healthy"
    finally:
        remote.close()
    with pytest.raises(RemoteEnvError, match="serves rounds/Household-v0, not rounds/DiagGym-v0"):
        RemoteEnv(url, env_id="rounds/DiagGym-v0")


def test_the_chat_loop_runs_remote_envs_unchanged(url: str) -> None:
    from rounds.agents.base import Action, BaseAgent, Chat
    from rounds.agents.loop import EpisodeSpec, run_episodes

    class Admissible(BaseAgent):
        name = "admissible"

        def act(self, chat: Chat) -> Action:
            return Action(text=admissible_policy(chat.info, chat.rng))

    specs = [EpisodeSpec(seed=s, agent_seed=s) for s in range(6)]

    def episodes(make: Any) -> dict[int | None, Any]:
        rollouts = run_episodes(make, Admissible(), specs, env_id=HOUSEHOLD, concurrency=3)
        return {
            r.episode.seed: r.episode.model_dump(exclude={"id", "created_at", "turns"})
            | {"turns": [t.model_dump(exclude={"latency_s", "info"}) for t in r.episode.turns]}
            for r in rollouts
        }

    remote = episodes(lambda: gym.make("rounds/Remote-v0", url=url))
    assert remote == episodes(lambda: gym.make(HOUSEHOLD))
    assert all(
        not e["truncated"] or e["meta"].get("truncation_reason") is None for e in remote.values()
    )


@pytest.mark.slow
def test_64_concurrent_sessions(url: str) -> None:
    local = gym.make(HOUSEHOLD)
    expected = {seed: json.dumps(play(local, seed, turns=4)) for seed in range(64)}

    def session(seed: int) -> str:
        env = RemoteEnv(url)
        try:
            return json.dumps(play(env, seed, turns=4))
        finally:
            env.close()

    with cf.ThreadPoolExecutor(64) as pool:
        got = dict(zip(range(64), pool.map(session, range(64)), strict=True))
    assert got == expected
    assert httpx.get(f"{url}/health").json()["active_sessions"] == 0  # every session closed


def test_malformed_requests_get_a_4xx_with_a_message(url: str) -> None:
    with httpx.Client(base_url=url) as http:
        bad_json = http.post(
            "/step", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert bad_json.status_code == 422 and bad_json.json()["detail"]
        no_session = http.post("/step", json={"action": {"text": "look"}})
        assert no_session.status_code == 400
        assert "POST /reset first" in no_session.json()["detail"]
        unknown = http.post("/step", json={"action": {"text": "look"}, "session_id": "nope"})
        assert unknown.status_code == 404 and "POST /reset to open one" in unknown.json()["detail"]
        wrong_type = http.post("/step", json={"action": {"text": 42}, "session_id": "x"})
        assert wrong_type.status_code == 422
        extra = http.post("/reset", json={"seed": 1, "bogus": True})
        assert extra.status_code == 422 and "bogus" in extra.text
        negative = http.post("/reset", json={"seed": -1})
        assert negative.status_code == 422
        bad_task = http.post("/reset", json={"task_id": "no-such-task"})
        assert 400 <= bad_task.status_code < 500, bad_task.text
        assert "no-such-task" in bad_task.json()["detail"]
        assert http.get("/state").status_code == 400
        # ... and the server keeps serving.
        opened = http.post("/reset", json={"seed": 2}).json()
        assert opened["observation"]["text"] and opened["done"] is False
        session_id = opened["metadata"]["session_id"]
        state = http.get("/state", params={"session_id": session_id}).json()
        assert (
            state["step_count"] == 0
            and state["task_id"] == opened["observation"]["info"]["task_id"]
        )
        assert http.post("/close", json={"session_id": session_id}).json()["closed"] is True


def test_hostile_actions_never_crash_the_server(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        session_id = http.post("/reset", json={"seed": 0}).json()["metadata"]["session_id"]
        for text in HOSTILE:
            body = json.dumps({"action": {"text": text}, "session_id": session_id})
            answer = http.post("/step", content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 200, (text[:40], answer.text[:200])
            data = answer.json()
            assert data["observation"]["info"]["invalid_action"] in (True, False)
            if data["done"]:
                http.post("/close", json={"session_id": session_id})
                session_id = http.post("/reset", json={"seed": 0}).json()["metadata"]["session_id"]
        assert http.get("/health").json()["status"] == "healthy"
        http.post("/close", json={"session_id": session_id})


def test_websocket_session_speaks_openenv(url: str) -> None:
    from websockets.sync.client import connect

    local = gym.make(HOUSEHOLD)
    observation, info = local.reset(seed=4)
    before = httpx.get(f"{url}/health").json()["active_sessions"]
    ws_url = url.replace("http://", "ws://") + "/ws"
    with connect(ws_url) as ws:
        ws.send(json.dumps({"type": "step", "data": {"text": "look"}}))
        assert json.loads(ws.recv())["type"] == "error"
        ws.send("{broken")
        assert json.loads(ws.recv())["data"]["code"] == "INVALID_JSON"
        ws.send(json.dumps({"type": "reset", "data": {"seed": 4}}))
        reply = json.loads(ws.recv())
        assert reply["type"] == "observation"
        assert reply["data"]["observation"]["text"] == observation
        assert reply["data"]["observation"]["info"] == jsonable(info)
        command = info["admissible_commands"][0]
        expected = local.step(command)
        ws.send(json.dumps({"type": "step", "data": {"text": command}}))
        data = json.loads(ws.recv())["data"]
        assert data["observation"]["text"] == expected[0]
        assert data["reward"] == float(expected[1])
        ws.send(json.dumps({"type": "state"}))
        assert json.loads(ws.recv())["data"]["step_count"] == 1
        ws.send(json.dumps({"type": "dance"}))
        assert json.loads(ws.recv())["data"]["code"] == "UNKNOWN_TYPE"
        ws.send(json.dumps({"type": "close"}))
    deadline = time.monotonic() + 5
    while httpx.get(f"{url}/health").json()["active_sessions"] > before:
        assert time.monotonic() < deadline, "the WebSocket's session was not closed"
        time.sleep(0.05)


def test_idle_sessions_are_reaped_and_a_full_server_answers_503() -> None:
    with served(max_sessions=2, session_timeout_s=0.3, reap_every_s=0.1) as address:
        env = RemoteEnv(address)
        env.reset(seed=0)
        with httpx.Client(base_url=address) as http:
            http.post("/reset", json={})
            full = http.post("/reset", json={})
            assert full.status_code == 503 and "--max-sessions" in full.json()["detail"]
            time.sleep(0.8)
            assert http.get("/health").json()["active_sessions"] == 0
        # The client's session was reaped: a reset opens a new one, a step says what happened.
        with pytest.raises(RemoteEnvError, match="404"):
            env.step("look")
        observation, _ = env.reset(seed=0)
        assert observation == gym.make(HOUSEHOLD).reset(seed=0)[0]
        env.close()


SERVE = "import sys; from rounds.cli import main; sys.argv[0] = 'rounds'; main()"


@pytest.mark.slow
def test_a_server_killed_mid_episode_is_a_clear_error_not_a_hang() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", HOUSEHOLD, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        env = None
        deadline = time.monotonic() + 60
        while env is None:
            try:
                env = RemoteEnv(f"http://127.0.0.1:{port}", timeout_s=5, retries=0)
            except RemoteEnvError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "rounds serve did not start"
                time.sleep(0.2)
        env.reset(seed=0)
        env.step("look")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        started = time.monotonic()
        with pytest.raises(RemoteEnvError, match="did not answer POST /step"):
            env.step("look")
        assert time.monotonic() - started < 5
        env.close()  # closing after the server died does not raise
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_rounds_import_stays_free_of_server_libraries() -> None:
    code = "import sys, rounds; print(sorted(m for m in ('fastapi', 'uvicorn', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert rounds is not None


def test_remote_env_passes_gymnasiums_env_checker(url: str) -> None:
    from gymnasium.utils.env_checker import check_env

    env = RemoteEnv(url)
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_rounds_serve_says_what_to_do_with_a_bad_env() -> None:
    from typer.testing import CliRunner

    from rounds.cli import app

    result = CliRunner().invoke(app, ["serve", "rounds/Nope-v0"])
    assert result.exit_code != 0 and "rounds list" in result.output
    result = CliRunner().invoke(app, ["serve", HOUSEHOLD, "-k", "bogus=1"])
    assert result.exit_code != 0 and "has no option 'bogus'" in result.output


def test_idempotent_calls_are_retried_until_the_server_answers() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    made: list[Any] = []
    client = threading.Thread(
        target=lambda: made.append(
            RemoteEnv(f"http://127.0.0.1:{port}", retries=8, retry_backoff_s=0.1)
        )
    )
    client.start()  # its GET /schema fails (nothing listens yet) and is retried with backoff
    time.sleep(0.3)
    with served(port=port) as url:
        client.join(timeout=30)
        assert made, "the client gave up before the server came up"
        env = made[0]
        assert env.reset(seed=0) == gym.make(HOUSEHOLD).reset(seed=0)
        env.close()
    with pytest.raises(RemoteEnvError, match="did not answer GET /schema"):
        RemoteEnv(url, retries=1, retry_backoff_s=0.01)  # the server is gone: a clear error
