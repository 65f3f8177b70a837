"""The worker side of a job's row: the worker that runs a job's task records what happens to it.

Celery's own signals, so every task that is a job (its id is the row's) is covered without the
task's code knowing; tasks that are no job (heartbeat, a chord's header) update nothing. A
database that is down makes the update fail in the handler, which Celery logs; the task runs.

Where no handler runs, others settle the row: the worker's main process when a hard time limit
kills the task (``record_killed``, from jobs/worker.py), and jobs.reconcile (jobs/reconcile.py)
for a task that never reports back (its worker gone for good, its message dead-lettered).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import states
from celery.signals import task_postrun, task_prerun
from django.db import connections
from django.utils import timezone

from .models import Job

RESULT_SUMMARY_LENGTH = 2000

logger = logging.getLogger(__name__)


def summary(value: object) -> object:
    """The result as stored in the row: JSON as is when small, else a note of its size."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)[:RESULT_SUMMARY_LENGTH]
    if len(text) <= RESULT_SUMMARY_LENGTH:
        return value
    return {"truncated": True, "length": len(text), "start": text[:200]}


def error_text(value: object) -> str:
    text = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else str(value)
    return text[: Job._meta.get_field("error").max_length]


@task_prerun.connect
def record_start(task_id: str, task: Any, **_: Any) -> None:
    # NOT_QUEUED is final for the web, not here: a publish that timed out waiting for its confirm
    # may still have reached the queue, and then the task does run.
    Job.objects.filter(id=task_id).exclude(state__in=(Job.State.SUCCESS, Job.State.FAILURE)).update(
        state=Job.State.STARTED, started_at=timezone.now(), worker=task.request.hostname or ""
    )


@task_postrun.connect
def record_outcome(task_id: str, retval: Any = None, state: str | None = None, **_: Any) -> None:
    if state == states.SUCCESS:
        fields: dict[str, Any] = {"state": Job.State.SUCCESS, "result": summary(retval), "error": ""}
    elif state == states.FAILURE:
        fields = {"state": Job.State.FAILURE, "error": error_text(retval)}
    elif state == states.RETRY:
        Job.objects.filter(id=task_id).update(state=Job.State.RETRY, error=error_text(retval))
        return
    else:
        return
    Job.objects.filter(id=task_id).update(finished_at=timezone.now(), **fields)


def record_killed(task_id: str, error: BaseException) -> None:
    """A job's task killed in its child (hard time limit): FAILURE, written by the worker's main process."""
    try:
        Job.objects.filter(id=task_id).exclude(state__in=(Job.State.SUCCESS, Job.State.FAILURE)).update(
            state=Job.State.FAILURE, error=error_text(error), finished_at=timezone.now()
        )
    except Exception:
        # The main process runs the pool: an unreachable database costs this row (jobs.reconcile
        # settles it later from the result backend), never the worker.
        logger.exception("could not record the hard time limit of task %s on its job row", task_id)
    finally:
        # The main process forks the pool's next children: it keeps no connection they would share.
        connections.close_all()
