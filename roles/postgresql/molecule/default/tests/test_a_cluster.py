"""The converged clusters: replication, TLS, pg_hba, least privilege, sizing, backups."""

from __future__ import annotations

import time

import pytest

from conftest import CLUSTERS, OWNER, RUNTIME, host, remote, sql

pytestmark = pytest.mark.parametrize("cluster", list(CLUSTERS))


def test_a_row_written_on_the_primary_is_read_on_the_replica(cluster):
    primary, replica = CLUSTERS[cluster]["hosts"]
    marker = f"row-{time.time_ns()}"
    sql(primary, "CREATE TABLE IF NOT EXISTS replicated (marker text)")
    sql(primary, f"INSERT INTO replicated VALUES ('{marker}')")
    deadline = time.monotonic() + 10
    while sql(replica, f"SELECT count(*) FROM replicated WHERE marker = '{marker}'") != "1":
        assert time.monotonic() < deadline, f"{marker} never reached {replica}"
        time.sleep(0.2)


def test_the_replica_streams_through_its_slot_and_refuses_writes(cluster):
    primary, replica = CLUSTERS[cluster]["hosts"]
    assert sql(primary, "SELECT application_name, state FROM pg_stat_replication", "postgres") == f"{replica}|streaming"
    slot = replica.replace("-", "_")
    assert sql(primary, f"SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'", "postgres") == "t"
    refused = host(replica).run("runuser -u postgres -- psql -d app -c 'CREATE TABLE nope (x int)'")
    assert "read-only transaction" in refused.stderr, refused.stderr


def test_the_cluster_has_data_checksums_scram_and_derived_memory(cluster):
    primary = CLUSTERS[cluster]["hosts"][0]
    assert sql(primary, "SHOW data_checksums", "postgres") == "on"
    assert sql(primary, "SHOW password_encryption", "postgres") == "scram-sha-256"
    stored = sql(
        primary,
        "SELECT rolname, left(rolpassword, 13) FROM pg_authid WHERE rolname IN ('app', 'app_owner')",
        "postgres",
    )
    assert set(stored.splitlines()) == {"app_owner|SCRAM-SHA-256", "app|SCRAM-SHA-256"}, stored
    # postgresql_memory_mb 1024 in this scenario: a quarter of it.
    assert sql(primary, "SHOW shared_buffers", "postgres") == "256MB"


def test_the_app_host_connects_over_tls_with_verify_full(cluster):
    primary = CLUSTERS[cluster]["hosts"][0]
    result = remote(primary, "SELECT current_user, ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() in ("app|t|TLSv1.3", "app|t|TLSv1.2"), result.stdout


def test_a_plain_connection_from_the_app_host_is_refused(cluster):
    primary = CLUSTERS[cluster]["hosts"][0]
    result = remote(primary, "SELECT 1", ssl="disable")
    assert result.rc != 0
    assert "pg_hba.conf rejects connection" in result.stderr, result.stderr


def test_a_host_that_is_no_app_host_is_refused(cluster):
    primary, replica = CLUSTERS[cluster]["hosts"]
    result = remote(primary, "SELECT 1", from_host=replica, ssl="require")
    assert result.rc != 0
    assert "pg_hba.conf rejects connection" in result.stderr, result.stderr


def test_the_runtime_role_reads_and_writes_rows_but_cannot_create_or_drop(cluster):
    primary = CLUSTERS[cluster]["hosts"][0]
    created = remote(primary, "CREATE TABLE IF NOT EXISTS owned (id serial PRIMARY KEY, note text)", user=OWNER)
    assert created.rc == 0, created.stderr
    # Default privileges: the owner's new table is the runtime role's to use.
    assert remote(primary, "INSERT INTO owned (note) VALUES ('runtime') RETURNING note").stdout.strip() == "runtime"
    create = remote(primary, "CREATE TABLE sneaky (x int)")
    assert "permission denied for schema public" in create.stderr, create.stderr
    drop = remote(primary, "DROP TABLE owned")
    assert "must be owner of table owned" in drop.stderr, drop.stderr
    assert remote(primary, "SELECT count(*) > 0 FROM owned").stdout.strip() == "t"
    assert RUNTIME[0] != OWNER[0]


def test_backups_exist_and_wal_reaches_the_repository(cluster):
    backup = host(CLUSTERS[cluster]["backup"])
    for timer in ("pgbackrest-full.timer", "pgbackrest-diff.timer"):
        assert backup.service(timer).is_enabled, timer
    check = backup.run("runuser -u postgres -- pgbackrest --stanza=main check")
    assert check.rc == 0, check.stdout + check.stderr
    info = backup.check_output("runuser -u postgres -- pgbackrest --stanza=main info")
    assert "status: ok" in info, info
    assert "full backup" in info, info
