"""A `rounds` env over HTTP and WebSocket in the OpenEnv protocol (FastAPI).

One env per session, many sessions per server: ``POST /reset`` opens a session
(or resets the one it names), ``POST /step`` acts in it, ``GET /state`` reads it,
``POST /close`` ends it, and a session idle longer than ``session_timeout_s`` is
reaped. ``/ws`` is OpenEnv's WebSocket session: one env for the connection's life.
Env calls run in a thread pool, so a slow env never blocks the event loop, and each
session's calls run one at a time. An env that raises answers a 500 with the
reason; the server keeps serving every other session.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gymnasium as gym
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from gymnasium.error import ResetNeeded
from pydantic import ValidationError

from rounds.distributed.proxy import describe_env
from rounds.records import jsonable
from rounds.registration import make
from rounds.server.protocol import (
    CloseRequest,
    EnvResponse,
    HealthResponse,
    ResetRequest,
    SchemaResponse,
    SessionState,
    StepRequest,
    TextAction,
    TextObservation,
    schema_response,
)
from rounds.text_env import TextEnv

T = TypeVar("T")


class SessionError(Exception):
    """A request the server refuses: the HTTP status and what to do instead."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Session:
    """One client's env and where its episode stands."""

    id: str
    env: gym.Env[str, str]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_active: float = field(default_factory=time.monotonic)
    episode_id: str | None = None
    task_id: str | None = None
    step_count: int = 0
    done: bool = False

    def state(self) -> SessionState:
        return SessionState(
            episode_id=self.episode_id,
            step_count=self.step_count,
            session_id=self.id,
            task_id=self.task_id,
            done=self.done,
        )


