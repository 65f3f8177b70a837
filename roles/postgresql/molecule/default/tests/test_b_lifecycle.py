"""Switchover, failover and a point-in-time restore, through the repository's playbooks, with
the commits an app host had acknowledged counted against what the database holds after."""

from __future__ import annotations

import itertools
import shlex
import subprocess
import time
import uuid

import pytest

from baseline_testlib import wait_for
from conftest import CLUSTERS, OWNER, RUNTIME, host, lifecycle, primary_of, remote, sql

pytestmark = pytest.mark.parametrize("cluster", list(CLUSTERS))


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=120)


def start_writer(cluster: str, hosts: list[str], seconds: int) -> str:
    run = f"{cluster}-{uuid.uuid4().hex[:6]}"
    created = remote(hosts[0], "CREATE TABLE IF NOT EXISTS writes (run text, n int, PRIMARY KEY (run, n))", user=OWNER)
    assert created.rc == 0, created.stderr
    env = f"PGHOSTS={','.join(hosts)} PGPASSWORD={shlex.quote(RUNTIME[1])}"
    host("pg-client").run_expect([0], f"{env} nohup pg-writer {run} {seconds} > /dev/null 2>&1 &")
    wait_for(lambda: host("pg-client").run(f"test -s /var/tmp/pg-writer-{run}.log").rc == 0, 20, message="first commit")
    return run


def acknowledged(run: str) -> list[tuple[int, float, str]]:
    lines = host("pg-client").check_output(f"cat /var/tmp/pg-writer-{run}.log").splitlines()
    return [(int(n), float(at), name) for n, at, name in (line.split() for line in lines)]


def wait_writer(run: str) -> None:
    done = f"test -e /var/tmp/pg-writer-{run}.done"
    wait_for(lambda: host("pg-client").run(done).rc == 0, 120, message="writer done")


def stored(primary: str, run: str) -> set[int]:
    return {int(n) for n in sql(primary, f"SELECT n FROM writes WHERE run = '{run}'").split()}


def test_1_a_switchover_loses_no_committed_transaction(cluster):
    old, new = CLUSTERS[cluster]["hosts"]
    run = start_writer(cluster, [old, new], 25)
    started = time.monotonic()
    switch = lifecycle("postgresql-switchover.yml", cluster, postgresql_new_primary=new)
    seconds = time.monotonic() - started
    assert switch.returncode == 0, switch.output[-4000:]
    wait_writer(run)
    commits = acknowledged(run)
    lost = {n for n, _, _ in commits} - stored(new, run)
    gap = max(b[1] - a[1] for a, b in itertools.pairwise(commits))
    print(
        f"\n[switchover {cluster}] {old} -> {new}: playbook {seconds:.1f} s; {len(commits)} commits acknowledged, "
        f"lost: {len(lost)}; writes paused for {gap:.1f} s at most"
    )
    assert not lost, sorted(lost)[:20]
    assert commits[-1][2] == new, commits[-1]
    assert sql(new, "SELECT application_name, state FROM pg_stat_replication", "postgres") == f"{old}|streaming"


def test_2_a_failover_loses_at_most_the_unreplicated_tail(cluster):
    # After the switchover the second host is the primary: it dies, the first takes over.
    survivor, dead = CLUSTERS[cluster]["hosts"]
    assert primary_of(cluster) == dead
    run = start_writer(cluster, [dead], 6)
    time.sleep(3)
    docker("kill", dead)
    killed_at = time.time()
    started = time.monotonic()
    failover = lifecycle("postgresql-failover.yml", cluster, postgresql_new_primary=survivor)
    seconds = time.monotonic() - started
    assert failover.returncode == 0, failover.output[-4000:]
    wait_writer(run)
    commits = [c for c in acknowledged(run) if c[1] < killed_at]
    have = stored(survivor, run)
    lost = sorted({n for n, _, _ in commits} - have)
    print(
        f"\n[failover {cluster}] {dead} killed: {survivor} promoted by the playbook in {seconds:.1f} s; "
        f"{len(commits)} commits acknowledged before the kill, lost: {len(lost)} (the unreplicated tail)"
    )
    # Asynchronous replication: only the last commits may be missing, never one in the middle.
    assert all(n > max(have, default=0) for n in lost), f"lost {lost[:10]} but kept up to {max(have)}"
    assert len(lost) < 200, len(lost)

    # The old primary's machine comes back (its PostgreSQL starts as a primary at boot): the
    # playbook run again rewinds it and makes it follow the survivor.
    docker("start", dead)
    wait_for(lambda: host(dead).run("systemctl is-system-running --wait").rc in (0, 1), 60, message=f"{dead} booted")
    started = time.monotonic()
    rejoin = lifecycle("postgresql-failover.yml", cluster, postgresql_new_primary=survivor)
    assert rejoin.returncode == 0, rejoin.output[-4000:]
    print(f"[failover {cluster}] {dead} rewound and following {survivor} {time.monotonic() - started:.1f} s later")
    assert sql(survivor, "SELECT application_name, state FROM pg_stat_replication", "postgres") == f"{dead}|streaming"
    assert stored(dead, run) == have, "the rewound host kept commits the survivor does not have"


def test_3_a_point_in_time_restore_brings_a_dropped_table_back(cluster):
    primary, replica = CLUSTERS[cluster]["hosts"]
    assert primary_of(cluster) == primary
    sql(primary, "CREATE TABLE drill AS SELECT g AS id FROM generate_series(1, 1000) g")
    time.sleep(1)
    target = sql(primary, "SELECT now()")
    time.sleep(1)
    sql(primary, "DROP TABLE drill")
    sql(primary, "SELECT pg_switch_wal()")
    started = time.monotonic()
    restore = lifecycle("postgresql-restore.yml", cluster, pgbackrest_restore_target=target)
    seconds = time.monotonic() - started
    assert restore.returncode == 0, restore.output[-4000:]
    rows = sql(primary, "SELECT count(*) FROM drill")
    print(f"\n[restore {cluster}] to {target}: {rows} rows of the dropped table back; playbook {seconds:.1f} s")
    assert rows == "1000"
    assert sql(replica, "SELECT count(*) FROM drill") == "1000"
    assert sql(primary, "SELECT application_name, state FROM pg_stat_replication", "postgres") == f"{replica}|streaming"


def test_4_a_restored_primary_can_become_a_replica_and_primary_again(cluster):
    # pgBackRest leaves the recovery target in postgresql.auto.conf: a restored primary that
    # becomes a standby must follow, not stop at that target and promote itself.
    restored, replica = CLUSTERS[cluster]["hosts"]
    for new, old in ((replica, restored), (restored, replica)):
        switch = lifecycle("postgresql-switchover.yml", cluster, postgresql_new_primary=new)
        assert switch.returncode == 0, switch.output[-4000:]
        time.sleep(3)
        assert sql(old, "SELECT pg_is_in_recovery()", "postgres") == "t", f"{old} promoted itself: two primaries"
        assert sql(new, "SELECT application_name, state FROM pg_stat_replication", "postgres") == f"{old}|streaming"
    print(f"\n[restore {cluster}] the restored primary {restored} was a replica of {replica}, then primary again")
