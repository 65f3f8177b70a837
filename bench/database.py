"""Database connections: a view that reads one job row, with persistent connections
(CONN_MAX_AGE 60, as deployed) against a new connection per request (CONN_MAX_AGE 0).

What it answers: whether Django's persistent connections are enough in front of PostgreSQL, or a
pool (PgBouncer, psycopg's pool) is needed. Each mod_wsgi thread keeps at most one connection, so
the web tier holds at most processes x threads; the figure that matters is what a connection per
request costs (TLS with verify-full and SCRAM on every request) and how many connections each
mode holds on the primary.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from .lab import SITE, app_script, in_container
from .web import CONNECTIONS, DURATION, THREADS, WARMUP, deployed_daemon, ensure_wrk, sh, with_web_vars, wrk_output

PRIMARY = "lab-pg1"
RUNTIME_ROLE = "app"
CREATE_JOB = """
import json
from jobs.models import Job
job = Job.objects.create(kind="add", args=[1, 2], submitted_by="bench", state="SUCCESS", result=3)
print(json.dumps(str(job.id)))
"""


def api_token() -> str:
    env = in_container("lab-web", "cat", "/etc/django-app/app.env")
    for line in env.splitlines():
        if line.startswith("APP_API_TOKEN="):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise RuntimeError("APP_API_TOKEN not found in lab-web's /etc/django-app/app.env")


def runtime_connections() -> int:
    query = f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{RUNTIME_ROLE}'"  # noqa: S608 - a constant
    return int(in_container(PRIMARY, "runuser", "-u", "postgres", "--", "psql", "-AtXc", query).strip())


def wrk_with_token(url: str, token: str) -> dict[str, float]:
    """wrk with the bearer token in a Lua script (0600): never on a command line."""
    binary = ensure_wrk()
    # NamedTemporaryFile creates the file 0600.
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    try:
        sh(binary, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{WARMUP}", "-s", script.name, url)
        peak: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                peak.append(runtime_connections())

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            out = sh(binary, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency", "-s", script.name, url)
        finally:
            done.set()
            sampler.join()
    finally:
        Path(script.name).unlink()
    figures = wrk_output(out)
    figures["connections_peak"] = max(peak, default=0)
    return figures


def run() -> dict:
    token = api_token()
    job_id = app_script("lab-web", CREATE_JOB)
    url = f"{SITE}/api/jobs/{job_id}/"
    print("[bench] database: (a) one row per request, CONN_MAX_AGE 60 (as deployed)", flush=True)
    persistent = wrk_with_token(url, token)
    print("[bench] database: (b) the same, CONN_MAX_AGE 0 (a new TLS + SCRAM connection per request)", flush=True)
    per_request = with_web_vars(
        {"django_app_env_extra": {"DATABASE_CONN_MAX_AGE": "0"}}, lambda: wrk_with_token(url, token)
    )
    return {
        "tool": f"wrk (Debian), {THREADS} threads, {CONNECTIONS} keep-alive connections, {DURATION} after a "
        f"{WARMUP} warm-up, GET /api/jobs/<id>/ (bearer token, one primary-key read)",
        "persistent": persistent,
        "per_request": per_request,
        "deployed_daemon": deployed_daemon(),
    }
