"""Access to the running lab: docker exec, the app's shell, ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventory" / "lab"
SECRETS = INVENTORY / ".secrets"
VENV_BIN = ROOT / ".venv" / "bin"
SITE = "https://localhost:8443"
DEPLOY_TIMES = ROOT / ".cache" / "lab" / "deploy-times.json"


def sh(*command: str, stdin: str | None = None, timeout: int = 600, check: bool = True) -> str:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result.stdout


def in_container(container: str, *command: str, stdin: str | None = None, timeout: int = 600) -> str:
    return sh("docker", "exec", "-i", container, *command, stdin=stdin, timeout=timeout)


def app_script(container: str, script: str, timeout: int = 900):
    """Run ``script`` with ``manage.py shell`` on a lab host; its last line is JSON."""
    out = in_container(container, "django-app-manage", "shell", stdin=script, timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


def playbook(*args: str, config: Path | None = None) -> tuple[float, str]:
    """Run ansible-playbook on the lab; return (seconds, output)."""
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", ANSIBLE_FORCE_COLOR="false")
    env["ANSIBLE_CONFIG"] = str(config or ROOT / "ansible.cfg")
    started = time.monotonic()
    result = subprocess.run(
        ["ansible-playbook", "-i", str(INVENTORY), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"ansible-playbook {' '.join(args)} failed:\n{result.stdout[-4000:]}{result.stderr[-2000:]}")
    return seconds, result.stdout


def changed_total(output: str) -> int:
    return sum(int(n) for n in __import__("re").findall(r"changed=(\d+)", output))


def versions() -> dict[str, str]:
    def pkg(container: str, package: str) -> str:
        return in_container(container, "dpkg-query", "-W", "-f=${Version}", package).strip()

    python = in_container(
        "lab-web",
        "/srv/django-app/current/venv/bin/python",
        "-c",
        "import django, celery, kombu, sys; print(django.__version__, celery.__version__, "
        "kombu.__version__, sys.version.split()[0])",
    ).split()
    debian = in_container("lab-web", "sh", "-c", ". /etc/os-release && echo $VERSION_ID $VERSION_CODENAME").split()
    return {
        "Debian": f"{debian[0]} ({debian[1]})",
        "Apache": pkg("lab-web", "apache2"),
        "mod_wsgi": pkg("lab-web", "libapache2-mod-wsgi-py3"),
        "RabbitMQ": pkg("lab-rabbit1", "rabbitmq-server"),
        "Erlang": pkg("lab-rabbit1", "erlang-base"),
        "Redis": pkg("lab-redis", "redis-server"),
        "PostgreSQL": in_container(
            "lab-pg1", "runuser", "-u", "postgres", "--", "psql", "-AtXc", "SHOW server_version"
        ).split()[0],
        "Django": python[0],
        "Celery": python[1],
        "kombu": python[2],
        "Python": python[3],
    }
