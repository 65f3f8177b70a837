"""Shared fixtures: a real Redis (started by run_tests.py) and an in-process Celery worker."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import celery.contrib.testing.tasks  # noqa: F401 - registers celery.ping, which start_worker pings
import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.worker import WorkController
from config.celery import app as celery_app
from config.redis import app_key, get_redis
from config.settings.env import redis_db_url
from django.conf import settings
from django.test import Client

TASK_QUEUES = ["default", "high", "low"]
RESULT_TIMEOUT = 30


@pytest.fixture(scope="session")
def redis_admin() -> redis.Redis:
    """A client allowed everything (when run_tests.py provides one), for inspecting what the app wrote."""
    url = os.environ.get("REDIS_ADMIN_URL") or settings.REDIS_URL
    return redis.Redis.from_url(redis_db_url(url, 0), decode_responses=True)


@pytest.fixture
def app_redis() -> redis.Redis:
    return get_redis()


@pytest.fixture(scope="module")
def celery_worker() -> Iterator[WorkController]:
    """A real worker in a thread, consuming every queue of the in-memory broker."""
    # Messages left by earlier tests that only submitted jobs must not run here.
    celery_app.control.purge()
    with start_worker(celery_app, pool="solo", queues=TASK_QUEUES, shutdown_timeout=30) as worker:
        yield worker


@pytest.fixture
def api_client() -> Client:
    return Client(headers={"Authorization": f"Bearer {settings.APP_API_TOKEN}"})


@pytest.fixture
def fresh_heartbeat(app_redis: redis.Redis) -> float:
    now = time.time()
    app_redis.set(app_key("beat", "last"), repr(now))
    return now
