"""The whole stack: the web host runs the checks; the others are reached by name."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest
import testinfra

CA = "/etc/ssl/apache-baseline/local-ca.crt"
SITE = "https://localhost"
HOSTS = ["stack-web", "stack-redis", "stack-rabbit1", "stack-rabbit2", "stack-rabbit3", "stack-worker"]


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

    def healthz(self) -> tuple[int, dict]:
        out = self.curl("-w", "\n%{http_code}", f"{SITE}/healthz")
        body, _, code = out.rpartition("\n")
        return int(code or 0), json.loads(body) if body.strip().startswith("{") else {}


@pytest.fixture
def site(host) -> Site:
    return Site(host)