class EnvServer:
    """The sessions of one served env id.

    Args:
        env_id: a registered env id.
        env_kwargs: keyword arguments every session's env is made with.
        max_sessions: sessions open at once; a reset past it answers 503.
        session_timeout_s: a session idle this long is closed (None: never).
        env_threads: threads env calls run in.
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        *,
        max_sessions: int = 256,
        session_timeout_s: float | None = 600.0,
        env_threads: int = 32,
    ) -> None:
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.max_sessions = max_sessions
        self.session_timeout_s = session_timeout_s
        self.sessions: dict[str, Session] = {}
        self.reaped = 0
        self._opening = 0
        self._executor = cf.ThreadPoolExecutor(env_threads, thread_name_prefix="rounds-serve")
        probe = self._make()
        self.description = describe_env(env_id, _text_env(probe))
        probe.close()

    def _make(self) -> gym.Env[str, str]:
        return make(self.env_id, **self.env_kwargs)

    async def _call(self, fn: Callable[[], T], timeout_s: float | None = None) -> T:
        future = asyncio.get_running_loop().run_in_executor(self._executor, fn)
        return await asyncio.wait_for(future, timeout_s)

    # ------------------------------------------------------------ sessions

    async def open_session(self) -> Session:
        """A new session with its own env; 503 when the server is full."""
        if len(self.sessions) + self._opening >= self.max_sessions:
            raise SessionError(
                503,
                "CAPACITY_REACHED",
                f"the server holds its limit of {self.max_sessions} sessions; close one "
                "(POST /close) or start the server with a larger --max-sessions",
            )
        self._opening += 1
        try:
            env = await self._call(self._make)
        except Exception as err:
            raise SessionError(
                500, "FACTORY_ERROR", f"cannot make {self.env_id}: {_describe(err)}"
            ) from err
        finally:
            self._opening -= 1
        session = Session(id=uuid.uuid4().hex, env=env)
        self.sessions[session.id] = session
        return session

    def session(self, session_id: str | None) -> Session:
        if session_id is None:
            raise SessionError(
                400,
                "SESSION_ERROR",
                "no session_id: POST /reset first and pass the session_id it returns "
                "(metadata.session_id) with every step",
            )
        session = self.sessions.get(session_id)
        if session is None:
            raise SessionError(
                404,
                "SESSION_ERROR",
                f"unknown session_id {session_id!r}: it was closed, reaped after "
                f"{self.session_timeout_s}s idle, or never opened; POST /reset to open one",
            )
        return session

    async def close_session(self, session_id: str) -> bool:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        async with session.lock:
            with contextlib.suppress(Exception):
                await self._call(session.env.close, 30.0)
        return True

    async def reap_idle(self) -> int:
        """Close every session idle past the timeout; returns how many."""
        if self.session_timeout_s is None:
            return 0
        now = time.monotonic()
        stale = [
            s.id
            for s in list(self.sessions.values())
            if now - s.last_active > self.session_timeout_s and not s.lock.locked()
        ]
        closed = 0
        for session_id in stale:
            closed += await self.close_session(session_id)
        self.reaped += closed
        return closed

    async def close_all(self) -> None:
        for session_id in list(self.sessions):
            await self.close_session(session_id)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ env calls

    async def reset(self, request: ResetRequest, session: Session | None = None) -> EnvResponse:
        """Reset ``session`` (or the one the request names, or a new one)."""
        fresh = session is None and request.session_id is None
        if session is None:
            session = (
                self.session(request.session_id)
                if request.session_id is not None
                else await self.open_session()
            )
        options = {"task_id": request.task_id} if request.task_id is not None else None
        async with session.lock:
            session.last_active = time.monotonic()
            env = session.env
            try:
                observation, info = await self._call(
                    lambda: env.reset(seed=request.seed, options=options)
                )
            except Exception as err:
                if fresh:  # a session whose first reset failed is no use to anyone
                    self.sessions.pop(session.id, None)
                    self._executor.submit(env.close)
                raise SessionError(
                    400 if isinstance(err, KeyError | ValueError) else 500,
                    "EXECUTION_ERROR",
                    f"reset failed: {_describe(err)}",
                ) from err
            session.episode_id = request.episode_id or uuid.uuid4().hex
            session.task_id = str(info["task_id"]) if "task_id" in info else request.task_id
            session.step_count = 0
            session.done = False
            session.last_active = time.monotonic()
        return EnvResponse(
            observation=TextObservation(text=observation, info=jsonable(info)),
            metadata=_metadata(session),
        )

    async def step(
        self, action: TextAction, session: Session, timeout_s: float | None = None
    ) -> EnvResponse:
        """One turn in ``session``."""
        async with session.lock:
            session.last_active = time.monotonic()
            env = session.env
            try:
                observation, reward, terminated, truncated, info = await self._call(
                    lambda: env.step(action.text), timeout_s
                )
            except TimeoutError as err:
                self.sessions.pop(session.id, None)
                self._executor.submit(env.close)  # runs when a thread is free; never awaited
                raise SessionError(
                    504,
                    "EXECUTION_ERROR",
                    f"the env step took longer than {timeout_s}s; the session is closed, "
                    "POST /reset to open a new one",
                ) from err
            except ResetNeeded as err:
                raise SessionError(409, "SESSION_ERROR", "POST /reset before /step") from err
            except Exception as err:
                raise SessionError(500, "EXECUTION_ERROR", f"env error: {_describe(err)}") from err
            session.step_count += 1
            session.done = bool(terminated or truncated)
            session.last_active = time.monotonic()
        return EnvResponse(
            observation=TextObservation(
                text=observation,
                info=jsonable(info),
                terminated=bool(terminated),
                truncated=bool(truncated),
            ),
            reward=float(reward),
            done=session.done,
            metadata=_metadata(session),
        )


def _text_env(env: gym.Env[Any, Any]) -> TextEnv:
    base = env.unwrapped
    if not isinstance(base, TextEnv):
        raise TypeError(f"{type(base).__name__} is not a rounds TextEnv; only those can be served")
    return base


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _metadata(session: Session) -> dict[str, Any]:
    return {
        "session_id": session.id,
        "episode_id": session.episode_id,
        "step_count": session.step_count,
    }


def _error(err: SessionError) -> JSONResponse:
    return JSONResponse({"detail": err.message, "code": err.code}, status_code=err.status)


def create_app(server: EnvServer, *, reap_every_s: float | None = None) -> FastAPI:
    """The FastAPI app serving ``server``'s env: HTTP routes and the ``/ws`` session."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = server.session_timeout_s
        every = reap_every_s or (max(0.5, timeout / 4) if timeout is not None else None)

        async def reap() -> None:
            assert every is not None
            while True:
                await asyncio.sleep(every)
                await server.reap_idle()

        task = asyncio.create_task(reap()) if every is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            await server.close_all()

    app = FastAPI(
        title=f"rounds env server: {server.env_id}",
        description="A rounds env in the OpenEnv protocol.",
        lifespan=lifespan,
    )

    @app.exception_handler(SessionError)
    async def session_error(request: Request, err: SessionError) -> JSONResponse:
        return _error(err)

    @app.post("/reset", response_model=EnvResponse)
    async def reset(request: ResetRequest | None = None) -> EnvResponse:
        """Open a session (or reset the one named) and return the first observation."""
        return await server.reset(request or ResetRequest())

    @app.post("/step", response_model=EnvResponse)
    async def step(request: StepRequest) -> EnvResponse:
        """Act in a session with the agent's text."""
        session = server.session(request.session_id)
        return await server.step(request.action, session, request.timeout_s)

    @app.get("/state", response_model=SessionState)
    async def state(session_id: str | None = None) -> SessionState:
        """Where a session's episode stands."""
        return server.session(session_id).state()

    @app.post("/close")
    async def close(request: CloseRequest) -> dict[str, Any]:
        """End a session and free its env."""
        closed = await server.close_session(request.session_id)
        if not closed:
            server.session(request.session_id)  # raises the 404 that says what to do
        return {"session_id": request.session_id, "closed": closed}

    @app.get("/schema", response_model=SchemaResponse)
    async def schema() -> SchemaResponse:
        """The action, observation and state schemas, and the env's description."""
        return schema_response(server.description)

    @app.get("/health", response_model=HealthResponse)
    async def health() -> HealthResponse:
        return HealthResponse(
            env_id=server.env_id,
            active_sessions=len(server.sessions),
            max_sessions=server.max_sessions,
        )

    @app.websocket("/ws")
    async def websocket_session(websocket: WebSocket) -> None:
        """OpenEnv's WebSocket session: one env for the connection's life."""
        await websocket.accept()
        session: Session | None = None
        try:
            while True:
                raw = await websocket.receive_text()
                reply, session, done = await _ws_message(server, raw, session)
                await websocket.send_text(json.dumps(reply))
                if done:
                    break
        except WebSocketDisconnect:
            pass
        finally:
            if session is not None:
                await server.close_session(session.id)
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close()

    return app


