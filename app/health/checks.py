"""The checks behind /readyz and /healthz, each bounded in time, run in parallel, and cached.

/readyz asks "can this web host serve?": the database (the primary), Redis and the broker.
/healthz asks "is the whole stack well?": the same, plus the workers, beat's heartbeat, the
replicas' lag and the queues' depths. A load balancer probing every web host every second
costs each dependency at most one check per process and ``HEALTH_CACHE_SECONDS``; the broker is
reached over one long-lived connection per process, never a new one per probe.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from config.celery import app as celery_app
from config.redis import app_key, get_redis
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from kombu import Connection

Check = Callable[[], dict[str, Any]]
Results = dict[str, dict[str, Any]]

DEADLINE_SECONDS = 3.0
BROKER_TIMEOUT = 1.0
WORKER_PING_TIMEOUT = 1.0
HEALTH_CACHE_KEY = "health"
APP_QUEUES = ("default", "high", "low", "heartbeat")

_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")


def _timed(check: Check) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = check()
    # Whatever a dependency raises is a failed check, never a 500 from a health endpoint.
    except Exception as error:
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


# --- PostgreSQL ----------------------------------------------------------------------------

# The replicas as the primary sees them: who streams, how far behind (bytes of WAL not yet
# replayed, and the time the last replay took to catch up). Needs pg_read_all_stats.
_REPLICAS = """
SELECT application_name, state, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
       extract(epoch FROM replay_lag)::float
FROM pg_stat_replication ORDER BY application_name
"""


def _database(replicas: bool) -> dict[str, Any]:
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
        if replicas:
            cursor.execute(_REPLICAS)
            result["replicas"] = [
                {"name": name, "state": state, "sync": sync, "lag_bytes": lag, "replay_lag_seconds": seconds or 0.0}
                for name, state, sync, lag, seconds in cursor.fetchall()
            ]
    return result


def check_database() -> dict[str, Any]:
    return _database(replicas=False)


def check_database_and_replicas() -> dict[str, Any]:
    return _database(replicas=True)


# --- Redis ---------------------------------------------------------------------------------


def check_cache() -> dict[str, Any]:
    cache = caches["default"]
    # Every process writes the same value, so concurrent probes cannot make each other fail.
    cache.set(HEALTH_CACHE_KEY, "ok", timeout=60)
    return {"ok": cache.get(HEALTH_CACHE_KEY) == "ok"}


def check_results() -> dict[str, Any]:
    return {"ok": bool(get_redis().ping())}


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


# --- RabbitMQ ------------------------------------------------------------------------------


class BrokerProbe:
    """One connection per process for the probes: kept open, replaced when it fails.

    Every probe is a round trip on it (a channel opened, passive declares, closed) with socket
    timeouts, so a broker that hangs fails the probe in about BROKER_TIMEOUT instead of holding
    it; kombu's failover list is walked once when (re)connecting.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self.connections_opened = 0

    def _connect(self) -> Connection:
        conn = celery_app.connection_for_write(
            settings.CELERY_BROKER_URL,
            connect_timeout=BROKER_TIMEOUT,
            heartbeat=0,
            transport_options={
                "confirm_publish": False,
                "read_timeout": BROKER_TIMEOUT,
                "write_timeout": BROKER_TIMEOUT,
            },
        )
        try:
            conn.ensure_connection(
                max_retries=max(len(conn.alt), 1) - 1, interval_start=0, interval_step=0, timeout=2 * BROKER_TIMEOUT
            )
        except BaseException:
            conn.release()
            raise
        self.connections_opened += 1
        return conn

    def _drop(self) -> None:
        if self._connection is not None:
            # It is thrown away because it failed: closing it may fail too.
            with contextlib.suppress(Exception):
                self._connection.release()
            self._connection = None

    def run(self, probe: Callable[[Connection], dict[str, Any]]) -> dict[str, Any]:
        """Run ``probe`` on the shared connection; a failure on a stale one is retried once, fresh."""
        with self._lock:
            for attempt in (1, 2):
                fresh = self._connection is None
                if fresh:
                    self._connection = self._connect()
                try:
                    return probe(self._connection)
                except Exception:
                    self._drop()
                    if fresh or attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def reset(self) -> None:
        with self._lock:
            self._drop()


broker_probe = BrokerProbe()


