"""The worker side of a job's row: the worker that runs a job's task records what happens to it.

Celery's own signals, so every task that is a job (its id is the row's) is covered without the
task's code knowing; tasks that are no job (heartbeat, a chord's header) update nothing. A
database that is down makes the update fail in the handler, which Celery logs; the task runs.
"""

from __future__ import annotations

import json
from typing import Any

from celery import states
from celery.signals import task_postrun, task_prerun
from django.utils import timezone

from .models import Job

RESULT_SUMMARY_LENGTH = 2000


def _summary(value: object) -> object:
    """The result as stored in the row: JSON as is when small, else a note of its size."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)[:RESULT_SUMMARY_LENGTH]
    if len(text) <= RESULT_SUMMARY_LENGTH:
        return value
    return {"truncated": True, "length": len(text), "start": text[:200]}


def _error(value: object) -> str:
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
        fields: dict[str, Any] = {"state": Job.State.SUCCESS, "result": _summary(retval), "error": ""}
    elif state == states.FAILURE:
        fields = {"state": Job.State.FAILURE, "error": _error(retval)}
    elif state == states.RETRY:
        Job.objects.filter(id=task_id).update(state=Job.State.RETRY, error=_error(retval))
        return
    else:
        return
    Job.objects.filter(id=task_id).update(finished_at=timezone.now(), **fields)
