"""Sandbox images without any registry.

The base image is made from Debian packages: ``debootstrap`` of a minimal
Debian with python3, pytest and git, a ``rounds`` user (uid 1000) and an empty
``/work`` owned by it, imported with ``docker import``. It is cached by tag:
building again is a no-op unless forced. Task images layer a repository (and
optional set-up commands) on it with ``docker build`` from a generated
Dockerfile, with no network during the build.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rounds.sandboxes.base import SandboxError, SandboxUnavailable, pack_files
from rounds.sandboxes.docker_backend import DEFAULT_IMAGE, docker_client

if TYPE_CHECKING:
    import docker

#: Debian packages of the base image (``--variant=minbase`` adds the essentials).
BASE_PACKAGES: tuple[str, ...] = ("python3", "python3-pytest", "git")
#: The label every image `rounds` builds carries (``rounds.image=base|task``).
IMAGE_LABEL = "rounds.image"

_USER_LINES = {
    "etc/passwd": "rounds:x:1000:1000:rounds sandbox user:/work:/bin/bash\n",
    "etc/group": "rounds:x:1000:\n",
    "etc/shadow": "rounds:*:19000:0:99999:7:::\n",
}


def image_exists(tag: str, client: docker.DockerClient | None = None) -> bool:
    """Whether the local daemon has an image ``tag``."""
    import docker.errors

    client = client or docker_client()
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_base_image(
    tag: str = DEFAULT_IMAGE,
    *,
    suite: str = "bookworm",
    mirror: str | None = None,
    packages: Sequence[str] = BASE_PACKAGES,
    force: bool = False,
    log: Callable[[str], None] = print,
    client: docker.DockerClient | None = None,
) -> str:
    """Build the base image with debootstrap and ``docker import``; returns the tag.

    Needs root (debootstrap) and about a minute; a no-op when ``tag`` exists and not
    ``force``.

    Raises:
        SandboxUnavailable: no debootstrap, not root, or no Docker daemon.
        SandboxError: debootstrap or the import failed (the message has the log's tail).
    """
    client = client or docker_client()
    if not force and image_exists(tag, client):
        log(f"{tag} exists (cached); pass --force to rebuild it.")
        return tag
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise SandboxUnavailable(
            "Building the base image needs debootstrap: apt-get install debootstrap."
        )
    if os.geteuid() != 0:
        raise SandboxUnavailable("debootstrap needs root; run `sudo rounds sandbox build-image`.")
    with tempfile.TemporaryDirectory(prefix="rounds-image-") as scratch:
        root = Path(scratch) / "root"
        command = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(packages)}",
            suite,
            str(root),
        ]
        if mirror:
            command.append(mirror)
        log(f"debootstrap {suite} with {', '.join(packages)} (about a minute)...")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-2000:]
            raise SandboxError(f"debootstrap failed (exit {done.returncode}):\n{tail}")
        for name, line in _USER_LINES.items():
            with (root / name).open("a") as handle:
                handle.write(line)
        work = root / "work"
        work.mkdir(exist_ok=True)
        os.chown(work, 1000, 1000)
        for cached in (root / "var/cache/apt/archives").glob("*.deb"):
            cached.unlink()
        archive = Path(scratch) / "root.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(archive), "."], check=True)
        log(f"docker import as {tag}...")
        repository, _, version = tag.rpartition(":")
        if not repository or "/" in version:
            repository, version = tag, "latest"
        client.api.import_image_from_file(
            str(archive),
            repository=repository,
            tag=version,
            changes=[
                "USER rounds",
                "WORKDIR /work",
                "ENV LANG=C.UTF-8",
                f"LABEL {IMAGE_LABEL}=base",
                'CMD ["sleep", "infinity"]',
            ],
        )
    if not image_exists(tag, client):
        raise SandboxError(f"docker import did not produce {tag}.")
    log(f"built {tag}")
    return tag


def task_dockerfile(
    base: str = DEFAULT_IMAGE, setup: Sequence[str] = (), workdir: str = "/work"
) -> str:
    """The Dockerfile of a task image: ``base`` with the repository copied into ``workdir``
    (owned by the sandbox user) and ``setup`` commands run as that user."""
    lines = [
        f"FROM {base}",
        "USER root",
        f"COPY --chown=1000:1000 repo/ {workdir}/",
        "USER rounds",
        f"WORKDIR {workdir}",
    ]
    lines += [f"RUN {command}" for command in setup]
    lines.append(f"LABEL {IMAGE_LABEL}=task")
    return "\n".join(lines) + "\n"


def build_task_image(
    tag: str,
    files: Mapping[str, bytes],
    *,
    base: str = DEFAULT_IMAGE,
    setup: Sequence[str] = (),
    workdir: str = "/work",
    force: bool = False,
    client: docker.DockerClient | None = None,
) -> str:
    """Build a task image (``docker build`` of :func:`task_dockerfile`, no network); cached
    by tag unless ``force``. Returns the tag.

    Raises:
        SandboxUnavailable: the base image is missing.
        SandboxError: the build failed (with its log).
    """
    import docker.errors

    client = client or docker_client()
    if not force and image_exists(tag, client):
        return tag
    if not image_exists(base, client):
        raise SandboxUnavailable(
            f"The base image {base!r} is missing: run `rounds sandbox build-image`."
        )
    context = {"Dockerfile": task_dockerfile(base, setup, workdir).encode()}
    context.update({f"repo/{name}": data for name, data in files.items()})
    if not files:
        context["repo/.keep"] = b""
    try:
        client.images.build(
            fileobj=io.BytesIO(pack_files(context, uid=0, gid=0)),
            custom_context=True,
            tag=tag,
            network_mode="none",
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as err:
        log = "".join(str(part.get("stream", part.get("error", ""))) for part in err.build_log)
        raise SandboxError(f"docker build of {tag} failed: {err.msg}\n{log[-2000:]}") from err
    return tag
