"""The tasks; other components (benchmarks, fault tests, beat) call them by these exact names.

No task touches the database: web and workers do not share one. Shared state lives in Redis under
``app:`` (see config/redis.py), which is also how the fault tests count lost or duplicated work.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task
from config.redis import app_key, get_redis
from django.conf import settings

IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
RUN_COUNTER_TTL_SECONDS = 7 * 24 * 60 * 60
_PENDING = "pending"


class TransientError(Exception):
    """A failure worth retrying (a flaky dependency), as opposed to a bug."""


class ChargeInProgressError(TransientError):
    """Another execution holds the idempotency key and has not stored its result yet."""


def _ran_on(task: Task) -> dict[str, Any]:
    delivery_info = task.request.delivery_info or {}
    return {"hostname": task.request.hostname, "queue": delivery_info.get("routing_key")}


@shared_task(name="jobs.add")
def add(x: int, y: int) -> int:
    return x + y


@shared_task(name="jobs.multiply")
def multiply(x: int, y: int) -> int:
    return x * y


@shared_task(name="jobs.square")
def square(x: int) -> int:
    return x * x


@shared_task(name="jobs.tsum")
def tsum(numbers: list[int]) -> int:
    return sum(numbers)


@shared_task(
    bind=True,
    name="jobs.flaky",
    autoretry_for=(TransientError,),
    retry_backoff=True,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=5,
)
def flaky(self: Task, fail_times: int, key: str) -> int:
    """Fail ``fail_times`` times, then succeed; returns the number of attempts it took."""
    attempts_key = app_key("flaky", key)
    with get_redis().pipeline() as pipe:
        pipe.incr(attempts_key).expire(attempts_key, IDEMPOTENCY_TTL_SECONDS).execute()
    if self.request.retries < fail_times:
        raise TransientError(f"attempt {self.request.retries + 1} of {fail_times + 1} fails on purpose")
    return self.request.retries + 1


@shared_task(bind=True, name="jobs.urgent")
def urgent(self: Task, message: str) -> dict[str, Any]:
    return {"kind": "urgent", "message": message, **_ran_on(self)}


@shared_task(bind=True, name="jobs.report")
def report(self: Task, name: str) -> dict[str, Any]:
    return {"kind": "report", "name": name, **_ran_on(self)}


@shared_task(
    bind=True,
    name="jobs.charge",
    autoretry_for=(ChargeInProgressError,),
    retry_backoff=True,
    retry_backoff_max=10,
    max_retries=10,
)
def charge(self: Task, idempotency_key: str, amount: int) -> dict[str, Any]:
    """Charge once per idempotency key, however often the message is delivered.

    The key is claimed with SET NX before the work and then holds the JSON result for a day, so
    a redelivery (acks_late, worker lost) or a client retry returns the first result. A claim
    whose worker died expires after the task's hard time limit, letting a redelivery finish it.
    """
    client = get_redis()
    result_key = app_key("idem", idempotency_key)
    claim_ttl = int(settings.CELERY_TASK_TIME_LIMIT) + 30
    if not client.set(result_key, _PENDING, nx=True, ex=claim_ttl):
        stored = client.get(result_key)
        if stored is None or stored == _PENDING:
            raise ChargeInProgressError(f"charge {idempotency_key} is being processed")
        return json.loads(stored)
    executions_key = app_key("idem-executions", idempotency_key)
    with client.pipeline() as pipe:
        pipe.incr(executions_key).expire(executions_key, IDEMPOTENCY_TTL_SECONDS).execute()
    result = {
        "idempotency_key": idempotency_key,
        "amount": amount,
        "charge_id": str(uuid.uuid4()),
        "charged_at": datetime.now(UTC).isoformat(),
    }
    client.set(result_key, json.dumps(result), ex=IDEMPOTENCY_TTL_SECONDS)
    return result


@shared_task(name="jobs.send_notification", rate_limit="30/m")
def send_notification(to: str) -> dict[str, str]:
    return {"to": to, "status": "sent"}


@shared_task(name="jobs.remind")
def remind(expected_at_iso: str) -> float:
    """Return how late (seconds) the task ran compared to the ETA it was sent with."""
    expected = datetime.fromisoformat(expected_at_iso)
    if expected.tzinfo is None:
        expected = expected.replace(tzinfo=UTC)
    return (datetime.now(UTC) - expected).total_seconds()


@shared_task(name="jobs.heartbeat")
def heartbeat() -> float:
    """Record that beat scheduled and a worker ran this; /healthz reads the age."""
    now = time.time()
    get_redis().set(app_key("beat", "last"), repr(now))
    return now


def _count_run(run_id: str, token: str) -> None:
    runs_key = app_key("runs", run_id)
    with get_redis().pipeline() as pipe:
        pipe.hincrby(runs_key, token, 1).expire(runs_key, RUN_COUNTER_TTL_SECONDS).execute()


@shared_task(name="jobs.sleep")
def sleep(seconds: float, run_id: str, token: str) -> str:
    """Sleep, then count one execution of ``token``: a fault test finds lost (0) and duplicated (>1) tasks."""
    time.sleep(seconds)
    _count_run(run_id, token)
    return token


@shared_task(name="jobs.record")
def record(run_id: str, token: str) -> str:
    _count_run(run_id, token)
    return token
