"""Behaviour that needs the role applied again with other variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baseline_testlib import assert_refused_before_any_change, instance_name, run_role
from conftest import ADMIN, APP

# Debian 13, the primary release, with each server.
testinfra_hosts = ["ansible://redis-trixie", "ansible://valkey-trixie"]

CONVERGE = {"redis_bind_addresses": ["{{ ansible_facts.default_ipv4.address }}"], "redis_maxmemory": "256mb"}


def converge_again(host, **overrides) -> None:
    run = run_role("redis", instance_name(host), {**CONVERGE, **overrides})
    assert run.returncode == 0, run.output[-4000:]


def test_live_settings_and_acl_changes_apply_without_a_restart(host, redis):
    pid = redis.main_pid()
    reporter = {"name": "reporter", "password": "molecule-reporter-password-01", "keys": ["app:*"], "commands": "+get"}
    users = [
        {"name": "admin", "password": ADMIN[1], "keys": ["*"], "channels": ["*"], "commands": "+@all"},
        {"name": "app", "password": APP[1], "keys": ["cache:*", "app:*"], "commands": "+@all -@dangerous"},
        reporter,
    ]
    converge_again(host, redis_maxmemory="300mb", redis_users=users)
    assert redis.main_pid() == pid, "the server was restarted for changes it takes live"
    assert redis("CONFIG", "GET", "maxmemory", user=ADMIN).splitlines()[1] == str(300 * 1024 * 1024)
    assert redis("GET", "app:before:1", user=("reporter", reporter["password"])) == "value-1"
    assert "NOPERM" in redis("SET", "app:x", "1", user=("reporter", reporter["password"]))
    converge_again(host)
    assert redis.main_pid() == pid
    assert "WRONGPASS" in redis("PING", user=("reporter", reporter["password"]))


def test_tls_mode_closes_the_plain_port(host, redis, server):
    pki = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "pki"
    tls = {
        "redis_tls_enabled": True,
        "redis_tls_cert": (pki / "server.crt").read_text(),
        "redis_tls_key": (pki / "server.key").read_text(),
        "redis_tls_ca": (pki / "ca.crt").read_text(),
    }
    converge_again(host, **tls)
    try:
        assert redis("PING", user=APP, options=f"--tls --cacert {server.conf_dir}/tls/ca.crt") == "PONG"
        plain = redis("PING", user=APP)
        assert plain != "PONG", f"the plain port still answers: {plain}"
    finally:
        converge_again(host)
    assert redis("PING", user=APP) == "PONG"


@pytest.mark.parametrize(
    ("instance", "variable", "value"),
    [
        ("redis-trixie", "redis_users", [{"name": "admin", "keys": ["*"], "commands": "+@all"}]),
        ("redis-trixie", "redis_maxmemory_policy", "evict-everything"),
        ("redis-trixie", "redis_tls_enabled", True),
        ("redis-trixie", "redis_auth_mode", "none"),
        ("redis-trixie", "redis_app_password", "short"),
        # Debian 12 has no Valkey.
        ("redis-bookworm", "redis_flavor", "valkey"),
        # A host that runs Redis is not switched to Valkey in place (nor the other way).
        ("redis-trixie", "redis_flavor", "valkey"),
        ("valkey-trixie", "redis_flavor", "redis"),
    ],
)
def test_bad_input_is_refused_before_any_change(instance, variable, value):
    run = run_role("redis", instance, {variable: value})
    expected = {"redis_tls_enabled": "redis_tls_cert", "redis_app_password": "redis_users"}.get(variable, variable)
    assert_refused_before_any_change(run, instance, expected)
