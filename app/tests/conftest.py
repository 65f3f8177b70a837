"""Shared fixtures: the real Redis and RabbitMQ (started by run_tests.py), an in-process Celery worker, the job rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

pytest_plugins = ["tests.fixtures"]

# Every queue the app routes to (base.py's CELERY_TASK_QUEUES): a worker consumes them all.
TASK_QUEUES = [queue.name for queue in celery_app.conf.task_queues]
RESULT_TIMEOUT = 30
POLL_SECONDS = 0.02
RABBITMQCTL_TIMEOUT = 60


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the WAL files of the test database: pytest-django deletes only the database file, and
    a failed test can leave a connection open that keeps them."""
    name = settings.DATABASES["default"]["TEST"]["NAME"]
    for suffix in ("-wal", "-shm"):
        Path(f"{name}{suffix}").unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def task_queues_declared() -> None:
    """The broker as a deployed app leaves it: the task queues exist (a worker declares them when
    it starts, and they are durable), whether or not a test runs a worker."""
    with celery_app.connection_for_write() as conn:
        for queue in celery_app.amqp.queues.values():
            queue(conn.default_channel).declare()


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
    """A real worker in a thread, consuming every task queue of the test RabbitMQ node.

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
    # Messages left in the task queues by earlier tests that only submitted jobs must not run here.
    celery_app.control.purge()
    try:
        with (
            django_db_blocker.unblock(),
            start_worker(
                celery_app,
                pool="solo",
                queues=TASK_QUEUES,
                shutdown_timeout=30,
                hostname=hostname,
                # Celery's blocking loop, as for a transport without an event loop. In the event
                # loop a solo pool's acknowledgement waits for the loop's next turn, which with
                # this worker's timers comes up to 10 s later, and until then the broker holds
                # back the queue's next message (prefetch 1): every task after an idle spell would
                # start 10 s late, and stopping the worker would take as long.
                use_eventloop=False,
            ) as worker,
        ):
            yield worker
    finally:
        reset_worker_optimizations(celery_app)


@dataclass(frozen=True)
class RabbitMQ:
    """The test node's admin handle: rabbitmqctl for what only the broker knows (queue types,
    policies, channels) and its OS process, to pause it. Queue depths: ``queue_depth``, over AMQP."""

    ctl_path: str
    ctl_env: dict[str, str]
    beam_pid: int
    vhost: str

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            [self.ctl_path, "--quiet", *args],
            env=self.ctl_env,
            capture_output=True,
            text=True,
            timeout=RABBITMQCTL_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def ctl_json(self, *args: str) -> Any:
        return json.loads(self.ctl(*args, "--formatter", "json"))

    def queues(self) -> dict[str, dict[str, Any]]:
        """The vhost's queues as the broker has them: type, arguments, the policy applied, messages."""
        rows = self.ctl_json(
            "list_queues", "-p", self.vhost, "name", "type", "arguments", "policy", "messages", "consumers"
        )
        return {row["name"]: row for row in rows}

    def policies(self) -> dict[str, dict[str, Any]]:
        """The vhost's policies by name, each definition decoded (rabbitmqctl gives it as a JSON string)."""
        rows = self.ctl_json("list_policies", "-p", self.vhost)
        return {row["name"]: {**row, "definition": json.loads(row["definition"])} for row in rows}

    def set_policy(self, name: str, pattern: str, definition: dict[str, Any], priority: int) -> None:
        # "queues": Debian 12's RabbitMQ (3.10) has no "quorum_queues" yet.
        self.ctl(
            "set_policy",
            "-p",
            self.vhost,
            "--priority",
            str(priority),
            "--apply-to",
            "queues",
            name,
            pattern,
            json.dumps(definition),
        )

    def clear_policy(self, name: str) -> None:
        self.ctl("clear_policy", "-p", self.vhost, name)

    def channels(self) -> list[dict[str, Any]]:
        return self.ctl_json("list_channels", "name", "vhost", "confirm", "messages_unconfirmed")

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The node frozen (SIGSTOP): its sockets accept and buffer, nothing answers. Resumed after."""
        os.kill(self.beam_pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.beam_pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def rabbitmq() -> RabbitMQ:
    missing = [name for name in ("RABBITMQCTL", "RABBITMQCTL_HOME", "RABBITMQ_BEAM_PID") if not os.environ.get(name)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not set: run the suite with `python3 app/run_tests.py`")
    return RabbitMQ(
        ctl_path=os.environ["RABBITMQCTL"],
        # rabbitmqctl reads RABBITMQ_NODENAME and ERL_EPMD_PORT from the environment, the cookie from $HOME.
        ctl_env={**os.environ, "HOME": os.environ["RABBITMQCTL_HOME"]},
        beam_pid=int(os.environ["RABBITMQ_BEAM_PID"]),
        vhost=celery_app.connection_for_write().virtual_host,
    )


def queue_depth(name: str) -> int:
    """Messages ready in a queue, from the broker (a passive declare: the queue must exist)."""
    with celery_app.connection_for_write() as conn:
        return conn.default_channel.queue_declare(queue=name, passive=True).message_count


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(POLL_SECONDS)


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
