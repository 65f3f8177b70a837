"""Each task's behaviour, run by a real worker through the test RabbitMQ node and the real Redis result backend."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery import states
from celery.result import AsyncResult
from celery.signals import task_retry
from celery.worker import WorkController
from config.celery import app as celery_app
from config.redis import app_key
from django.db import IntegrityError, connection, connections
from django.test import Client
from jobs import tasks, workflows
from jobs.models import Charge, Notification

from tests.conftest import RESULT_TIMEOUT, wait_for_job

# Every task the worker runs goes through the job-row signal handlers: each test gets committed
# rows the worker's connection can see, and a flushed database after.
pytestmark = [pytest.mark.usefixtures("celery_worker"), pytest.mark.django_db(transaction=True)]


def test_add_returns_the_sum():
    assert tasks.add.delay(2, 3).get(timeout=RESULT_TIMEOUT) == 5


def test_chain_feeds_the_sum_into_multiply():
    assert workflows.add_then_multiply().apply_async().get(timeout=RESULT_TIMEOUT) == 16


def test_group_returns_every_square_in_order():
    assert workflows.squares(5).apply_async().get(timeout=RESULT_TIMEOUT) == [0, 1, 4, 9, 16]


def test_chord_sums_the_squares_through_the_redis_backend():
    assert workflows.sum_of_squares(10).apply_async().get(timeout=RESULT_TIMEOUT) == 285


def test_flaky_retries_with_backoff_then_succeeds(app_redis: redis.Redis):
    key = uuid.uuid4().hex
    result = tasks.flaky.delay(2, key)
    assert result.get(timeout=RESULT_TIMEOUT) == 3
    assert app_redis.scard(app_key("flaky", key)) == 3


def test_flaky_gives_up_after_max_retries(app_redis: redis.Redis):
    key = uuid.uuid4().hex
    # Eager: the retries run immediately instead of after up to 30 s of backoff.
    result = tasks.flaky.apply(args=(10, key))
    assert result.state == states.FAILURE
    assert isinstance(result.result, tasks.TransientError)
    assert app_redis.smembers(app_key("flaky", key)) == {
        f"{result.id}:{retries}" for retries in range(1 + tasks.flaky.max_retries)
    }


def test_flaky_retry_policy_is_exponential_with_jitter():
    assert tasks.flaky.autoretry_for == (tasks.TransientError,)
    assert tasks.flaky.retry_backoff is True
    assert tasks.flaky.retry_backoff_max == 30
    assert tasks.flaky.retry_jitter is True
    assert tasks.flaky.max_retries == 5


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [("jobs.urgent", "high"), ("jobs.report", "low"), ("jobs.heartbeat", "heartbeat"), ("jobs.add", "default")],
)
def test_router_sends_each_task_to_its_queue(task_name: str, queue: str):
    route = celery_app.amqp.router.route({}, task_name)
    assert route["queue"].name == queue


def test_urgent_runs_from_the_high_queue():
    outcome = tasks.urgent.delay("page the on-call").get(timeout=RESULT_TIMEOUT)
    assert outcome["message"] == "page the on-call"
    assert outcome["queue"] == "high"
    assert outcome["hostname"]


def test_report_runs_from_the_low_queue():
    outcome = tasks.report.delay("monthly").get(timeout=RESULT_TIMEOUT)
    assert outcome == {"kind": "report", "name": "monthly", "hostname": outcome["hostname"], "queue": "low"}


def test_two_deliveries_of_one_charge_key_make_one_row_and_return_the_same_result():
    key = uuid.uuid4().hex
    first = tasks.charge.delay(key, 1250).get(timeout=RESULT_TIMEOUT)
    second = tasks.charge.delay(key, 1250).get(timeout=RESULT_TIMEOUT)
    assert first == second
    assert first["idempotency_key"] == key
    assert first["amount"] == 1250
    charge = Charge.objects.get(idempotency_key=key)
    assert (str(charge.charge_id), charge.amount) == (first["charge_id"], 1250)


def test_a_charge_key_reused_with_another_amount_fails_with_a_conflict_and_is_not_retried():
    key = uuid.uuid4().hex
    charged = tasks.charge.delay(key, 500).get(timeout=RESULT_TIMEOUT)
    retried: list[str] = []

    def record_retry(request: Any, **_: Any) -> None:
        retried.append(request.id)

    task_retry.connect(record_retry, weak=False)
    try:
        conflicting = tasks.charge.delay(key, 900)
        with pytest.raises(tasks.ChargeConflictError, match="was charged 500, not 900"):
            conflicting.get(timeout=RESULT_TIMEOUT)
    finally:
        task_retry.disconnect(record_retry)
    assert conflicting.state == states.FAILURE
    assert retried == []
    assert [charge.as_result() for charge in Charge.objects.filter(idempotency_key=key)] == [charged]


def test_concurrent_deliveries_of_one_charge_key_make_one_row():
    key = uuid.uuid4().hex
    deliveries = 8
    # Every delivery has looked the key up (and found nothing) before any of them inserts: the
    # unique key, not the order of arrival, has to keep the charge single.
    all_looked_up = threading.Barrier(deliveries, timeout=RESULT_TIMEOUT)
    rejected_inserts: list[str] = []

    def insert_together(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith('INSERT INTO "jobs_charge"'):
            all_looked_up.wait()
            try:
                return execute(sql, params, many, context)
            except IntegrityError as error:
                rejected_inserts.append(str(error))
                raise
        return execute(sql, params, many, context)

    def deliver() -> dict[str, Any]:
        # Each thread is a worker of its own, with its own database connection.
        try:
            with connection.execute_wrapper(insert_together):
                result = tasks.charge.apply(args=(key, 700))
            assert result.state == states.SUCCESS, result.result
            return result.result
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=deliveries) as pool:
        results = [future.result() for future in [pool.submit(deliver) for _ in range(deliveries)]]
    charge = Charge.objects.get(idempotency_key=key)
    assert results == [charge.as_result()] * deliveries
    assert len(rejected_inserts) == deliveries - 1


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_charge_succeeds_after_its_first_delivery_died(app_redis: redis.Redis):
    key = uuid.uuid4().hex
    # What a worker killed in the middle of a charge leaves behind in Redis: the idempotency
    # claim, which outlives the task's retries.
    app_redis.set(app_key("idem", key), "pending", ex=330)
    redelivered = tasks.charge.apply(args=(key, 500))
    assert redelivered.state == states.SUCCESS, redelivered.result
    from jobs.models import Charge  # noqa: PLC0415 - the model this test asks for

    assert Charge.objects.filter(idempotency_key=key).count() == 1


def test_a_notification_is_sent_once_per_key():
    key = uuid.uuid4().hex
    first = tasks.send_notification.delay("ops@example.test", key).get(timeout=RESULT_TIMEOUT)
    again = tasks.send_notification.delay("ops@example.test", key).get(timeout=RESULT_TIMEOUT)
    assert first == again
    assert first["key"] == key
    assert [n.as_result() for n in Notification.objects.filter(key=key)] == [first]


def test_send_notification_is_rate_limited_per_worker():
    # rate_limit "30/m": the worker holds a notification back until its token bucket (0.5 tokens a
    # second, room for one) has a token. kombu refills the bucket for all the time since it was
    # last refilled, which after an idle spell lets a second one through at once; the third waits
    # its 2 s either way. Unlimited, all three would run within milliseconds.
    sent = [tasks.send_notification.delay(f"ops{n}@example.test") for n in range(3)]
    assert [(result.get(timeout=RESULT_TIMEOUT)["to"], result.result["key"]) for result in sent] == [
        (f"ops{n}@example.test", result.id) for n, result in enumerate(sent)
    ]
    ran_at = sorted(result.date_done for result in sent)
    span = (ran_at[-1] - ran_at[0]).total_seconds()
    assert 1.5 <= span < 5, f"three notifications ran within {span:.2f} s"


def test_remind_sent_with_an_eta_runs_at_its_eta():
    # Held by RabbitMQ (native delayed delivery, tests/test_broker.py), then run by this worker.
    expected_at = datetime.now(UTC) + timedelta(seconds=2)
    lateness = tasks.remind.apply_async((expected_at.isoformat(),), eta=expected_at).get(timeout=RESULT_TIMEOUT)
    assert 0 <= lateness < 1.5, f"ran {lateness:.2f} s after its ETA"


def test_an_eta_less_than_a_second_ahead_cannot_be_sent():
    # Native delayed delivery counts whole seconds: Celery 5.6 turns the 0.x s left into a delay of
    # 0, which kombu refuses. Whoever computes an ETA must not send one this close.
    with pytest.raises(ValueError, match="countdown must be a positive number"):
        tasks.remind.apply_async((datetime.now(UTC).isoformat(),), eta=datetime.now(UTC) + timedelta(seconds=0.5))


def test_heartbeat_writes_the_time_to_app_beat_last(app_redis: redis.Redis):
    before = time.time()
    written = tasks.heartbeat.delay().get(timeout=RESULT_TIMEOUT)
    assert before <= written <= time.time()
    assert float(app_redis.get(app_key("beat", "last"))) == written


def test_beat_schedules_the_heartbeat_every_heartbeat_period():
    entry = celery_app.conf.beat_schedule["heartbeat"]
    assert entry["task"] == "jobs.heartbeat"
    assert entry["schedule"] == 10.0


def test_sleep_and_record_count_each_execution_per_token(app_redis: redis.Redis):
    run_id = uuid.uuid4().hex
    assert tasks.sleep.delay(0.2, run_id, "a").get(timeout=RESULT_TIMEOUT) == "a"
    assert tasks.record.delay(run_id, "b").get(timeout=RESULT_TIMEOUT) == "b"
    assert tasks.record.delay(run_id, "b").get(timeout=RESULT_TIMEOUT) == "b"
    assert app_redis.hgetall(app_key("runs", run_id)) == {"a": "1", "b": "2"}


def test_tasks_report_started_while_running():
    run_id = uuid.uuid4().hex
    result = tasks.sleep.delay(1.5, run_id, "t")
    deadline = time.monotonic() + RESULT_TIMEOUT
    while result.state != states.STARTED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result.state == states.STARTED
    assert result.get(timeout=RESULT_TIMEOUT) == "t"


def test_job_page_shows_the_finished_result_as_json(celery_worker: WorkController, user_client: Client):
    response = user_client.post("/", {"kind": "report", "text": "weekly"})
    task_id = response["Location"].strip("/").split("/")[-1]
    AsyncResult(task_id, app=celery_app).get(timeout=RESULT_TIMEOUT)
    assert wait_for_job(task_id).state == "SUCCESS"
    page = user_client.get(response["Location"]).content.decode()
    assert "SUCCESS" in page
    assert "&quot;queue&quot;: &quot;low&quot;" in page
    assert f'<code id="job-worker">{celery_worker.hostname}</code>' in page
    status = user_client.get(f"/jobs/{task_id}/status/").json()
    assert status["result"]["name"] == "weekly"
    assert status["worker"] == celery_worker.hostname
