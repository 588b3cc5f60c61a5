"""``rounds sandbox``: build the sandbox images, check the backends, remove leftovers.

- ``rounds sandbox build-image``: the base image from Debian packages (debootstrap +
  ``docker import``; cached by tag), or with ``--task DIR`` a task image layered on it.
- ``rounds sandbox status``: which backends can run here, and leftover containers.
- ``rounds sandbox prune``: remove every `rounds`-labelled container and volume (after a crash).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rounds.cli.app import app, console, fail

sandbox_app = typer.Typer(
    name="sandbox",
    help="Sandbox images and clean-up (docker and bubblewrap backends).",
    no_args_is_help=True,
)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("build-image")
def build_image(
    tag: Annotated[str | None, typer.Option(help="Image tag (default: the base image's).")] = None,
    suite: Annotated[str, typer.Option(help="Debian suite for debootstrap.")] = "bookworm",
    mirror: Annotated[
        str | None, typer.Option(help="Debian mirror URL (default: debootstrap's).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when the tag exists.")] = False,
    task: Annotated[
        Path | None,
        typer.Option(
            help="Build a task image instead: this folder's files are copied into /work "
            "of the base image (needs --tag).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    setup: Annotated[
        list[str] | None,
        typer.Option(help="A command to RUN in the task image (repeatable)."),
    ] = None,
) -> None:
    """Build the base image (debootstrap + docker import), or a task image with --task."""
    from rounds.sandboxes import SandboxError
    from rounds.sandboxes.docker_backend import DEFAULT_IMAGE
    from rounds.sandboxes.images import build_base_image, build_task_image

    try:
        if task is None:
            built = build_base_image(
                tag or DEFAULT_IMAGE, suite=suite, mirror=mirror, force=force, log=console.print
            )
        else:
            if tag is None:
                fail("--task needs --tag NAME:VERSION for the task image.")
            files = {
                path.relative_to(task).as_posix(): path.read_bytes()
                for path in sorted(task.rglob("*"))
                if path.is_file() and ".git" not in path.relative_to(task).parts
            }
            built = build_task_image(tag, files, setup=setup or [], force=force)
    except SandboxError as err:
        fail(str(err))
    console.print(f"[green]ready:[/] {built}")


@sandbox_app.command("status")
def status() -> None:
    """Which sandbox backends can run on this machine."""
    from rounds.sandboxes import SandboxUnavailable
    from rounds.sandboxes.docker_backend import DEFAULT_IMAGE, docker_client, labelled_containers
    from rounds.sandboxes.images import image_exists
    from rounds.sandboxes.process_backend import bwrap_path

    try:
        client = docker_client(timeout=10)
    except SandboxUnavailable as err:
        console.print(f"docker: [red]unavailable[/] ({err})")
    else:
        has_image = image_exists(DEFAULT_IMAGE, client)
        console.print(
            f"docker: [green]available[/]; base image {DEFAULT_IMAGE}: "
            + (
                "[green]present[/]"
                if has_image
                else "[yellow]missing[/] (rounds sandbox build-image)"
            )
            + f"; rounds containers: {len(labelled_containers(client))}"
        )
    bwrap = bwrap_path()
    console.print(
        f"process (bubblewrap): [green]available[/] ({bwrap})"
        if bwrap
        else "process (bubblewrap): [red]unavailable[/] (apt-get install bubblewrap)"
    )


@sandbox_app.command("prune")
def prune() -> None:
    """Remove every rounds-labelled container and volume (left behind by a crash)."""
    from rounds.sandboxes import SandboxUnavailable
    from rounds.sandboxes.docker_backend import prune as prune_docker

    try:
        containers, volumes = prune_docker()
    except SandboxUnavailable as err:
        fail(str(err))
    console.print(f"removed {containers} containers and {volumes} volumes")
