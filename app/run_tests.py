#!/usr/bin/env python3
"""Run the sample app's tests against a real, throwaway Redis, then ``check --deploy``.

Standard library only, runnable from any directory as ``python app/run_tests.py [--python X] [pytest args]``:

1. creates ``<repo>/.cache/app-venv`` with the ``python3`` on PATH (or ``--python``) and installs
   requirements/test.txt with ``--require-hashes``, again only when the file or the interpreter
   changed (stamp file in the venv);
2. starts ``redis-server`` on a free 127.0.0.1 port (apt-installs Debian's package when the
   binary is missing and we are root) with the production ACL: the app's user may touch only
   ``~cache:* ~session:* ~celery:* ~app:*`` and the channels ``&celery:*``;
3. runs pytest (REDIS_URL = that user; SQLite for the database), ``makemigrations --check``
   (no model change without its migration), and ``manage.py check --deploy --fail-level
   WARNING`` with production settings (PostgreSQL named, not reached) and strong dummy secrets;
4. stops Redis and exits non-zero if any step failed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
ROOT = APP_DIR.parent
REQUIREMENTS = APP_DIR / "requirements" / "test.txt"
PYTEST_TIMEOUT_SECONDS = 1200
REDIS_START_TIMEOUT_SECONDS = 10.0
REDIS_APP_USER = "app"
REDIS_APP_PASSWORD = "testpass"  # noqa: S105 - a throwaway server on loopback, gone after the run
REDIS_ADMIN_USER = "admin"
# The production ACL of the app's user, verbatim: the suite proves the app lives within it.
REDIS_APP_ACL = "~cache:* ~session:* ~celery:* ~app:* &celery:* +@all -@dangerous"


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float


def say(message: str) -> None:
    sys.stdout.write(f"[app-tests] {message}\n")
    sys.stdout.flush()


def fail(message: str) -> None:
    say(f"ERROR: {message}")
    sys.exit(2)


def python_identity(python: str) -> str:
    """Version and path of ``python``: a new interpreter means a new venv."""
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0], sys.base_prefix)"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def ensure_venv(python: str, venv: Path) -> Path:
    """Return the venv's python, (re)building the venv when test.txt or the interpreter changed."""
    bin_python = venv / "bin" / "python"
    stamp = venv / ".app-requirements.sha256"
    wanted = f"{hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()} {python_identity(python)}"
    if bin_python.exists() and stamp.exists() and stamp.read_text() == wanted:
        say(f"{venv.relative_to(ROOT)} is up to date")
        return bin_python
    # Rebuilding from scratch keeps the venv exactly what test.txt pins: no leftovers.
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    say(f"creating {venv.relative_to(ROOT)} with {python}")
    if subprocess.run([python, "-m", "venv", str(venv)], check=False).returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            fail("'python3 -m venv' failed: install python3-venv and retry")
        say("python3 -m venv failed: installing Debian's python3-venv")
        apt_install("python3-venv")
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    say("installing requirements/test.txt (--require-hashes)")
    subprocess.run(
        [
            str(bin_python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "-r",
            str(REQUIREMENTS),
        ],
        check=True,
    )
    stamp.write_text(wanted)
    return bin_python


def apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if subprocess.run(command, env=env, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(command, env=env, check=True)


def find_redis_server() -> str:
    found = shutil.which("redis-server") or next(
        (str(p) for p in (Path("/usr/bin/redis-server"), Path("/usr/sbin/redis-server")) if p.exists()), None
    )
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        fail("redis-server is missing: install Debian's redis-server package (or run as root to let me)")
    say("installing Debian's redis-server (its own service is not used)")
    apt_install("redis-server")
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        fail("redis-server is still missing after apt-get install")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_answers(port: int, user: str, password: str) -> bool:
    """AUTH then PING over a raw socket (inline commands): True once the server says PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(f"AUTH {user} {password}\r\nPING\r\n".encode())
            reply = b""
            while b"PONG" not in reply and b"-" not in reply:
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
            return b"+PONG" in reply
    except OSError:
        return False


@dataclass
class RedisServer:
    port: int
    admin_password: str

    def url(self, user: str, password: str) -> str:
        return f"redis://{user}:{password}@127.0.0.1:{self.port}"


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    binary = find_redis_server()
    workdir = Path(tempfile.mkdtemp(prefix="app-tests-redis-"))
    admin_password = secrets.token_hex(16)
    acl_file = workdir / "users.acl"
    acl_file.write_text(
        "user default off\n"
        f"user {REDIS_APP_USER} on >{REDIS_APP_PASSWORD} {REDIS_APP_ACL}\n"
        # The suite's own superuser: it only inspects (SCAN, PUBSUB) what the app wrote.
        f"user {REDIS_ADMIN_USER} on >{admin_password} ~* &* +@all\n"
    )
    acl_file.chmod(0o600)
    port = free_port()
    log = (workdir / "redis.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--aclfile",
            str(acl_file),
            "--daemonize",
            "no",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + REDIS_START_TIMEOUT_SECONDS
        while not redis_answers(port, REDIS_ADMIN_USER, admin_password):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                fail(f"redis-server did not start:\n{(workdir / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.1)
        say(f"redis-server {binary} listening on 127.0.0.1:{port} (ACL user {REDIS_APP_USER}: {REDIS_APP_ACL})")
        yield RedisServer(port, admin_password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def base_env() -> dict[str, str]:
    """The caller's environment minus anything that could point the app at real services."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "REDIS_", "DATABASE_", "HEALTH_", "APP_"))
    }
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_step(name: str, command: list[str], env: dict[str, str], timeout: int | None = None) -> Step:
    say(f"{name}: {' '.join(command)}")
    started = time.monotonic()
    try:
        code = subprocess.run(command, cwd=APP_DIR, env=env, check=False, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        say(f"{name}: timed out after {timeout} s")
        code = 1
    return Step(name, code == 0, time.monotonic() - started)


def deploy_check_env(workdir: Path) -> dict[str, str]:
    """Production settings with only the variables the deploy role sets, all strong dummies."""
    return {
        **base_env(),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "app.example.test",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://app.example.test",
        "APP_API_TOKEN": secrets.token_urlsafe(32),
        "CELERY_BROKER_URL": "amqp://app:pw@rabbit1:5672/app;amqp://app:pw@rabbit2:5672/app",
        "REDIS_URL": "redis://app:pw@redis.example.test:6379",
        # check --deploy does not connect: the URL only has to name PostgreSQL, as production must.
        "DATABASE_URL": "postgresql://app:pw@db1.example.test:5432/app?sslmode=verify-full",
        "DJANGO_STATIC_ROOT": str(workdir / "static"),
        "DJANGO_MEDIA_ROOT": str(workdir / "media"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="python3", help="interpreter for the venv (default: python3 on PATH)")
    options, pytest_args = parser.parse_known_args()
    python = shutil.which(options.python)
    if python is None:
        fail(f"{options.python} not found on PATH")
    # SIGTERM (a CI timeout) must still stop our redis-server: turn it into an exception.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.monotonic()
    venv = ROOT / ".cache" / ("app-venv" if options.python == "python3" else f"app-venv-{Path(python).name}")
    venv_python = ensure_venv(python, venv)
    steps: list[Step] = []
    with redis_server() as server:
        env = {
            **base_env(),
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "REDIS_URL": server.url(REDIS_APP_USER, REDIS_APP_PASSWORD),
            "REDIS_ADMIN_URL": server.url(REDIS_ADMIN_USER, server.admin_password),
        }
        steps.append(run_step("pytest", [str(venv_python), "-m", "pytest", *pytest_args], env, PYTEST_TIMEOUT_SECONDS))
        # A model change without its migration would deploy a schema the code does not match.
        steps.append(
            run_step(
                "makemigrations --check",
                [str(venv_python), "manage.py", "makemigrations", "--check", "--dry-run"],
                env,
                timeout=120,
            )
        )
    with tempfile.TemporaryDirectory(prefix="app-tests-deploy-") as workdir:
        steps.append(
            run_step(
                "check --deploy",
                [str(venv_python), "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                deploy_check_env(Path(workdir)),
                timeout=120,
            )
        )

    say("summary:")
    for step in steps:
        say(f"  {'ok  ' if step.ok else 'FAIL'} {step.name} ({step.seconds:.1f} s)")
    ok = all(step.ok for step in steps)
    say(f"{'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
