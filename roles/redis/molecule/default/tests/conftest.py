"""Client helpers for the verifier: the server's own CLI (redis-cli or valkey-cli) on the instance."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pytest

ADMIN = ("admin", "molecule-admin-password-0123456789")
APP = ("app", "molecule-app-password-0123456789")


@dataclass(frozen=True)
class Server:
    """Names and paths of the server the instance runs (the role's redis_flavor)."""

    flavor: str

    @property
    def service(self) -> str:
        return f"{self.flavor}-server"

    @property
    def cli(self) -> str:
        return f"{self.flavor}-cli"

    @property
    def conf_dir(self) -> str:
        return f"/etc/{self.flavor}"

    @property
    def data_dir(self) -> str:
        return f"/var/lib/{self.flavor}"


def server_of(host) -> Server:
    return Server(host.ansible.get_variables().get("redis_flavor", "redis"))


class RedisCli:
    def __init__(self, host) -> None:
        self.host = host
        self.server = server_of(host)

    def __call__(self, *command: str, user: tuple[str, str] | None = None, options: str = "") -> str:
        auth = ""
        if user:
            auth = f"REDISCLI_AUTH={shlex.quote(user[1])} "
            options = f"--user {user[0]} --no-auth-warning {options}"
        args = " ".join(shlex.quote(part) for part in command)
        result = self.host.run(f"{auth}{self.server.cli} -h 127.0.0.1 {options} {args}")
        return (result.stdout + result.stderr).strip()

    def main_pid(self) -> int:
        return int(self.host.check_output(f"systemctl show -p MainPID --value {self.server.service}"))


@pytest.fixture
def server(host) -> Server:
    return server_of(host)


@pytest.fixture
def redis(host) -> RedisCli:
    return RedisCli(host)
