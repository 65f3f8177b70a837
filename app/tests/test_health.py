"""/healthz against real dependencies: each failure is produced for real, not mocked."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import redis
from config.redis import app_key
from django.test import Client
from health.checks import DEADLINE_SECONDS

CHECKS = {"database", "cache", "broker", "results", "workers", "beat"}
UNREACHABLE = "127.0.0.1:1"

pytestmark = pytest.mark.django_db


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a hung server, not a dead one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


def _get_healthz(client: Client) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = client.get("/healthz")
    return response.status_code, response.json(), time.monotonic() - started


def _point_redis_at(settings, host_port: str) -> None:
    settings.REDIS_RESULTS_URL = f"redis://{host_port}/0"
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": f"redis://{host_port}/1"},
    }


def test_healthz_returns_503_naming_workers_when_no_worker_answers(client: Client, fresh_heartbeat: float):
    status, body, _ = _get_healthz(client)
    assert status == 503
    assert body["status"] == "fail"
    assert set(body["checks"]) == CHECKS
    assert body["checks"]["workers"]["ok"] is False
    assert body["checks"]["workers"]["count"] == 0
    assert [name for name, check in body["checks"].items() if not check["ok"]] == ["workers"]


def test_healthz_returns_503_when_beat_is_stale(client: Client, app_redis: redis.Redis, settings):
    app_redis.set(app_key("beat", "last"), repr(time.time() - settings.HEALTH_BEAT_MAX_AGE - 5))
    status, body, _ = _get_healthz(client)
    assert status == 503
    beat = body["checks"]["beat"]
    assert beat["ok"] is False
    assert beat["age_seconds"] > settings.HEALTH_BEAT_MAX_AGE
    assert "beat" in beat["error"]


def test_healthz_returns_503_when_beat_never_ran(client: Client, app_redis: redis.Redis):
    app_redis.delete(app_key("beat", "last"))
    status, body, _ = _get_healthz(client)
    assert status == 503
    assert body["checks"]["beat"] == {
        "ok": False,
        "error": "no heartbeat recorded",
        "max_age_seconds": 30,
        "latency_ms": body["checks"]["beat"]["latency_ms"],
    }


def test_healthz_returns_503_naming_the_broker_when_no_rabbitmq_node_answers(client: Client, settings):
    settings.CELERY_BROKER_URL = "amqp://u:p@127.0.0.1:1/app;amqp://u:p@127.0.0.1:2/app"
    status, body, _ = _get_healthz(client)
    assert status == 503
    broker = body["checks"]["broker"]
    assert broker["ok"] is False
    assert "Connection refused" in broker["error"] or "OperationalError" in broker["error"]


def test_healthz_broker_check_passes_when_a_later_node_of_the_failover_list_answers(client: Client, settings):
    settings.CELERY_BROKER_URL = "amqp://u:p@127.0.0.1:1/app;memory://"
    _, body, _ = _get_healthz(client)
    broker = body["checks"]["broker"]
    assert broker["ok"] is True
    assert broker["node"].startswith("memory://")
    assert broker["nodes"] == 2


def test_healthz_returns_503_within_the_deadline_when_redis_is_down(client: Client, settings):
    _point_redis_at(settings, UNREACHABLE)
    status, body, elapsed = _get_healthz(client)
    assert status == 503
    failed = {name for name, check in body["checks"].items() if not check["ok"]}
    assert {"cache", "results", "beat"} <= failed
    assert "ConnectionError" in body["checks"]["results"]["error"]
    assert elapsed < DEADLINE_SECONDS + 0.5


def test_healthz_answers_within_the_deadline_when_every_dependency_hangs(client: Client, settings, black_hole: int):
    _point_redis_at(settings, f"127.0.0.1:{black_hole}")
    settings.CELERY_BROKER_URL = f"amqp://u:p@127.0.0.1:{black_hole}/app"
    status, body, elapsed = _get_healthz(client)
    assert status == 503
    assert elapsed < DEADLINE_SECONDS + 0.5
    assert {name for name, check in body["checks"].items() if not check["ok"]} == CHECKS - {"database"}


def test_healthz_is_exempt_from_the_https_redirect_and_sets_no_cookie(client: Client, settings, fresh_heartbeat):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/").status_code == 301
    response = client.get("/healthz")
    assert response.status_code in {200, 503}
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")
    assert "no-store" in response["Cache-Control"]


def test_livez_answers_without_touching_any_dependency(client: Client, settings):
    _point_redis_at(settings, UNREACHABLE)
    settings.CELERY_BROKER_URL = "amqp://u:p@127.0.0.1:1/app"
    started = time.monotonic()
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert not response.cookies
    assert time.monotonic() - started < 0.5
