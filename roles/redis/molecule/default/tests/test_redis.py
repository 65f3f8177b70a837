"""Behaviour of the hardened server (Redis or Valkey) on the converged instances."""

from __future__ import annotations

import re
import time

from conftest import ADMIN, APP

DANGEROUS = ["FLUSHALL", "FLUSHDB", "CONFIG GET maxmemory", "DEBUG SLEEP 0", "KEYS *", "SHUTDOWN", "MODULE LIST"]
# DEBUG is also off server-wide (enable-debug-command no), which answers before the ACL
# check: ACL DRYRUN shows what the app user's own permissions say.
SERVER_WIDE_OFF = ("DEBUG",)


# What each release ships: the server's name and major version in INFO.
EXPECTED = {
    ("redis", "bookworm"): ("redis", "7."),
    ("redis", "trixie"): ("redis", "8."),
    ("valkey", "trixie"): ("valkey", "8."),
}


def test_the_chosen_server_and_release_run(host, redis, server):
    info = dict(line.split(":", 1) for line in redis("INFO", "server", user=ADMIN).splitlines() if ":" in line)
    name = info.get("server_name", "redis")
    version = info.get("valkey_version") or info["redis_version"]
    assert (name, version[:2]) == EXPECTED[(server.flavor, host.system_info.codename)], info
    if server.flavor == "valkey":
        # Valkey alone can keep keys and values out of its log.
        assert redis("CONFIG", "GET", "hide-user-data-from-log", user=ADMIN).splitlines()[1] == "yes"


def test_unauthenticated_client_is_refused(redis):
    answer = redis("SET", "app:anon", "1")
    assert "NOAUTH" in answer, answer


def test_wrong_password_is_refused(redis):
    answer = redis("PING", user=("app", "not-the-password-at-all"))
    assert "WRONGPASS" in answer, answer


def test_app_user_reads_and_writes_its_own_keys(redis):
    assert redis("SET", "cache:verify", "hello", user=APP) == "OK"
    assert redis("GET", "cache:verify", user=APP) == "hello"
    assert redis("DEL", "cache:verify", user=APP) == "1"


def test_app_user_is_denied_dangerous_commands(redis):
    for command in DANGEROUS:
        answer = redis(*command.split(), user=APP)
        if command.startswith(SERVER_WIDE_OFF):
            assert answer.startswith("ERR"), f"{command}: {answer}"
        else:
            assert "NOPERM" in answer, f"{command}: {answer}"
        dry_run = redis("ACL", "DRYRUN", "app", *command.split(), user=ADMIN)
        assert "no permissions" in dry_run, f"ACL DRYRUN app {command}: {dry_run}"


def test_app_user_cannot_touch_keys_outside_its_prefixes(redis):
    for command in (["SET", "other:key", "1"], ["GET", "secrets:admin"], ["DEL", "queue:x"]):
        answer = redis(*command, user=APP)
        assert "NOPERM" in answer, f"{command}: {answer}"


def test_app_user_may_use_celery_channels_only(redis):
    assert redis("PUBLISH", "celery:task-meta-1", "x", user=APP) == "0"
    assert "NOPERM" in redis("PUBLISH", "other-channel", "x", user=APP)


def test_admin_user_can_administer(redis):
    assert redis("CONFIG", "GET", "maxmemory", user=ADMIN).splitlines() == ["maxmemory", str(256 * 1024 * 1024)]
    assert redis("CONFIG", "GET", "maxmemory-policy", user=ADMIN).splitlines()[1] == "noeviction"
    assert "app:before:1" in redis("KEYS", "app:before:*", user=ADMIN).splitlines()
    assert redis("ACL", "WHOAMI", user=ADMIN) == "admin"


def test_data_written_before_the_role_is_kept(redis):
    assert redis("GET", "app:before:100", user=ADMIN) == "value-100"
    keys = redis("KEYS", "app:before:*", user=ADMIN).splitlines()
    assert len(keys) == 100, len(keys)


def test_listens_only_on_loopback_and_the_named_address(host):
    own = host.check_output("hostname -I").split()[0]
    sockets = host.check_output("ss -H -ltn 'sport = :6379'").splitlines()
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in sockets}
    assert "127.0.0.1" in addresses, addresses
    assert own in addresses, addresses
    assert addresses <= {"127.0.0.1", "[::1]", own}, f"Redis listens on {addresses}"


def test_bound_address_answers_and_requires_authentication(host, server):
    own = host.check_output("hostname -I").split()[0]
    answer = host.run(f"{server.cli} -h {own} PING")
    assert "NOAUTH" in answer.stdout + answer.stderr


def test_aof_is_on_with_the_rdb_preamble(redis):
    for name, value in (("appendonly", "yes"), ("appendfsync", "everysec"), ("aof-use-rdb-preamble", "yes")):
        assert redis("CONFIG", "GET", name, user=ADMIN).splitlines()[1] == value, name
    assert redis("CONFIG", "GET", "save", user=ADMIN).splitlines()[1] == "3600 1 300 100 60 10000"


def test_aof_files_exist_and_grow_on_writes(host, redis, server):
    incr = host.check_output(f"ls {server.data_dir}/appendonlydir/ | grep 'incr.aof$'")
    path = f"{server.data_dir}/appendonlydir/{incr}"
    before = host.file(path).size
    for i in range(50):
        redis("SET", f"app:grow:{i}", "x" * 100, user=APP)
    time.sleep(1.5)
    after = host.file(path).size
    assert after > before + 50 * 100, f"{path}: {before} -> {after} bytes"


def test_data_written_a_second_before_kill_9_survives(host, redis):
    key = f"app:crash:{time.time()}"
    assert redis("SET", key, "durable", user=APP) == "OK"
    time.sleep(1.5)
    old_pid = redis.main_pid()
    host.run(f"kill -9 {old_pid}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = redis.main_pid()
        if pid not in (0, old_pid) and redis("PING", user=APP) == "PONG":
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"systemd did not restart {redis.server.service} within 30 s")
    assert redis("GET", key, user=APP) == "durable"


def test_unit_scores_ok_in_systemd_analyze_security(host, server):
    output = host.check_output(f"systemd-analyze security --no-pager {server.service}.service")
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", output).group(1))
    assert score <= 4.9, output[-2000:]


def test_acl_file_holds_hashes_not_passwords(host, server):
    acl = host.file(f"{server.conf_dir}/users.acl")
    assert acl.mode == 0o640
    assert acl.group == server.flavor
    assert ADMIN[1] not in acl.content_string
    assert APP[1] not in acl.content_string
    assert re.search(r"^user app on #[0-9a-f]{64} ", acl.content_string, re.MULTILINE)
    assert re.search(r"^user default off ", acl.content_string, re.MULTILINE)


def test_configuration_is_read_only_to_the_server(host, server):
    conf = host.file(f"{server.conf_dir}/{server.flavor}.conf")
    assert conf.mode == 0o640
    assert conf.user == "root"
    property_ = host.check_output(f"systemctl show -p ReadOnlyPaths --value {server.service}")
    assert server.conf_dir in property_, property_
