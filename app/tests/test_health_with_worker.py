"""/healthz with a real worker answering pings: the all-healthy case and the ping cache."""

from __future__ import annotations

import pytest
from django.test import Client
from health import checks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_worker", "fresh_heartbeat")]


def test_healthz_returns_200_when_every_dependency_is_healthy(client: Client):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["workers"]["count"] == 1
    assert body["checks"]["beat"]["age_seconds"] < 5
    assert all("latency_ms" in check for check in body["checks"].values())


def test_worker_ping_is_cached_in_process_memory(settings):
    settings.HEALTH_WORKER_PING_CACHE_SECONDS = 60
    first = checks.check_workers()
    second = checks.check_workers()
    assert first["ok"] is True
    assert second["cached"] is True
    assert second["workers"] == first["workers"]
