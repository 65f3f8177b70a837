"""Redis or RabbitMQ stopped or hanging (SIGSTOP): what needs it answers 503 in <= 2 s, the rest works.

A Redis server of its own for these tests (the suite's shared one stays up), stopped or paused
for real; the web's clients point at it as in production.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from jobs.models import Job
from redis import Redis
from redis.exceptions import RedisError

from tests.fixtures import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)
BUDGET_SECONDS = 2.0
SUBMIT = '{"kind": "add", "args": [1, 2]}'


class Victim:
    """A throwaway redis-server that a test stops or pauses."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.workdir = Path(tempfile.mkdtemp(prefix="failfast-redis-"))
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(RedisError):
                if Redis(port=self.port, socket_timeout=1).ping():
                    break
            assert time.monotonic() < deadline, "the victim redis-server did not start"
            time.sleep(0.05)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def close(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def victim(settings: Any, no_limits_counted: None) -> Iterator[Victim]:
    server = Victim()
    settings.REDIS_RESULTS_URL = server.url(0)
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": server.url(1)},
        "sessions": {**settings.CACHES["sessions"], "LOCATION": server.url(2)},
    }
    yield server
    server.close()


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@pytest.mark.parametrize("outage", ["stopped", "paused"])
def test_redis_unavailable_submissions_and_logins_get_503_fast_reads_still_work(
    victim: Victim, api_client: Client, outage: str
):
    user = make_user("alice")
    browser = Client()
    assert browser.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    job_id = api_client.post("/api/jobs/", data=SUBMIT, content_type="application/json").json()["id"]
    victim.stop() if outage == "stopped" else victim.pause()

    figures: dict[str, float] = {}
    submitted, figures["POST /api/jobs/"] = _timed(
        lambda: api_client.post("/api/jobs/", data=SUBMIT, content_type="application/json")
    )
    page, figures["GET / (logged in)"] = _timed(lambda: browser.get("/"))
    login, figures["POST /accounts/login/"] = _timed(
        lambda: Client().post("/accounts/login/", {"username": user.get_username(), "password": PASSWORD})
    )
    read, figures["GET /api/jobs/<id>/"] = _timed(lambda: api_client.get(f"/api/jobs/{job_id}/"))
    listing, figures["GET /api/jobs/"] = _timed(lambda: api_client.get("/api/jobs/"))
    ready, figures["GET /readyz"] = _timed(lambda: Client().get("/readyz"))
    sys.stdout.write(f"\n[failfast] Redis {outage}: " + "; ".join(f"{k} {v:.2f} s" for k, v in figures.items()) + "\n")

    for response in (submitted, page, login):
        assert response.status_code == 503
        assert response.json() == {
            "error": "the cache and sessions store (Redis) is unavailable; try again in a few seconds"
        }
        assert response["Retry-After"] == "5"
    # Reading a job needs PostgreSQL only; the list's counts are computed without the cache.
    assert read.status_code == 200
    assert listing.status_code == 200
    assert listing.json()["last_hour"] == {"PENDING": 1}
    assert ready.status_code == 503
    slow = {name: seconds for name, seconds in figures.items() if seconds > BUDGET_SECONDS}
    assert slow == {}, f"over {BUDGET_SECONDS} s: {slow}"


def test_rabbitmq_stopped_submissions_get_503_fast_and_the_row_says_not_queued(
    rabbitmq: Any, api_client: Client, no_limits_counted: None
):
    # stop_app closes the listeners and every connection, as a stopped service does to its clients.
    rabbitmq.ctl("stop_app")
    try:
        submitted, seconds = _timed(lambda: api_client.post("/api/jobs/", data=SUBMIT, content_type="application/json"))
        ready, ready_seconds = _timed(lambda: Client().get("/readyz"))
    finally:
        rabbitmq.ctl("start_app")
        rabbitmq.ctl("await_startup")
    sys.stdout.write(
        f"\n[failfast] RabbitMQ stopped: POST /api/jobs/ {seconds:.2f} s; GET /readyz {ready_seconds:.2f} s\n"
    )
    assert submitted.status_code == 503
    assert submitted.json()["error"].startswith("the job could not be queued (broker down)")
    assert submitted["Retry-After"] == "5"
    assert ready.status_code == 503
    assert seconds <= BUDGET_SECONDS
    assert ready_seconds <= BUDGET_SECONDS + 1
    job = Job.objects.get()
    assert job.state == Job.State.NOT_QUEUED
    # Back: the next submission is queued without anyone restarting the web.
    assert api_client.post("/api/jobs/", data=SUBMIT, content_type="application/json").status_code == 202
