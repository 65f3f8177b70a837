"""What RabbitMQ does for the app, on the real node run_tests.py starts: confirms, queues, delays, limits.

No worker of this module consumes the app's own queues: the in-process worker (conftest's
``celery_worker``) is not used here, and the prefork worker started below consumes only
``tests.prefork`` (tests/broker_settings.py), running the app's tasks and the tests' own
(tests/broker_tasks.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import states
from celery.exceptions import TimeLimitExceeded
from config.celery import app as celery_app
from config.redis import app_key
from django.conf import settings
from django.db import connection
from jobs import tasks
from jobs.models import Charge, Job, Notification
from jobs.submit import parse_job, submit
from kombu import Queue

from tests import broker_tasks
from tests.broker_settings import PREFORK_QUEUE
from tests.conftest import TASK_QUEUES, RabbitMQ, queue_depth, wait_for_job, wait_until

APP_DIR = Path(__file__).resolve().parent.parent
DLX_QUEUE = "dead-letters"
# A queue nobody consumes, for messages whose arrival is the point.
CONFIRMS_QUEUE = Queue(
    "tests.confirms",
    PREFORK_QUEUE.exchange,
    routing_key="tests.confirms",
    queue_arguments=PREFORK_QUEUE.queue_arguments,
)
# How long a publish is watched while the node is paused: a publish that waits for nothing
# returns within milliseconds.
PAUSE_SECONDS = 3.0
RESUME_TIMEOUT = 30
HARD_TIME_LIMIT = 3
SOFT_TIME_LIMIT = 1
WORKER_START_TIMEOUT = 60
COUNTDOWN = 3
POISON_DELIVERY_LIMIT = 1
# Native delayed delivery: one quorum queue per bit of the delay, celery_delayed_0 (1 s) to _27.
DELAYED_QUEUES = [f"celery_delayed_{level}" for level in range(28)]


def _purge(name: str) -> None:
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(name)


def _take(name: str) -> Any:
    """Take the oldest message off a queue (acknowledged at once); None when it is empty."""
    with celery_app.connection_for_write() as conn:
        return conn.default_channel.basic_get(name, no_ack=True)


def _declare(queue: Queue) -> None:
    with celery_app.connection_for_write() as conn:
        queue(conn.default_channel).declare()


def _waiting(names: list[str]) -> dict[str, int]:
    """The queues among ``names`` that hold ready messages, and how many (one connection)."""
    with celery_app.connection_for_write() as conn:
        channel = conn.default_channel
        depths = {name: channel.queue_declare(queue=name, passive=True).message_count for name in names}
    return {name: depth for name, depth in depths.items() if depth}


@pytest.fixture
def confirms_queue() -> Iterator[Queue]:
    _declare(CONFIRMS_QUEUE)
    _purge(CONFIRMS_QUEUE.name)
    yield CONFIRMS_QUEUE
    _purge(CONFIRMS_QUEUE.name)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def prefork_worker(tmp_path_factory: pytest.TempPathFactory, django_db_setup: None) -> Iterator[str]:
    """``celery -A config worker -P prefork -c 1`` consuming ``tests.prefork``: its node name.

    It updates job rows in the tests' own database (a test that reads them needs
    ``django_db(transaction=True)``: only committed rows are shared).
    """
    name = f"prefork-{uuid.uuid4().hex[:8]}@localhost"
    log_path = tmp_path_factory.mktemp("prefork") / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.broker_settings",
        "APP_TESTS_DATABASE": connection.settings_dict["NAME"],
    }
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "prefork", "-c", "1",
        "-Q", PREFORK_QUEUE.name, "-I", broker_tasks.__name__, "-n", name, "-l", "INFO",
        "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    # In pytest's process group, which run_tests.py kills if the run is aborted.
    with log_path.open("w") as log:
        worker = subprocess.Popen(command, cwd=APP_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while not celery_app.control.ping(destination=[name], timeout=0.5):
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the prefork worker did not answer a ping:\n{log_path.read_text()[-3000:]}")
        yield name
    finally:
        # Warm shutdown: the worker stops its pool's children itself.
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def test_task_queues_are_quorum_queues_under_the_production_policies(rabbitmq: RabbitMQ):
    # What a worker declares when it starts, before it consumes.
    for queue in celery_app.amqp.queues.values():
        _declare(queue)
    queues = rabbitmq.queues()
    policies = rabbitmq.policies()
    seen = {name: (queues[name]["type"], queues[name]["policy"]) for name in [*TASK_QUEUES, DLX_QUEUE]}
    assert seen == {
        "default": ("quorum", "quorum-defaults"),
        "high": ("quorum", "quorum-defaults"),
        "low": ("quorum", "quorum-defaults"),
        "heartbeat": ("quorum", "liveness"),
        DLX_QUEUE: ("quorum", "dead-letter-queue"),
    }
    # RabbitMQ applies one policy per queue, the one of highest priority: these are the keys in force.
    assert policies["quorum-defaults"]["definition"] == {"delivery-limit": 10, "dead-letter-exchange": "dlx"}
    assert policies["liveness"]["definition"] == {"max-length": 1, "overflow": "drop-head"}
    assert policies["dead-letter-queue"]["definition"] == {"max-length": 100000, "overflow": "drop-head"}


def test_a_publish_returns_once_the_broker_has_confirmed_the_message(rabbitmq: RabbitMQ, confirms_queue: Queue):
    with celery_app.producer_or_acquire() as producer:
        tasks.add.apply_async((1, 2), queue=confirms_queue, producer=producer)
        depth = queue_depth(confirms_queue.name)
        local_port = producer.channel.connection.sock.getsockname()[1]
        channel_name = f"127.0.0.1:{local_port} -> 127.0.0.1:{producer.connection.port} ({producer.channel.channel_id})"
        channels = {channel["name"]: channel for channel in rabbitmq.channels()}
    assert depth == 1
    # The broker's view of the channel the task went out on: in confirm mode, nothing left unconfirmed.
    assert channels[channel_name]["confirm"] is True, channels
    assert channels[channel_name]["messages_unconfirmed"] == 0, channels


def test_apply_async_on_an_open_connection_waits_out_a_paused_broker(rabbitmq: RabbitMQ, confirms_queue: Queue):
    """Celery's own publishing (workers' retries and canvases, beat) sets no confirm timeout: it
    waits for the broker as long as it takes. Only the web's submissions bound it (next test)."""
    outcome: list[Any] = []
    with celery_app.producer_or_acquire() as producer:
        tasks.add.apply_async((1, 2), queue=confirms_queue, producer=producer)

        def publish() -> None:
            try:
                outcome.append(tasks.add.apply_async((3, 4), queue=confirms_queue, producer=producer))
            except Exception as error:  # whatever the publish raises is the observation
                outcome.append(error)

        publisher = threading.Thread(target=publish)
        with rabbitmq.paused():
            publisher.start()
            publisher.join(PAUSE_SECONDS)
            returned_while_paused = list(outcome)
        resumed = time.monotonic()
        publisher.join(RESUME_TIMEOUT)
        waited_after_resume = time.monotonic() - resumed
    assert returned_while_paused == [], f"the publish returned while the broker was paused: {returned_while_paused}"
    assert not publisher.is_alive(), f"the publish did not return within {RESUME_TIMEOUT} s of the broker resuming"
    assert [type(item).__name__ for item in outcome] == ["AsyncResult"], outcome
    assert waited_after_resume < 5, f"the confirm came {waited_after_resume:.1f} s after the broker resumed"
    assert queue_depth(confirms_queue.name) == 2


