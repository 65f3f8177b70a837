"""Shared fixtures: a real Redis (started by run_tests.py), an in-process Celery worker, the job rows."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celery.contrib.testing.tasks  # noqa: F401 - registers celery.ping, which start_worker pings
import pytest
import redis
from celery.app.trace import reset_worker_optimizations, setup_worker_optimizations
from celery.contrib.testing.worker import start_worker
from celery.signals import before_task_publish
from celery.utils.nodenames import anon_nodename
from celery.worker import WorkController
from config.celery import app as celery_app
from config.redis import app_key, get_redis
from config.settings.env import redis_db_url
from django.conf import settings
from django.db import connections
from django.test import Client
from jobs.models import Job

TASK_QUEUES = ["default", "high", "low"]
RESULT_TIMEOUT = 30
POLL_SECONDS = 0.02


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the WAL files of the test database: pytest-django deletes only the database file, and
    a failed test can leave a connection open that keeps them."""
    name = settings.DATABASES["default"]["TEST"]["NAME"]
    for suffix in ("-wal", "-shm"):
        Path(f"{name}{suffix}").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def redis_admin() -> redis.Redis:
    """A client allowed everything (when run_tests.py provides one), for inspecting what the app wrote."""
    url = os.environ.get("REDIS_ADMIN_URL") or settings.REDIS_URL
    return redis.Redis.from_url(redis_db_url(url, 0), decode_responses=True)


@pytest.fixture
def app_redis() -> redis.Redis:
    return get_redis()


@pytest.fixture(scope="module")
def celery_worker(django_db_setup: None, django_db_blocker) -> Iterator[WorkController]:
    """A real worker in a thread, consuming every queue of the in-memory broker.

    Its task_prerun/task_postrun handlers (jobs.signals) update job rows from the worker's own
    thread and database connection: the test database must exist first (django_db_setup) and
    pytest-django's blocker must let that thread in for as long as the worker runs. A test that
    runs jobs on it needs ``django_db(transaction=True)``: only committed rows are visible to the
    worker's connection, as they would be to a worker on another host.
    """
    hostname = anon_nodename()
    # What `celery worker` does before it starts (celery.apps.worker): tasks are traced with the
    # node name as request.hostname, which is what a job row records as its worker.
    setup_worker_optimizations(celery_app, hostname)
    # Messages left by earlier tests that only submitted jobs must not run here.
    celery_app.control.purge()
    try:
        with (
            django_db_blocker.unblock(),
            start_worker(celery_app, pool="solo", queues=TASK_QUEUES, shutdown_timeout=30, hostname=hostname) as worker,
        ):
            yield worker
    finally:
        reset_worker_optimizations(celery_app)


@pytest.fixture
def api_client() -> Client:
    return Client(headers={"Authorization": f"Bearer {settings.APP_API_TOKEN}"})


@pytest.fixture
def fresh_heartbeat(app_redis: redis.Redis) -> float:
    now = time.time()
    app_redis.set(app_key("beat", "last"), repr(now))
    return now


def _finished(job: Job) -> bool:
    return job.state in Job.FINISHED


def wait_for_job(job_id: str, until: Callable[[Job], bool] = _finished, timeout: float = RESULT_TIMEOUT) -> Job:
    """Poll the job's row until ``until(row)`` (by default: an outcome is recorded); else the last row read.

    The worker records the outcome (task_postrun) after the result reached the backend, so a
    test that waited for the result must still wait for the row.
    """
    deadline = time.monotonic() + timeout
    while True:
        job = Job.objects.get(id=job_id)
        if until(job) or time.monotonic() > deadline:
            return job
        time.sleep(POLL_SECONDS)


@dataclass(frozen=True)
class PublishedTask:
    task_id: str
    name: str
    queue: str
    # The job row's state as another database connection saw it when the task was published:
    # None when no committed row had that id.
    committed_state: str | None


def _committed_state(job_id: str) -> str | None:
    """The row's state read on a fresh connection (another thread): only what is committed."""
    seen: list[str | None] = []

    def read() -> None:
        try:
            seen.append(Job.objects.filter(id=job_id).values_list("state", flat=True).first())
        finally:
            connections.close_all()

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(RESULT_TIMEOUT)
    return seen[0] if seen else "<unreadable>"


@pytest.fixture
def published_tasks() -> Iterator[list[PublishedTask]]:
    """Every task message published during the test, in order, with what the database held then."""
    published: list[PublishedTask] = []

    def record(sender: str, headers: dict[str, Any], routing_key: str, **_: Any) -> None:
        published.append(PublishedTask(headers["id"], sender, routing_key, _committed_state(headers["id"])))

    before_task_publish.connect(record, weak=False)
    try:
        yield published
    finally:
        before_task_publish.disconnect(record)
