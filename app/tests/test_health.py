"""/livez, /readyz and /healthz against real dependencies: each failure is produced for real."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from config.redis import app_key
from django.test import Client
from health.checks import DEADLINE_SECONDS, broker_probe

from tests.fixtures import make_user

READINESS = {"database", "cache", "results", "broker"}
HEALTH = READINESS | {"workers", "beat"}
UNREACHABLE = "127.0.0.1:1"

pytestmark = pytest.mark.django_db


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a hung server, not a dead one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


def _get(client: Client, path: str) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = client.get(path)
    return response.status_code, response.json(), time.monotonic() - started


def _point_redis_at(settings: Any, host_port: str) -> None:
    settings.REDIS_RESULTS_URL = f"redis://{host_port}/0"
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": f"redis://{host_port}/1"},
    }


def _failed(body: dict) -> set[str]:
    return {name for name, check in body["checks"].items() if not check["ok"]}


def test_readyz_is_200_without_workers_or_beat(client: Client, app_redis: redis.Redis):
    # No worker runs in this module and beat never ran: the site can still serve requests.
    app_redis.delete(app_key("beat", "last"))
    status, body, _ = _get(client, "/readyz")
    assert (status, body["status"]) == (200, "ok"), body
    assert set(body["checks"]) == READINESS
    status, body, _ = _get(client, "/healthz")
    assert status == 503
    assert set(body["checks"]) == HEALTH
    assert _failed(body) == {"workers", "beat"}


def test_healthz_returns_503_naming_workers_when_no_worker_answers(client: Client, fresh_heartbeat: float):
    status, body, _ = _get(client, "/healthz")
    assert (status, body["status"]) == (503, "fail")
    assert body["checks"]["workers"]["count"] == 0
    assert _failed(body) == {"workers"}


def test_healthz_reports_beat_stale_while_readyz_stays_200(client: Client, app_redis: redis.Redis, settings: Any):
    app_redis.set(app_key("beat", "last"), repr(time.time() - settings.HEALTH_BEAT_MAX_AGE - 5))
    status, body, _ = _get(client, "/healthz")
    assert status == 503
    beat = body["checks"]["beat"]
    assert beat["ok"] is False
    assert beat["age_seconds"] > settings.HEALTH_BEAT_MAX_AGE
    assert "is celery beat running?" in beat["error"]
    assert _get(client, "/readyz")[0] == 200


def test_healthz_reports_the_depth_of_every_task_queue(client: Client, fresh_heartbeat: float):
    broker = _get(client, "/healthz")[1]["checks"]["broker"]
    assert broker["ok"] is True
    assert set(broker["queues"]) == {"default", "high", "low", "heartbeat"}
    assert all(queue["messages"] >= 0 for queue in broker["queues"].values())


def test_readyz_returns_503_naming_the_broker_when_no_rabbitmq_node_answers(client: Client, settings: Any):
    settings.CELERY_BROKER_URL = "amqp://u:p@127.0.0.1:1/app;amqp://u:p@127.0.0.1:2/app"
    status, body, elapsed = _get(client, "/readyz")
    assert status == 503
    assert _failed(body) == {"broker"}
    assert elapsed < DEADLINE_SECONDS


def test_the_broker_check_passes_when_a_later_node_of_the_failover_list_answers(client: Client, settings: Any):
    settings.CELERY_BROKER_URL = f"amqp://u:p@127.0.0.1:1/app;{settings.CELERY_BROKER_URL}"
    broker = _get(client, "/readyz")[1]["checks"]["broker"]
    assert broker["ok"] is True
    assert broker["nodes"] == 2


def test_probes_reuse_one_broker_connection(client: Client, settings: Any):
    settings.HEALTH_CACHE_SECONDS = 0
    opened = broker_probe.connections_opened
    for _ in range(5):
        assert _get(client, "/readyz")[0] == 200
    assert broker_probe.connections_opened == opened + 1


def test_probe_results_are_reused_for_a_few_seconds(client: Client, settings: Any):
    settings.HEALTH_CACHE_SECONDS = 60
    assert _get(client, "/readyz")[0] == 200
    # Redis goes away: within the cache period the probe does not even ask it.
    _point_redis_at(settings, UNREACHABLE)
    status, body, _ = _get(client, "/readyz")
    assert status == 200
    assert body["age_seconds"] >= 0
    settings.HEALTH_CACHE_SECONDS = 0
    status, body, _ = _get(client, "/readyz")
    assert status == 503
    assert _failed(body) == {"cache", "results"}


def test_readyz_returns_503_within_the_deadline_when_redis_is_down(client: Client, settings: Any):
    _point_redis_at(settings, UNREACHABLE)
    status, body, elapsed = _get(client, "/readyz")
    assert status == 503
    assert _failed(body) == {"cache", "results"}
    assert "ConnectionError" in body["checks"]["results"]["error"]
    assert elapsed < DEADLINE_SECONDS


def test_healthz_answers_within_the_deadline_when_every_dependency_hangs(
    client: Client, settings: Any, black_hole: int
):
    _point_redis_at(settings, f"127.0.0.1:{black_hole}")
    settings.CELERY_BROKER_URL = f"amqp://u:p@127.0.0.1:{black_hole}/app"
    status, body, elapsed = _get(client, "/healthz")
    assert status == 503
    assert elapsed < DEADLINE_SECONDS + 0.5
    assert _failed(body) == HEALTH - {"database"}


@pytest.mark.parametrize("probe", ["/readyz", "/healthz"])
def test_only_internal_networks_and_staff_see_the_detail(client: Client, settings: Any, probe: str):
    settings.HEALTH_DETAIL_NETWORKS = ["10.99.0.0/16"]
    status, body, _ = _get(client, probe)
    assert body == {"status": "ok" if status == 200 else "fail"}
    assert _get(Client(REMOTE_ADDR="10.99.3.4"), probe)[1].keys() == {"status", "checks", "age_seconds"}
    staff, user = Client(), Client()
    staff.force_login(make_user("ops", is_staff=True))
    user.force_login(make_user("alice"))
    assert "checks" in _get(staff, probe)[1]
    assert "checks" not in _get(user, probe)[1]


@pytest.mark.parametrize("probe", ["/livez", "/readyz", "/healthz"])
def test_probes_are_exempt_from_the_https_redirect_and_set_no_cookie(client: Client, settings: Any, probe: str):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/accounts/login/").status_code == 301
    response = client.get(probe)
    assert response.status_code in {200, 503}
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")
    assert "no-store" in response["Cache-Control"]


def test_livez_answers_without_touching_any_dependency(client: Client, settings: Any):
    _point_redis_at(settings, UNREACHABLE)
    settings.CELERY_BROKER_URL = "amqp://u:p@127.0.0.1:1/app"
    started = time.monotonic()
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert not response.cookies
    assert time.monotonic() - started < 0.5