@pytest.mark.django_db(transaction=True)
def test_a_submission_to_a_paused_broker_fails_within_its_confirm_timeout(rabbitmq: RabbitMQ):
    # The front doors' path (jobs.submit): a confirm waited for APP_PUBLISH_CONFIRM_TIMEOUT, then
    # one reconnection bounded by CELERY_BROKER_CONNECTION_TIMEOUT.
    bound = settings.APP_PUBLISH_CONFIRM_TIMEOUT + 2 * settings.CELERY_BROKER_CONNECTION_TIMEOUT + 1.0
    # A first submission opens the connection the second one finds in the pool.
    submit(parse_job("add", [1, 1]), None, "api")
    with rabbitmq.paused():
        started = time.monotonic()
        with pytest.raises(Exception) as raised:  # noqa: PT011 - kombu's error, whatever its class, is the answer
            submit(parse_job("add", [2, 2]), None, "api")
        failed_after = time.monotonic() - started
    job = Job.objects.latest("created_at")
    assert failed_after < bound, f"the submission failed after {failed_after:.1f} s ({raised.value!r})"
    assert (job.state, job.args) == (Job.State.NOT_QUEUED, [2, 2]), job.error
    # What this cannot say: the publish was already in the node's socket buffer, and the resumed
    # node usually routes it after all. NOT_QUEUED means "not confirmed": the task may still run.