def _round_trip(conn: Connection, queues: Iterable[str]) -> dict[str, Any]:
    channel = conn.channel()
    try:
        # amq.topic exists in every vhost: declaring it passively is a round trip that needs nothing.
        channel.exchange_declare("amq.topic", "topic", passive=True)
        depths = {}
        for name in queues:
            _, messages, consumers = channel.queue_declare(name, passive=True)
            depths[name] = {"messages": messages, "consumers": consumers}
    finally:
        channel.close()
    return {"ok": True, "node": conn.as_uri(), "nodes": max(len(conn.alt), 1), **({"queues": depths} if depths else {})}


def check_broker() -> dict[str, Any]:
    return broker_probe.run(lambda conn: _round_trip(conn, ()))


def check_queues() -> dict[str, Any]:
    result = broker_probe.run(lambda conn: _round_trip(conn, APP_QUEUES))
    limit = settings.HEALTH_MAX_QUEUE_DEPTH
    deep = {name: q["messages"] for name, q in result["queues"].items() if q["messages"] > limit}
    result["max_messages"] = limit
    if deep:
        result["ok"] = False
        result["error"] = f"queues over {limit} messages: {deep}"
    return result


_ping_lock = threading.Lock()
_last_ping: tuple[float, dict[str, Any]] | None = None


def _ping_workers(conn: Connection) -> dict[str, Any]:
    replies = celery_app.control.ping(timeout=WORKER_PING_TIMEOUT, connection=conn) or []
    names = sorted(name for reply in replies for name in reply)
    result: dict[str, Any] = {"ok": bool(names), "count": len(names), "workers": names}
    if not names:
        result["error"] = f"no worker answered a ping within {WORKER_PING_TIMEOUT} s"
    return result


def check_workers() -> dict[str, Any]:
    """Ping the workers (a second's wait for replies): reused for HEALTH_WORKER_PING_CACHE_SECONDS."""
    global _last_ping  # noqa: PLW0603 - a per-process cache is the point
    with _ping_lock:
        if _last_ping is not None and time.monotonic() - _last_ping[0] < settings.HEALTH_WORKER_PING_CACHE_SECONDS:
            return {**_last_ping[1], "cached": True}
        result = _timed(lambda: broker_probe.run(_ping_workers))
        _last_ping = (time.monotonic(), result)
    return {**result, "cached": False}


# --- Running them --------------------------------------------------------------------------

# Readiness: what this web host needs to serve requests. Never beat or the workers: losing
# them must not make a load balancer drain every web host.
READINESS: dict[str, Check] = {
    "database": check_database,
    "cache": check_cache,
    "results": check_results,
    "broker": check_broker,
}
# Health: the whole stack.
HEALTH: dict[str, Check] = {
    "database": check_database_and_replicas,
    "cache": check_cache,
    "results": check_results,
    "broker": check_queues,
    "workers": check_workers,
    "beat": check_beat,
}


def run_checks(checks: dict[str, Check]) -> Results:
    """Run ``checks`` in parallel, the database one in this thread (Django's connection is per thread)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    futures: dict[str, Future[dict[str, Any]]] = {
        name: _executor.submit(_timed, check) for name, check in checks.items() if name != "database"
    }
    results: Results = {"database": _timed(checks["database"])} if "database" in checks else {}
    wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
    for name, future in futures.items():
        if future.done():
            results[name] = future.result()
        else:
            results[name] = {"ok": False, "error": f"no answer within {DEADLINE_SECONDS} s"}
    return {name: results[name] for name in checks}


class CachedChecks:
    """The last results of a set of checks, reused for HEALTH_CACHE_SECONDS (in process memory,
    so that a Redis outage cannot serve a stale "ok"); concurrent probes wait for one run."""

    def __init__(self, checks: dict[str, Check]) -> None:
        self.checks = checks
        self._lock = threading.Lock()
        self._last: tuple[float, Results] | None = None

    def __call__(self) -> tuple[Results, float]:
        """The results and their age in seconds."""
        with self._lock:
            now = time.monotonic()
            if self._last is None or now - self._last[0] >= settings.HEALTH_CACHE_SECONDS:
                self._last = (now, run_checks(self.checks))
            return self._last[1], round(time.monotonic() - self._last[0], 1)

    def clear(self) -> None:
        with self._lock:
            self._last = None


readiness = CachedChecks(READINESS)
health = CachedChecks(HEALTH)
