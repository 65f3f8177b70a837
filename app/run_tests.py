#!/usr/bin/env python3
"""Run the sample app's tests against a real, throwaway Redis and RabbitMQ, then ``check --deploy``.

Standard library only, runnable from any directory as ``python app/run_tests.py [--python X] [pytest args]``:

1. creates ``<repo>/.cache/app-venv`` with the ``python3`` on PATH (or ``--python``) and installs
   requirements/test.txt with ``--require-hashes``, again only when the file or the interpreter
   changed (stamp file in the venv);
2. starts ``redis-server`` on a free 127.0.0.1 port (apt-installs Debian's package when the
   binary is missing and we are root) with the production ACL: the app's user may touch only
   ``~cache:* ~session:* ~celery:* ~app:*`` and the channels ``&celery:*``;
3. starts a private RabbitMQ node (Debian's ``rabbitmq-server``, apt-installed the same way, its
   own service neither started nor enabled): its own node name, Erlang cookie, epmd and
   directories in a temporary directory, every port free and on loopback, and the production
   role's objects in vhost ``app``: a user with a random password, the policies
   (``quorum-defaults``, ``dead-letter-queue``, ``liveness``) and the dead-letter exchange ``dlx``
   bound to the quorum queue ``dead-letters``;
4. runs pytest (REDIS_URL and CELERY_BROKER_URL = the app's users; SQLite for the database),
   ``makemigrations --check`` (no model change without its migration), and ``manage.py check
   --deploy --fail-level WARNING`` with production settings (PostgreSQL named, not reached) and
   strong dummy secrets;
5. stops RabbitMQ and Redis (also on SIGTERM or a failure) and exits non-zero if any step failed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

APP_DIR = Path(__file__).resolve().parent
ROOT = APP_DIR.parent
REQUIREMENTS = APP_DIR / "requirements" / "test.txt"
PYTEST_TIMEOUT_SECONDS = 1200
# How long an interrupted pytest may take to tear its fixtures down (a worker's warm shutdown).
STEP_INTERRUPT_GRACE_SECONDS = 40
REDIS_START_TIMEOUT_SECONDS = 10.0
REDIS_APP_USER = "app"
REDIS_APP_PASSWORD = "testpass"  # noqa: S105 - a throwaway server on loopback, gone after the run
REDIS_ADMIN_USER = "admin"
# The production ACL of the app's user, verbatim: the suite proves the app lives within it.
REDIS_APP_ACL = "~cache:* ~session:* ~celery:* ~app:* &celery:* +@all -@dangerous"

# Debian's own scripts: /usr/sbin/rabbitmq-server and rabbitmqctl are wrappers that `su` to the
# rabbitmq user and its /var/lib/rabbitmq, which a private node must not touch.
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
RABBITMQ_START_TIMEOUT_SECONDS = 120
RABBITMQ_STOP_TIMEOUT_SECONDS = 30
RABBITMQ_VHOST = "app"
RABBITMQ_APP_USER = "app"
# What roles/rabbitmq declares in production (defaults/main.yml, tasks/access.yml). Debian 12's
# RabbitMQ is 3.10: policies apply to "queues" (quorum_queues came in 3.12), and the vhost's
# default queue type is the vhost's metadata (rabbitmq.conf's default_queue_type is unknown to 3.10).
RABBITMQ_DLX_EXCHANGE = "dlx"
RABBITMQ_DLX_QUEUE = "dead-letters"
RABBITMQ_POLICIES = [
    {
        "name": "quorum-defaults",
        "pattern": f"^(?!{RABBITMQ_DLX_QUEUE}$).*",
        "apply-to": "queues",
        "priority": 0,
        "definition": {"delivery-limit": 10, "dead-letter-exchange": RABBITMQ_DLX_EXCHANGE},
    },
    {
        "name": "dead-letter-queue",
        "pattern": f"^{RABBITMQ_DLX_QUEUE}$",
        "apply-to": "queues",
        "priority": 10,
        "definition": {"max-length": 100000, "overflow": "drop-head"},
    },
    {
        # Heartbeats that nobody consumed are worthless: keep the newest, drop the rest, and do
        # not dead-letter them (no dead-letter-exchange: this policy wins over quorum-defaults).
        "name": "liveness",
        "pattern": "^heartbeat$",
        "apply-to": "queues",
        "priority": 10,
        "definition": {"max-length": 1, "overflow": "drop-head"},
    },
]
# Erlang distribution (the node's and its CLI tools') on loopback only; epmd gets -address.
ERLANG_LOOPBACK_ARGS = "-kernel inet_dist_use_interface {127,0,0,1}"


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float


def say(message: str) -> None:
    sys.stdout.write(f"[app-tests] {message}\n")
    sys.stdout.flush()


def fail(message: str) -> NoReturn:
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


@contextmanager
def package_services_not_started() -> Iterator[None]:
    """Keep apt from starting the services it installs, as a container's policy-rc.d does.

    Debian's maintainer scripts start a service through invoke-rc.d or deb-systemd-invoke, and
    both ask /usr/sbin/policy-rc.d first: exit code 101 means "forbidden". An existing policy is
    left as it is.
    """
    policy = Path("/usr/sbin/policy-rc.d")
    if policy.exists():
        yield
        return
    policy.write_text("#!/bin/sh\n# app/run_tests.py: no service starts while it installs packages\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


def disable_services(units: list[str]) -> None:
    """Disable (and on a running systemd, stop) units a package enabled: nothing of theirs may listen."""
    if not shutil.which("systemctl"):
        return
    running = Path("/run/systemd/system").is_dir()
    command = ["systemctl", "disable", *(["--now"] if running else []), "--quiet", *units]
    if subprocess.run(command, check=False).returncode != 0:
        say(f"WARNING: '{' '.join(command)}' failed: stop and disable them by hand")


def find_rabbitmq() -> Path:
    """The directory of Debian's rabbitmq-server and rabbitmqctl, apt-installing them when missing."""
    if (RABBITMQ_BIN / "rabbitmq-server").exists():
        return RABBITMQ_BIN
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        fail("rabbitmq-server is missing: install Debian's rabbitmq-server package (or run as root to let me)")
    installs_erlang = shutil.which("epmd") is None
    say("installing Debian's rabbitmq-server (its own service is neither started nor enabled)")
    with package_services_not_started():
        apt_install("rabbitmq-server")
    # Enabled by the packages, so they would start at the next boot: the machine's RabbitMQ and
    # its epmd (port 4369 on every interface) are not what the tests use.
    disable_services(["rabbitmq-server.service", *(["epmd.socket", "epmd.service"] if installs_erlang else [])])
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        fail(f"{RABBITMQ_BIN}/rabbitmq-server is still missing after apt-get install")
    return RABBITMQ_BIN


