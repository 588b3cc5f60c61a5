"""``rounds serve``: one env over HTTP in the OpenEnv protocol."""

from __future__ import annotations

from typing import Annotated

import typer

from rounds.cli.app import EnvArgs, Variant, app, console, env_kwargs_for, fail


@app.command("serve")
def serve_command(
    env_id: Annotated[str, typer.Argument(help="A registered env id, e.g. rounds/DiagGym-v0.")],
    env_args: EnvArgs = None,
    variant: Variant = None,
    host: Annotated[
        str, typer.Option(help="Address to bind; 0.0.0.0 serves other machines too.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    max_sessions: Annotated[
        int, typer.Option(min=1, help="Sessions (envs) open at once; more answer 503.")
    ] = 256,
    session_timeout: Annotated[
        float, typer.Option(min=0, help="Close a session idle this many seconds (0: never).")
    ] = 600.0,
    threads: Annotated[int, typer.Option(min=1, help="Threads env calls run in.")] = 32,
) -> None:
    """Serve ENV_ID over HTTP and WebSocket (OpenEnv: /reset /step /state /schema /health /ws)."""
    try:
        import uvicorn

        from rounds.server.app import EnvServer, create_app
    except ImportError as err:
        fail(f"rounds serve needs the server extra ({err}); pip install 'rounds[server]'")
    kwargs = env_kwargs_for(env_id, variant, env_args)
    try:
        server = EnvServer(
            env_id,
            kwargs,
            max_sessions=max_sessions,
            session_timeout_s=session_timeout or None,
            env_threads=threads,
        )
    except (TypeError, ValueError, KeyError) as err:
        fail(f"cannot make {env_id} with {kwargs}: {err}")
    console.print(
        f"serving {env_id} on http://{host}:{port} (OpenEnv: POST /reset, POST /step, "
        f"GET /state, GET /schema, GET /health, WS /ws); Ctrl-C stops"
    )
    uvicorn.run(create_app(server), host=host, port=port, log_level="warning")
