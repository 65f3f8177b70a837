"""The tasks; other components (benchmarks, fault tests, beat) call them by these exact names.

Every task's message may be delivered more than once (acks_late: a worker lost in the middle hands
it back), so every effect is made safe to repeat:
- the effects that matter live in PostgreSQL (jobs.models) under a unique key: a charge (the
  caller's idempotency key), a notification (the task's id, which a redelivery keeps), a job's
  row (updated by the worker that runs it, jobs/signals.py, and by jobs.reconcile);
- jobs.flaky records each attempt (task id and retry number) in a Redis set, so a redelivered
  attempt is not counted twice; jobs.heartbeat overwrites one time stamp.
- jobs.sleep and jobs.record are the exception on purpose: they count executions, which is what
  the fault tests measure (lost work: 0, duplicated work: more than 1).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task
from config.redis import app_key, get_redis
from django.conf import settings
from django.db import OperationalError

from .models import Charge, Notification
from .reconcile import settle_stale_jobs

FLAKY_ATTEMPTS_TTL_SECONDS = 24 * 60 * 60
RUN_COUNTER_TTL_SECONDS = 7 * 24 * 60 * 60


class TransientError(Exception):
    """A failure worth retrying (a flaky dependency), as opposed to a bug."""


class ChargeConflictError(ValueError):
    """The idempotency key was used before for another amount: a client bug, never retried."""


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
    """Fail ``fail_times`` times, then succeed; returns the number of attempts it took.

    Each attempt is a member of the set ``app:flaky:<key>`` (task id and retry number), so the set
    counts attempts, not deliveries: a redelivered attempt adds nothing.
    """
    attempts_key = app_key("flaky", key)
    with get_redis().pipeline() as pipe:
        pipe.sadd(attempts_key, f"{self.request.id}:{self.request.retries}")
        pipe.expire(attempts_key, FLAKY_ATTEMPTS_TTL_SECONDS).execute()
    if self.request.retries < fail_times:
        raise TransientError(f"attempt {self.request.retries + 1} of {fail_times + 1} fails on purpose")
    return self.request.retries + 1


@shared_task(bind=True, name="jobs.urgent")
def urgent(self: Task, message: str) -> dict[str, Any]:
    return {"kind": "urgent", "message": message, **_ran_on(self)}


@shared_task(bind=True, name="jobs.report")
def report(self: Task, name: str) -> dict[str, Any]:
    return {"kind": "report", "name": name, **_ran_on(self)}


# A database that is down for a moment (a restart, a failover) is retried; the row makes the
# retry safe.
@shared_task(
    name="jobs.charge",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=10,
)
def charge(idempotency_key: str, amount: int) -> dict[str, Any]:
    """Charge once per idempotency key, however often the message is delivered.

    The charge is a row under a unique key, written in one transaction: a second delivery (a
    redelivery after a lost worker, a client's retry) finds the row and returns the first result;
    a delivery that died before its commit left nothing, so the next one charges. Nothing is
    claimed ahead, so nothing can outlive the retries and fail the redelivery.
    """
    charged, _ = Charge.objects.get_or_create(idempotency_key=idempotency_key, defaults={"amount": amount})
    if charged.amount != amount:
        raise ChargeConflictError(
            f"idempotency key {idempotency_key} was charged {charged.amount}, not {amount}: use a new key"
        )
    return charged.as_result()


@shared_task(bind=True, name="jobs.send_notification", rate_limit="30/m")
def send_notification(self: Task, to: str, key: str | None = None) -> dict[str, Any]:
    """Send once per key: the caller's, else the task's id (a redelivered message keeps its id).

    The sample sends nothing: the row is the notification. A real sender passes the key to its
    provider as the provider's idempotency key (e-mail and SMS APIs take one) before writing the
    row, which makes send-then-record safe to repeat as jobs.charge is.
    """
    notification, _ = Notification.objects.get_or_create(key=key or self.request.id, defaults={"to": to})
    return notification.as_result()


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


@shared_task(name="jobs.reconcile")
def reconcile(lost_after_seconds: float | None = None) -> dict[str, int]:
    """Settle the job rows whose task will never report back (jobs/reconcile.py); beat sends it."""
    return settle_stale_jobs(settings.JOBS_LOST_AFTER_SECONDS if lost_after_seconds is None else lost_after_seconds)


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
