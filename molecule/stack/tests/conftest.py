"""The whole stack: the web host runs the checks; the others are reached by name."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import testinfra

CA = "/etc/ssl/apache-baseline/local-ca.crt"
SITE = "https://localhost"
HOSTS = [
    "stack-web",
    "stack-redis",
    "stack-pg1",
    "stack-pg2",
    "stack-backup",
    "stack-rabbit1",
    "stack-rabbit2",
    "stack-rabbit3",
    "stack-worker",
]
# The user the stack tests log in as (made with django-app-manage create_user).
USER = "stacker"
PASSWORD = "stack-user-password-0123"  # noqa: S105 - a throwaway user of the test stack
# The lab's group_vars generate the secrets next to the inventory that uses them.
SECRETS = Path(os.environ.get("MOLECULE_INVENTORY_FILE", ".")).parent / ".secrets"


def docker(*args: str) -> str:
    """The Docker CLI on the controller: the fault tests stop, kill and restart hosts with it."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def other(name: str):
    return testinfra.get_host(f"docker://{name}")


class Site:
    """curl against the site's HTTPS on the web host, verified with the lab's CA."""

    def __init__(self, host) -> None:
        self.host = host
        env = host.file("/etc/django-app/app.env").content_string
        self.token = re.search(r'^APP_API_TOKEN="(.*)"$', env, re.MULTILINE).group(1)

    def curl(self, *args: str) -> str:
        command = f"curl -s --max-time 15 --cacert {CA} " + " ".join(shlex.quote(a) for a in args)
        return self.host.check_output(command)

    def status(self, path: str, *args: str) -> int:
        return int(self.curl("-o", "/dev/null", "-w", "%{http_code}", *args, f"{SITE}{path}"))

    def json(self, path: str, *args: str) -> dict:
        return json.loads(self.curl(*args, f"{SITE}{path}"))

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        args = ["-X", method, "-H", f"Authorization: Bearer {self.token}"]
        if body is not None:
            args += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
        return self.json(path, *args)

    def probe(self, path: str) -> tuple[int, dict]:
        out = self.curl("-w", "\n%{http_code}", f"{SITE}{path}")
        body, _, code = out.rpartition("\n")
        return int(code or 0), json.loads(body) if body.strip().startswith("{") else {}

    def healthz(self) -> tuple[int, dict]:
        return self.probe("/healthz")

    def readyz(self) -> tuple[int, dict]:
        return self.probe("/readyz")

    def timed(self, method: str, path: str, *args: str) -> tuple[int, float]:
        """Status and seconds of one request (curl's own total time)."""
        out = self.curl("-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-X", method, *args, f"{SITE}{path}")
        code, seconds = out.split()
        return int(code), float(seconds)

    def login(self, jar: str, username: str = USER) -> None:
        """Log ``username`` in (created on first use, as an operator would) into the cookie ``jar``."""
        created = self.host.run(
            f"printf '%s\\n' {shlex.quote(PASSWORD)} | django-app-manage create_user {username} --password-stdin"
        )
        assert created.rc == 0 or "exists already" in created.stderr, created.stderr
        page = self.curl("-c", jar, f"{SITE}/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = f"username={username}&password={PASSWORD}&csrfmiddlewaretoken={token}"
        code = self.status(
            "/accounts/login/", "-b", jar, "-c", jar, "-H", "Referer: https://localhost/", "--data", form
        )
        assert code == 302, f"login of {username} answered {code}"


@pytest.fixture
def site(host) -> Site:
    return Site(host)


class Broker:
    """RabbitMQ's management API on a node's loopback, as the administrator."""

    def __init__(self, node: str = "stack-rabbit1") -> None:
        self.host = other(node)
        self.password = (SECRETS / "rabbitmq_admin_password").read_text().split()[0]

    def api(self, path: str, body: dict | None = None) -> dict | list:
        # The credentials go to curl on stdin (-K -), not on its command line.
        config = f'user = "admin:{self.password}"\n'
        data = f"-X POST -H 'content-type: application/json' --data {shlex.quote(json.dumps(body))} " if body else ""
        command = f"printf %s {shlex.quote(config)} | curl -sf -K - {data}http://127.0.0.1:15672/api{path}"
        return json.loads(self.host.check_output(command))

    def ctl(self, *args: str) -> list[dict]:
        return json.loads(
            self.host.check_output("rabbitmqctl " + " ".join(map(shlex.quote, args)) + " --formatter json")
        )


@pytest.fixture
def broker() -> Broker:
    return Broker()
