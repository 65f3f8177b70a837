#!/usr/bin/env python3
"""Make sure a Docker engine answers on this controller.

Does nothing when one already answers. Otherwise, on a Debian or Ubuntu
controller run as root, installs Debian's ``docker.io`` if ``dockerd`` is
missing, starts the engine (as the ``docker`` service where systemd runs, as
a background ``dockerd`` where it does not) and waits until it answers.
Anywhere else it stops and tells the user what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

WAIT_SECONDS = int(os.environ.get("DOCKER_ENGINE_WAIT", "90"))
DOCKERD_LOG = Path(os.environ.get("DOCKERD_LOG", "/var/log/dockerd-baseline.log"))
DOCKER_CLI = os.environ.get("DOCKER", "docker")


def say(message: str) -> None:
    print(f"[docker-engine] {message}", flush=True)


def stop(message: str) -> None:
    print(f"[docker-engine] ERROR: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def engine_version() -> str | None:
    """Return the server version if an engine answers, else None."""
    if shutil.which(DOCKER_CLI) is None:
        return None
    try:
        result = subprocess.run(
            [DOCKER_CLI, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    version = result.stdout.strip()
    return version if result.returncode == 0 and version else None


def os_release() -> dict[str, str]:
    fields: dict[str, str] = {}
    path = Path("/etc/os-release")
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key] = value.strip().strip('"')
    return fields


def is_debian_family(release: dict[str, str]) -> bool:
    ids = {release.get("ID", "")} | set(release.get("ID_LIKE", "").split())
    return bool(ids & {"debian", "ubuntu"})


def install_docker_io() -> None:
    say("dockerd is not installed: installing Debian's docker.io with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker.io"],
    ):
        if subprocess.run(command, env=env, check=False).returncode != 0:
            stop(f"'{' '.join(command)}' failed; install docker.io by hand and retry")


def systemd_is_pid1() -> bool:
    return Path("/run/systemd/system").is_dir()


def start_engine() -> None:
    if systemd_is_pid1():
        say("starting the docker service with systemctl")
        result = subprocess.run(["systemctl", "enable", "--now", "docker"], check=False)
        if result.returncode != 0:
            stop("'systemctl enable --now docker' failed; see 'journalctl -u docker'")
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        stop("dockerd is not on PATH after installing docker.io")
    say(f"systemd is not running here: starting {dockerd} in the background (log: {DOCKERD_LOG})")
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with DOCKERD_LOG.open("ab") as log:
        # A new session keeps dockerd alive after make (and this script) exit.
        subprocess.Popen(
            [dockerd],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


def wait_for_engine() -> str:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        version = engine_version()
        if version:
            return version
        time.sleep(1)
    tail = ""
    if DOCKERD_LOG.exists():
        tail = "\n".join(DOCKERD_LOG.read_text(errors="replace").splitlines()[-20:])
    stop(f"the Docker engine did not answer within {WAIT_SECONDS} s\n{tail}")
    return ""


def main() -> int:
    version = engine_version()
    if version:
        say(f"a Docker engine already answers (server {version}): nothing to do")
        return 0
    release = os_release()
    if not is_debian_family(release):
        stop(
            f"no Docker engine answers and this is {release.get('PRETTY_NAME', 'not Debian')}: "
            "install and start Docker Engine (https://docs.docker.com/engine/install/), then retry"
        )
    if os.geteuid() != 0:
        stop(
            "no Docker engine answers and this is not root: as root run "
            "'apt-get install docker.io && systemctl enable --now docker', add your user to "
            "the docker group, then retry (or run this as root)"
        )
    if shutil.which("dockerd") is None:
        install_docker_io()
    else:
        say("dockerd is installed but no engine answers")
    if shutil.which(DOCKER_CLI) is None:
        stop("the docker client is missing after installing docker.io")
    start_engine()
    version = wait_for_engine()
    say(f"the Docker engine answers (server {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
