"""/healthz with a real worker answering pings: the all-healthy case and the ping cache."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
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


def test_celery_health_command_reports_the_worker_and_beat():
    out = StringIO()
    call_command("celery_health", "--timeout", "2", stdout=out)
    report = json.loads(out.getvalue())
    assert report["status"] == "ok", report
    assert report["workers"]["answered"], report
    assert report["beat"]["ok"] is True


def test_celery_health_command_fails_when_a_named_worker_is_missing():
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("celery_health", "--timeout", "1", "--worker", "ghost@nowhere", stdout=out)
    report = json.loads(out.getvalue())
    assert report["workers"]["missing"] == ["ghost@nowhere"]