def test_a_countdown_waits_in_rabbitmq_not_in_the_worker(prefork_worker: str):
    expected_at = datetime.now(UTC) + timedelta(seconds=COUNTDOWN)
    result = tasks.remind.apply_async((expected_at.isoformat(),), countdown=COUNTDOWN, queue=PREFORK_QUEUE)
    waiting = wait_until(lambda: _waiting(DELAYED_QUEUES), COUNTDOWN, "the countdown task in a celery_delayed_* queue")
    held = celery_app.control.inspect([prefork_worker], timeout=1.0).query_task(result.id)
    assert sum(waiting.values()) == 1, waiting
    assert held == {prefork_worker: {}}, f"the worker holds the task before its time: {held}"
    lateness = result.get(timeout=COUNTDOWN + 30)
    assert 0 <= lateness < 1.5, f"ran {lateness:.2f} s after its ETA"


def _job(kind: str) -> Job:
    """A job's row, committed, for a task the test sends itself with the row's id."""
    return Job.objects.create(kind=kind, args=[], submitted_by="api")


@pytest.mark.django_db(transaction=True)
def test_a_hard_time_limit_kills_the_child_and_the_worker_serves_on(prefork_worker: str, app_redis: redis.Redis):
    key = app_key("tests", uuid.uuid4().hex)
    job = _job("outlive")
    started = time.monotonic()
    # The limits a task can be sent with, overriding the worker's CELERY_TASK_*TIME_LIMIT (300/270 s).
    result = broker_tasks.outlive_the_soft_limit.apply_async(
        (key, 60), queue=PREFORK_QUEUE, time_limit=HARD_TIME_LIMIT, soft_time_limit=SOFT_TIME_LIMIT, task_id=str(job.id)
    )
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=HARD_TIME_LIMIT + 30)
    ended_after = time.monotonic() - started
    trace = app_redis.hgetall(key)
    killed = int(trace["pid"])
    assert "soft_limit_at" in trace, f"the soft limit ({SOFT_TIME_LIMIT} s) never reached the task: {trace}"
    assert HARD_TIME_LIMIT <= ended_after < HARD_TIME_LIMIT + 3, f"failed after {ended_after:.1f} s"
    assert result.state == states.FAILURE
    # No task_postrun in a killed child: the worker's main process wrote the row (jobs/worker.py).
    job = wait_for_job(str(job.id), timeout=5)
    assert (job.state, job.error) == (Job.State.FAILURE, f"TimeLimitExceeded: TimeLimitExceeded({HARD_TIME_LIMIT},)")
    wait_until(lambda: not _process_exists(killed), 10, f"the child {killed} that ran past the hard limit exiting")
    # The worker replaced its child and takes the next task.
    assert broker_tasks.process_id.apply_async(queue=PREFORK_QUEUE).get(timeout=30) != killed


@pytest.mark.django_db(transaction=True)
def test_a_poison_message_is_dead_lettered_after_the_delivery_limit(
    prefork_worker: str, rabbitmq: RabbitMQ, app_redis: redis.Redis
):
    # A policy of higher priority than quorum-defaults, for this queue only: RabbitMQ applies one
    # policy per queue, so it restates the dead-letter exchange with its lower limit.
    rabbitmq.set_policy(
        "tests-poison",
        r"^tests\.prefork$",
        {"delivery-limit": POISON_DELIVERY_LIMIT, "dead-letter-exchange": "dlx"},
        priority=20,
    )
    try:
        _purge(DLX_QUEUE)
        key = app_key("tests", uuid.uuid4().hex)
        job = _job("poison")
        result = broker_tasks.kill_own_process.apply_async((key,), queue=PREFORK_QUEUE, task_id=str(job.id))
        wait_until(lambda: queue_depth(DLX_QUEUE) == 1, 60, "the poison message in dead-letters")
    finally:
        rabbitmq.clear_policy("tests-poison")
    dead = _take(DLX_QUEUE)
    headers = dead.headers
    assert headers["id"] == result.id
    assert headers["x-first-death-queue"] == PREFORK_QUEUE.name
    assert headers["x-first-death-reason"] == "delivery_limit", headers
    assert [(death["queue"], death["reason"]) for death in headers["x-death"]] == [
        (PREFORK_QUEUE.name, "delivery_limit")
    ]
    # Each delivery killed a child (WorkerLostError) and was handed back (reject_on_worker_lost).
    assert int(app_redis.get(key)) == POISON_DELIVERY_LIMIT + 1
    assert queue_depth(PREFORK_QUEUE.name) == 0
    # Requeued each time, then dead-lettered by the broker: the task's last recorded state is the
    # one its first delivery wrote, and no worker will write another.
    assert result.state == states.STARTED
    assert Job.objects.get(id=job.id).state == Job.State.STARTED
    assert broker_tasks.process_id.apply_async(queue=PREFORK_QUEUE).get(timeout=30) > 0
    # jobs.reconcile settles it, once it has been unsettled longer than any run can take (here:
    # at once; beat sends it with JOBS_LOST_AFTER_SECONDS).
    assert tasks.reconcile.apply(kwargs={"lost_after_seconds": 0}).get() == {Job.State.LOST: 1}
    job.refresh_from_db()
    assert job.state == Job.State.LOST
    assert "dead-lettered the message after the delivery limit" in job.error