async def _ws_message(
    server: EnvServer, raw: str, session: Session | None
) -> tuple[dict[str, Any], Session | None, bool]:
    """Answer one WebSocket message; returns the reply, the (maybe new) session and whether the
    client closed it."""

    def error(code: str, message: str) -> dict[str, Any]:
        return {"type": "error", "data": {"message": message, "code": code}}

    try:
        message = json.loads(raw)
    except json.JSONDecodeError as err:
        return error("INVALID_JSON", f"Invalid JSON: {err}"), session, False
    if not isinstance(message, dict):
        return error("INVALID_JSON", "a message is a JSON object with a 'type'"), session, False
    kind = message.get("type")
    data = message.get("data", {})
    try:
        if kind == "reset":
            request = ResetRequest.model_validate(data)
            if session is None:
                session = await server.open_session()
            response = await server.reset(request, session)
            return {"type": "observation", "data": response.model_dump()}, session, False
        if kind == "step":
            action = TextAction.model_validate(data)
            if session is None:
                return error("SESSION_ERROR", "send a reset message first"), session, False
            response = await server.step(action, session)
            return {"type": "observation", "data": response.model_dump()}, session, False
        if kind == "state":
            if session is None:
                return error("SESSION_ERROR", "send a reset message first"), session, False
            return {"type": "state", "data": session.state().model_dump()}, session, False
        if kind == "close":
            return {"type": "closed", "data": {}}, session, True
    except ValidationError as err:
        return error("VALIDATION_ERROR", str(err)), session, False
    except SessionError as err:
        return error(err.code, err.message), session, False
    return (
        error("UNKNOWN_TYPE", f"unknown message type {kind!r}; send reset, step, state or close"),
        session,
        False,
    )
