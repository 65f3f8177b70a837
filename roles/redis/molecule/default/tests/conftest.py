"""Redis client helpers for the verifier: redis-cli run on the instance itself."""

from __future__ import annotations

import shlex

import pytest

ADMIN = ("admin", "molecule-admin-password-0123456789")
APP = ("app", "molecule-app-password-0123456789")


class RedisCli:
    def __init__(self, host) -> None:
        self.host = host

    def __call__(self, *command: str, user: tuple[str, str] | None = None, options: str = "") -> str:
        auth = ""
        if user:
            auth = f"REDISCLI_AUTH={shlex.quote(user[1])} "
            options = f"--user {user[0]} --no-auth-warning {options}"
        args = " ".join(shlex.quote(part) for part in command)
        result = self.host.run(f"{auth}redis-cli -h 127.0.0.1 {options} {args}")
        return (result.stdout + result.stderr).strip()

    def main_pid(self) -> int:
        return int(self.host.check_output("systemctl show -p MainPID --value redis-server"))


@pytest.fixture
def redis(host) -> RedisCli:
    return RedisCli(host)
