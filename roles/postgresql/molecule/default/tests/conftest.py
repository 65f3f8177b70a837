"""Helpers of the PostgreSQL verifier: psql on the hosts, the lifecycle playbooks, the writer."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import testinfra

from baseline_testlib import run_playbook

CLUSTERS = {
    "trixie": {"hosts": ["pg-tx-1", "pg-tx-2"], "group": "postgresql_trixie", "backup": "pg-backup-tx"},
    "bookworm": {"hosts": ["pg-bw-1", "pg-bw-2"], "group": "postgresql_bookworm", "backup": "pg-backup-bw"},
}
OWNER = ("app_owner", "molecule-owner-password-0123")
RUNTIME = ("app", "molecule-runtime:pass/word@0123%")
CA = "/etc/ssl/postgresql-client/ca.crt"
PLAYBOOKS = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).parent.parent / "playbooks"


def host(name: str):
    return testinfra.get_host(f"docker://{name}")


def sql(name: str, query: str, database: str = "app") -> str:
    """psql as postgres over the local socket of ``name`` (peer); rows as a|b lines."""
    result = host(name).run(f"runuser -u postgres -- psql -qAtX -d {database} -c {shlex.quote(query)}")
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def remote(
    name: str, query: str, user: tuple[str, str] = RUNTIME, from_host: str = "pg-client", ssl: str = "verify-full"
):
    """psql from ``from_host`` to ``name`` over the network; returns the command's result."""
    dsn = f"host={name} dbname=app user={user[0]} sslmode={ssl} sslrootcert={CA} connect_timeout=5"
    command = f"PGPASSWORD={shlex.quote(user[1])} psql -qAtX {shlex.quote(dsn)} -c {shlex.quote(query)}"
    return host(from_host).run(command)


def lifecycle(playbook: str, cluster: str, **extra: str):
    """Run one of the repository's PostgreSQL playbooks on one cluster.

    The playbooks end by re-deploying the app tier (tag ``app``) with the new primary; this
    scenario has no app tier to re-deploy (only a client host), so that last part is skipped here.
    """
    play = [{"ansible.builtin.import_playbook": str(PLAYBOOKS / playbook)}]
    return run_playbook(
        play, extra_vars={"postgresql_group": CLUSTERS[cluster]["group"], **extra}, args=("--skip-tags", "app")
    )


def primary_of(cluster: str) -> str:
    return next(
        name for name in CLUSTERS[cluster]["hosts"] if sql(name, "SELECT pg_is_in_recovery()", "postgres") == "f"
    )
