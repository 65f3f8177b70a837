"""Settling the job rows no worker will: jobs.reconcile, sent by beat (config/settings/base.py).

A row is STARTED or RETRY while a worker owns its task. Most ways a run ends update it (task_postrun,
the hard time limit in jobs/worker.py), but some leave it as it was for good: a message RabbitMQ
dead-letters after the delivery limit (every delivery killed its worker), a worker host that never
comes back with a task no other worker was handed, a database that was down when the outcome was
to be written. A run cannot outlast the hard time limit, so a row still STARTED or RETRY that long
after its last start (JOBS_LOST_AFTER_SECONDS: the limit and a minute) gets its outcome here:
Celery's result backend's, when it has one (the database was down at the end), else LOST.

LOST is not final: a delivery still to come (a message requeued behind a long backlog) records its
start and outcome over it, as for any row.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from celery import states
from celery.result import AsyncResult
from django.utils import timezone

from .models import Job
from .signals import error_text, summary

# Rows per run: a backlog of stale rows (an outage of every worker) is settled over a few runs.
BATCH = 500
UNSETTLED = (Job.State.STARTED, Job.State.RETRY)


def _outcome(job: Job, lost_after_seconds: float) -> dict[str, object]:
    result = AsyncResult(str(job.id))
    if result.state == states.SUCCESS:
        return {"state": Job.State.SUCCESS, "result": summary(result.result), "error": ""}
    if result.state == states.FAILURE:
        return {"state": Job.State.FAILURE, "error": error_text(result.result)}
    return {
        "state": Job.State.LOST,
        "error": (
            f"no outcome {lost_after_seconds:.0f} s after its last start: its worker died, or RabbitMQ "
            "dead-lettered the message after the delivery limit (see the dead-letters queue)"
        ),
    }


def settle_stale_jobs(lost_after_seconds: float) -> dict[str, int]:
    """Give every row unsettled since longer than ``lost_after_seconds`` an outcome; the count of each."""
    now = timezone.now()
    stale = Job.objects.filter(state__in=UNSETTLED, started_at__lt=now - timedelta(seconds=lost_after_seconds))
    settled: Counter[str] = Counter()
    for job in stale.only("id", "state", "started_at").order_by("started_at")[:BATCH]:
        fields = _outcome(job, lost_after_seconds)
        # Only the row as it was read: a delivery that started it again meanwhile owns it.
        updated = Job.objects.filter(id=job.id, state=job.state, started_at=job.started_at).update(
            finished_at=now, **fields
        )
        if updated:
            settled[str(fields["state"])] += 1
    return dict(settled)
