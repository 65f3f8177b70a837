"""Each task's behaviour, run by a real worker (in-memory broker, real Redis result backend)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from celery import states
from celery.result import AsyncResult
from config.celery import app as celery_app
from config.redis import app_key
from django.test import Client
from jobs import tasks, workflows

from tests.conftest import RESULT_TIMEOUT

pytestmark = pytest.mark.usefixtures("celery_worker")


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
    assert app_redis.get(app_key("flaky", key)) == "3"


def test_flaky_gives_up_after_max_retries(app_redis: redis.Redis):
    key = uuid.uuid4().hex
    # Eager: the retries run immediately instead of after up to 30 s of backoff.
    result = tasks.flaky.apply(args=(10, key))
    assert result.state == states.FAILURE
    assert isinstance(result.result, tasks.TransientError)
    assert app_redis.get(app_key("flaky", key)) == str(1 + tasks.flaky.max_retries)


def test_flaky_retry_policy_is_exponential_with_jitter():
    assert tasks.flaky.autoretry_for == (tasks.TransientError,)
    assert tasks.flaky.retry_backoff is True
    assert tasks.flaky.retry_backoff_max == 30
    assert tasks.flaky.retry_jitter is True
    assert tasks.flaky.max_retries == 5


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [("jobs.urgent", "high"), ("jobs.report", "low"), ("jobs.heartbeat", "high"), ("jobs.add", "default")],
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


def test_charge_runs_once_for_two_calls_with_the_same_key(app_redis: redis.Redis):
    key = uuid.uuid4().hex
    first = tasks.charge.delay(key, 1250).get(timeout=RESULT_TIMEOUT)
    second = tasks.charge.delay(key, 1250).get(timeout=RESULT_TIMEOUT)
    assert first == second
    assert first["amount"] == 1250
    assert app_redis.get(app_key("idem-executions", key)) == "1"
    assert 0 < app_redis.ttl(app_key("idem", key)) <= tasks.IDEMPOTENCY_TTL_SECONDS


def test_charge_waits_for_a_charge_in_progress_instead_of_charging_again(app_redis: redis.Redis):
    key = uuid.uuid4().hex
    app_redis.set(app_key("idem", key), "pending", ex=60)
    result = tasks.charge.apply(args=(key, 500))
    assert isinstance(result.result, tasks.ChargeInProgressError)
    assert app_redis.get(app_key("idem-executions", key)) is None


def test_send_notification_is_rate_limited_to_30_per_minute():
    assert tasks.send_notification.rate_limit == "30/m"
    assert tasks.send_notification.delay("ops@example.test").get(timeout=RESULT_TIMEOUT) == {
        "to": "ops@example.test",
        "status": "sent",
    }


def test_remind_sent_with_a_countdown_reports_its_lateness():
    expected_at = datetime.now(UTC) + timedelta(seconds=1)
    lateness = tasks.remind.apply_async((expected_at.isoformat(),), eta=expected_at).get(timeout=RESULT_TIMEOUT)
    assert 0 <= lateness < 5


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


def test_job_page_shows_the_finished_result_as_json():
    client = Client()
    response = client.post("/", {"kind": "report", "text": "weekly"})
    task_id = client.session["jobs"][0]["id"]
    AsyncResult(task_id, app=celery_app).get(timeout=RESULT_TIMEOUT)
    page = client.get(response["Location"]).content.decode()
    assert "SUCCESS" in page
    assert "&quot;queue&quot;: &quot;low&quot;" in page
    assert client.get(f"/jobs/{task_id}/status/").json()["result"]["name"] == "weekly"
