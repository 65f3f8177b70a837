"""The dependency checks behind /healthz, each bounded in time so a dead dependency costs seconds.

They run in parallel: a load balancer probing every few seconds gets an answer within
``DEADLINE_SECONDS`` even when every dependency is down or hanging.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from config.celery import app as celery_app
from config.redis import app_key, get_redis
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from kombu import Connection

Check = Callable[[], dict[str, Any]]

DEADLINE_SECONDS = 3.0
BROKER_CONNECT_TIMEOUT = 1.0
BROKER_TOTAL_TIMEOUT = 2.0
WORKER_PING_TIMEOUT = 1.0
HEALTH_CACHE_KEY = "health"

_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="healthz")
# The worker ping waits a full second for replies: its result is reused for a few seconds, in
# process memory so that a Redis outage cannot serve a stale "ok".
_ping_lock = threading.Lock()
_last_ping: tuple[float, dict[str, Any]] | None = None


def _timed(check: Check) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = check()
    # Whatever a dependency raises is a failed check, never a 500 from the health endpoint.
    except Exception as error:
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


# The replicas as the primary sees them: who streams, how far behind (bytes of WAL not yet
# replayed, and the time the last replay took to catch up). Needs pg_read_all_stats.
_REPLICAS = """
SELECT application_name, state, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
       extract(epoch FROM replay_lag)::float
FROM pg_stat_replication ORDER BY application_name
"""


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute("SELECT 1")
            cursor.fetchone()
            return {"ok": True, "vendor": connection.vendor}
        cursor.execute("SELECT pg_is_in_recovery()")
        (in_recovery,) = cursor.fetchone()
        result: dict[str, Any] = {
            "ok": not in_recovery,
            "vendor": "postgresql",
            "server": connection.settings_dict["HOST"],
        }
        if in_recovery:
            result["error"] = "connected to a replica (read-only): DATABASE_URL must name the primary"
            return result
        cursor.execute(_REPLICAS)
        result["replicas"] = [
            {
                "name": name,
                "state": state,
                "sync": sync,
                "lag_bytes": lag_bytes,
                "replay_lag_seconds": lag_seconds or 0.0,
            }
            for name, state, sync, lag_bytes, lag_seconds in cursor.fetchall()
        ]
    return result


def check_cache() -> dict[str, Any]:
    cache = caches["default"]
    # Every process writes the same value, so concurrent probes cannot make each other fail.
    cache.set(HEALTH_CACHE_KEY, "ok", timeout=60)
    return {"ok": cache.get(HEALTH_CACHE_KEY) == "ok"}


def check_results() -> dict[str, Any]:
    return {"ok": bool(get_redis().ping())}


def _connect_to_broker(connect_timeout: float, total_timeout: float) -> Connection:
    """Connect to the first RabbitMQ node of the failover list that answers, each tried once."""
    conn = celery_app.connection_for_write(settings.CELERY_BROKER_URL, connect_timeout=connect_timeout)
    try:
        conn.ensure_connection(
            max_retries=max(len(conn.alt), 1) - 1,
            interval_start=0,
            interval_step=0,
            timeout=total_timeout,
        )
    except BaseException:
        conn.release()
        raise
    return conn


def check_broker() -> dict[str, Any]:
    with _connect_to_broker(BROKER_CONNECT_TIMEOUT, BROKER_TOTAL_TIMEOUT) as conn:
        return {"ok": True, "node": conn.as_uri(), "nodes": max(len(conn.alt), 1)}


def _ping_workers() -> dict[str, Any]:
    with _connect_to_broker(BROKER_CONNECT_TIMEOUT, BROKER_TOTAL_TIMEOUT - WORKER_PING_TIMEOUT / 2) as conn:
        replies = celery_app.control.ping(timeout=WORKER_PING_TIMEOUT, connection=conn) or []
    names = sorted(name for reply in replies for name in reply)
    result: dict[str, Any] = {"ok": bool(names), "count": len(names), "workers": names}
    if not names:
        result["error"] = f"no worker answered a ping within {WORKER_PING_TIMEOUT} s"
    return result


def check_workers() -> dict[str, Any]:
    global _last_ping  # noqa: PLW0603 - a per-process cache is the point
    max_age = settings.HEALTH_WORKER_PING_CACHE_SECONDS
    with _ping_lock:
        if _last_ping is not None and time.monotonic() - _last_ping[0] < max_age:
            return {**_last_ping[1], "cached": True}
        result = _timed(_ping_workers)
        _last_ping = (time.monotonic(), result)
    return {**result, "cached": False}


def check_beat() -> dict[str, Any]:
    max_age = settings.HEALTH_BEAT_MAX_AGE
    last = get_redis().get(app_key("beat", "last"))
    if last is None:
        return {"ok": False, "error": "no heartbeat recorded", "max_age_seconds": max_age}
    age = round(time.time() - float(last), 1)
    result: dict[str, Any] = {"ok": age <= max_age, "age_seconds": age, "max_age_seconds": max_age}
    if not result["ok"]:
        result["error"] = f"last heartbeat {age} s ago (limit {max_age} s): is celery beat running?"
    return result


BACKGROUND_CHECKS: dict[str, Check] = {
    "cache": check_cache,
    "broker": check_broker,
    "results": check_results,
    "workers": check_workers,
    "beat": check_beat,
}


def run_checks() -> dict[str, dict[str, Any]]:
    """Run every check; the database one in this thread, whose connection Django manages."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    futures: dict[str, Future[dict[str, Any]]] = {
        name: _executor.submit(_timed, check) for name, check in BACKGROUND_CHECKS.items()
    }
    results = {"database": _timed(check_database)}
    wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
    for name, future in futures.items():
        if future.done():
            results[name] = future.result()
        else:
            results[name] = {"ok": False, "error": f"no answer within {DEADLINE_SECONDS} s"}
    return results