def _deliver_twice(rabbitmq: RabbitMQ, app_redis: redis.Redis, send: Any, task_id: str | None = None) -> str:
    """Send a task through the prefork worker with ``send(task_id)``; its first delivery dies right
    after the task returned, unacknowledged, and RabbitMQ delivers it again. Returns its id once
    the second delivery has finished and been acknowledged."""
    task_id = task_id or str(uuid.uuid4())
    app_redis.hset(broker_tasks.REDELIVER, task_id, 0)
    send(task_id)
    wait_until(
        lambda: app_redis.hget(broker_tasks.REDELIVER, f"{task_id}:finished") == "2", 60, "a second finished delivery"
    )
    assert app_redis.hget(broker_tasks.REDELIVER, task_id) == "2", "deliveries"
    # Ready or unacknowledged: none left once the second delivery is acknowledged.
    wait_until(lambda: rabbitmq.queues()[PREFORK_QUEUE.name]["messages"] == 0, 30, "the second delivery acknowledged")
    return task_id


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_charge_charges_once(prefork_worker: str, rabbitmq: RabbitMQ, app_redis: redis.Redis):
    key = uuid.uuid4().hex
    _deliver_twice(
        rabbitmq, app_redis, lambda task_id: tasks.charge.apply_async((key, 300), task_id=task_id, queue=PREFORK_QUEUE)
    )
    assert [charge.amount for charge in Charge.objects.filter(idempotency_key=key)] == [300]


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_notification_is_sent_once(prefork_worker: str, rabbitmq: RabbitMQ, app_redis: redis.Redis):
    task_id = _deliver_twice(
        rabbitmq,
        app_redis,
        lambda task_id: tasks.send_notification.apply_async(
            ("ops@example.test",), task_id=task_id, queue=PREFORK_QUEUE
        ),
    )
    assert [n.to for n in Notification.objects.filter(key=task_id)] == ["ops@example.test"]
    assert Notification.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_flaky_attempt_is_counted_once(prefork_worker: str, rabbitmq: RabbitMQ, app_redis: redis.Redis):
    key = uuid.uuid4().hex
    _deliver_twice(
        rabbitmq, app_redis, lambda task_id: tasks.flaky.apply_async((0, key), task_id=task_id, queue=PREFORK_QUEUE)
    )
    assert app_redis.scard(app_key("flaky", key)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_job_ends_with_one_outcome_on_its_row(
    prefork_worker: str, rabbitmq: RabbitMQ, app_redis: redis.Redis
):
    job = _job("add")
    _deliver_twice(
        rabbitmq,
        app_redis,
        lambda task_id: tasks.add.apply_async((2, 3), task_id=task_id, queue=PREFORK_QUEUE),
        task_id=str(job.id),
    )
    job = wait_for_job(str(job.id))
    assert (job.state, job.result, job.error) == (Job.State.SUCCESS, 5, "")
    assert job.worker == prefork_worker


def test_heartbeats_nobody_consumes_are_dropped_not_dead_lettered(rabbitmq: RabbitMQ):
    _declare(celery_app.amqp.queues["heartbeat"])
    _purge("heartbeat")
    assert rabbitmq.queues()["heartbeat"]["consumers"] == 0
    dead_letters = queue_depth(DLX_QUEUE)
    sent = [
        # What beat sends, with its schedule's options (expires).
        tasks.heartbeat.apply_async(**celery_app.conf.beat_schedule["heartbeat"]["options"]).id
        for _ in range(5)
    ]
    assert queue_depth("heartbeat") == 1
    assert queue_depth(DLX_QUEUE) == dead_letters
    assert _take("heartbeat").headers["id"] == sent[-1]