def rabbitmq_password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password)), 4-byte salt."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def rabbitmq_definitions(password: str) -> dict[str, object]:
    """The vhost, the app's user and the role's policies and dead-lettering, imported at boot."""
    vhost = RABBITMQ_VHOST
    return {
        "vhosts": [{"name": vhost, "metadata": {"default_queue_type": "quorum", "description": "", "tags": []}}],
        "users": [
            {
                "name": RABBITMQ_APP_USER,
                "password_hash": rabbitmq_password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
        ],
        "permissions": [{"user": RABBITMQ_APP_USER, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}],
        "policies": [{"vhost": vhost, **policy} for policy in RABBITMQ_POLICIES],
        "exchanges": [
            {
                "name": RABBITMQ_DLX_EXCHANGE,
                "vhost": vhost,
                "type": "fanout",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
        ],
        "queues": [
            {
                "name": RABBITMQ_DLX_QUEUE,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-type": "quorum"},
            }
        ],
        "bindings": [
            {
                "source": RABBITMQ_DLX_EXCHANGE,
                "vhost": vhost,
                "destination": RABBITMQ_DLX_QUEUE,
                "destination_type": "queue",
                "routing_key": "",
                "arguments": {},
            }
        ],
    }


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                fail(f"{what} is not listening on 127.0.0.1:{port}")
            time.sleep(0.05)


def amqp_answers(port: int) -> bool:
    """Send AMQP 0-9-1's protocol header: a broker answers with a Connection.Start method frame."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            frame = b""
            while len(frame) < 11:
                chunk = sock.recv(64)
                if not chunk:
                    break
                frame += chunk
    except OSError:
        return False
    # frame type 1 (method), then channel (2 bytes) and size (4), then class 10 method 10.
    return frame[:1] == b"\x01" and frame[7:11] == b"\x00\x0a\x00\x0a"


@dataclass
class RabbitMQNode:
    port: int
    password: str
    # What rabbitmqctl needs to reach the node: node name, epmd port, HOME with the cookie.
    cli_env: dict[str, str]
    ctl: Path
    beam_pid: int

    def url(self) -> str:
        return f"amqp://{RABBITMQ_APP_USER}:{self.password}@127.0.0.1:{self.port}/{RABBITMQ_VHOST}"


def write_rabbitmq_files(workdir: Path, amqp_port: int, password: str) -> None:
    """The node's cookie, configuration, definitions and plugin list, readable by us only."""
    # The Erlang cookie the node and the CLI tools read from $HOME (RABBITMQ_ERLANG_COOKIE is deprecated).
    cookie = workdir / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(20))
    cookie.chmod(0o400)
    definitions = workdir / "definitions.json"
    definitions.write_text(json.dumps(rabbitmq_definitions(password), indent=2))
    definitions.chmod(0o600)
    (workdir / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{amqp_port}\n"
        # Imported at boot, before `rabbitmqctl wait` returns; a node that imports definitions
        # creates no guest user.
        f"load_definitions = {definitions}\n"
    )
    # No plugin (no management UI): the suite inspects the node with rabbitmqctl.
    (workdir / "enabled_plugins").write_text("[].\n")
    (workdir / "rabbitmq-env.conf").touch()


def rabbitmq_envs(
    workdir: Path, nodename: str, dist_port: int, epmd_port: int
) -> tuple[dict[str, str], dict[str, str]]:
    """The CLI tools' environment, and the node's: every path in ``workdir``, nothing from /etc/rabbitmq."""
    cli_env = {
        "HOME": str(workdir),
        "RABBITMQ_NODENAME": nodename,
        # Never the machine's epmd on 4369: ours, on loopback.
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_CONF_ENV_FILE": str(workdir / "rabbitmq-env.conf"),
        "RABBITMQ_CTL_ERL_ARGS": ERLANG_LOOPBACK_ARGS,
    }
    node_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
        **cli_env,
        "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq.conf"),
        "RABBITMQ_CONFIG_FILES": str(workdir / "conf.d"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(workdir / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(workdir / "log"),
        "RABBITMQ_PID_FILE": str(workdir / "rabbitmq.pid"),
        "RABBITMQ_MOTD_FILE": str(workdir / "motd"),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERLANG_LOOPBACK_ARGS,
    }
    return cli_env, node_env


def stop_process_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the leader of a session we started, then SIGKILL whatever is left of its group."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        say(f"{process.args[0]} ignored SIGTERM for {timeout} s: killing it")
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def check_rabbitmq_node(
    ctl_run: Callable[..., subprocess.CompletedProcess[str]],
    failed: Callable[[str], NoReturn],
    nodename: str,
    port: int,
) -> None:
    """Check that the booted node holds the definitions (a node that cannot import them boots
    without them), then say which RabbitMQ it is."""
    policies = ctl_run("list_policies", "-p", RABBITMQ_VHOST, "--formatter", "json", timeout=60)
    found = sorted(policy["name"] for policy in json.loads(policies.stdout or "[]")) if policies.returncode == 0 else []
    wanted = sorted(policy["name"] for policy in RABBITMQ_POLICIES)
    if found != wanted:
        failed(f"RabbitMQ did not import its definitions: policies {found} in vhost {RABBITMQ_VHOST}, not {wanted}")
    status = ctl_run("status", "--formatter", "json", timeout=60)
    if status.returncode != 0:
        failed(f"rabbitmqctl status failed: {status.stderr}")
    facts = json.loads(status.stdout)
    say(
        f"RabbitMQ {facts['rabbitmq_version']} ({facts['erlang_version'].split(' [')[0]}), node {nodename},"
        f" AMQP on 127.0.0.1:{port}, vhost {RABBITMQ_VHOST}, user {RABBITMQ_APP_USER}, policies {', '.join(wanted)}"
    )


@contextmanager
def rabbitmq_node() -> Iterator[RabbitMQNode]:
    ctl = find_rabbitmq() / "rabbitmqctl"
    # mkdtemp: mode 0700, so the cookie, the config and the definitions are ours alone.
    workdir = Path(tempfile.mkdtemp(prefix="app-tests-rabbitmq-"))
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(free_port())
    amqp_port, dist_port, epmd_port = ports
    password = secrets.token_urlsafe(24)
    write_rabbitmq_files(workdir, amqp_port, password)
    nodename = f"app-tests-{os.getpid()}@localhost"
    cli_env, node_env = rabbitmq_envs(workdir, nodename, dist_port, epmd_port)
    log_path = workdir / "rabbitmq-server.out"
    log = log_path.open("w")
    processes: list[subprocess.Popen[bytes]] = []

    def failed(message: str) -> NoReturn:
        log.flush()
        node_log = workdir / "log" / f"{nodename}.log"
        fail("\n".join([message, *(p.read_text(errors="replace")[-3000:] for p in (log_path, node_log) if p.exists())]))

    def ctl_run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [str(ctl), *args], env=node_env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            failed(f"rabbitmqctl {args[0]} did not return within {timeout} s")

    def start(command: list[str]) -> subprocess.Popen[bytes]:
        # A session of its own: a Ctrl-C in the terminal reaches us, and we stop it in order.
        process = subprocess.Popen(
            command, cwd=workdir, env=node_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        processes.append(process)
        return process

    try:
        # Our own epmd, started first so that the node does not daemonize one that outlives us.
        epmd = start(
            [shutil.which("epmd") or "/usr/lib/erlang/bin/epmd", "-port", str(epmd_port), "-address", "127.0.0.1"]
        )
        wait_for_port(epmd_port, epmd, "epmd", 10.0)
        server = start([str(ctl.parent / "rabbitmq-server")])
        # The node writes its pid file early in its boot; one that dies before (a bad setting)
        # must fail the run now, not when `rabbitmqctl wait` gives up.
        pid_file = workdir / "rabbitmq.pid"
        deadline = time.monotonic() + RABBITMQ_START_TIMEOUT_SECONDS
        while not (pid_file.exists() and pid_file.read_text().strip()):
            if server.poll() is not None or time.monotonic() > deadline:
                failed("RabbitMQ exited before it wrote its pid file")
            time.sleep(0.1)
        beam_pid = int(pid_file.read_text())
        # `wait` returns once that process's node has booted: definitions imported, listeners open.
        waited = ctl_run(
            "wait",
            "--pid",
            str(beam_pid),
            "--timeout",
            str(RABBITMQ_START_TIMEOUT_SECONDS),
            timeout=RABBITMQ_START_TIMEOUT_SECONDS + 10,
        )
        if waited.returncode != 0 or server.poll() is not None:
            failed(f"RabbitMQ did not start: {waited.stdout}{waited.stderr}")
        if not amqp_answers(amqp_port):
            failed(f"RabbitMQ does not answer AMQP on 127.0.0.1:{amqp_port}")
        check_rabbitmq_node(ctl_run, failed, nodename, amqp_port)
        yield RabbitMQNode(amqp_port, password, cli_env, ctl, beam_pid)
    finally:
        # The node first (its CLI tools and the node itself need epmd until it is down), then epmd.
        for process in reversed(processes):
            # A test that paused the node (SIGSTOP) and died before resuming it must not hang the stop.
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGCONT)
            stop_process_group(process, RABBITMQ_STOP_TIMEOUT_SECONDS)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def base_env() -> dict[str, str]:
    """The caller's environment minus anything that could point the app at real services."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "REDIS_", "DATABASE_", "HEALTH_", "APP_", "RABBITMQ_", "ERL_"))
    }
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_step(name: str, command: list[str], env: dict[str, str], timeout: int | None = None) -> Step:
    """Run ``command`` in a session of its own, and end that session's processes when it returns.

    The broker tests start Celery workers: an aborted run (a timeout, SIGTERM, Ctrl-C) or a test
    that failed to stop its worker must not leave one behind, retrying a broker that is gone.
    An abort interrupts pytest first (SIGINT: its fixtures' teardown runs), then kills what is left.
    """
    say(f"{name}: {' '.join(command)}")
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=APP_DIR, env=env, start_new_session=True)
    code = 1
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        say(f"{name}: timed out after {timeout} s")
    finally:
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
            # A second Ctrl-C (or a SIGTERM) while it tears down kills it at once.
            with suppress(subprocess.TimeoutExpired, KeyboardInterrupt, SystemExit):
                process.wait(timeout=STEP_INTERRUPT_GRACE_SECONDS)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
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
    # SIGTERM (a CI timeout) must still stop our redis-server and RabbitMQ: turn it into an exception.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.monotonic()
    venv = ROOT / ".cache" / ("app-venv" if options.python == "python3" else f"app-venv-{Path(python).name}")
    venv_python = ensure_venv(python, venv)
    steps: list[Step] = []
    with redis_server() as server, rabbitmq_node() as rabbitmq:
        env = {
            **base_env(),
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "REDIS_URL": server.url(REDIS_APP_USER, REDIS_APP_PASSWORD),
            "REDIS_ADMIN_URL": server.url(REDIS_ADMIN_USER, server.admin_password),
            "CELERY_BROKER_URL": rabbitmq.url(),
            # The suite's handle on the node itself (tests/conftest.py: rabbitmqctl, pausing it):
            # RABBITMQ_NODENAME and ERL_EPMD_PORT are read by rabbitmqctl; HOME holds the cookie.
            **{key: value for key, value in rabbitmq.cli_env.items() if key != "HOME"},
            "RABBITMQCTL": str(rabbitmq.ctl),
            "RABBITMQCTL_HOME": rabbitmq.cli_env["HOME"],
            "RABBITMQ_BEAM_PID": str(rabbitmq.beam_pid),
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
