"""One definition of the job kinds the UI and the JSON API accept: strict validation, then dispatch.

Both front doors go through ``parse_job`` so a request the API refuses cannot sneak in through the
form, and through ``submit`` so both record and send exactly the same jobs: a row in PostgreSQL,
and its task, sent once the row is committed (so a worker always finds the row it updates).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from celery.result import AsyncResult
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from . import tasks
from .models import Job
from .workflows import sum_of_squares

MAX_ABS_OPERAND = 10**12
MAX_SLEEP_SECONDS = 120
MAX_FAIL_TIMES = 5
MAX_CHORD_SIZE = 100
MAX_TEXT_LENGTH = 200
UI_RUN_ID = "ui"
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class JobValidationError(ValueError):
    """The request names an unknown kind or arguments of the wrong shape, type or range."""


@dataclass(frozen=True)
class JobSpec:
    kind: str
    args: tuple[Any, ...]


def _integer(value: object, name: str, low: int, high: int) -> int:
    # bool is an int subclass: true/false must not pass for 1/0.
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobValidationError(f"{name} must be an integer")
    if not low <= value <= high:
        raise JobValidationError(f"{name} must be between {low} and {high}")
    return value


def _seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobValidationError(f"{name} must be a number")
    if not 0 <= value <= MAX_SLEEP_SECONDS:
        raise JobValidationError(f"{name} must be between 0 and {MAX_SLEEP_SECONDS}")
    return float(value)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise JobValidationError(f"{name} must be a non-empty string")
    if len(value) > MAX_TEXT_LENGTH:
        raise JobValidationError(f"{name} must be at most {MAX_TEXT_LENGTH} characters")
    return value


def _identifier(value: object, name: str) -> str:
    # These become part of Redis key names: keep them short and unsurprising.
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise JobValidationError(f"{name} must be 1-100 characters of letters, digits, '_', '.' or '-'")
    return value


def _expect(args: Sequence[object], counts: tuple[int, ...], usage: str) -> None:
    if len(args) not in counts:
        raise JobValidationError(f"args must be {usage}")


def _add_args(args: Sequence[object]) -> tuple[Any, ...]:
    _expect(args, (2,), "[x, y]")
    return tuple(_integer(a, name, -MAX_ABS_OPERAND, MAX_ABS_OPERAND) for a, name in zip(args, "xy", strict=True))


def _sleep_args(args: Sequence[object]) -> tuple[Any, ...]:
    _expect(args, (1, 3), "[seconds] or [seconds, run_id, token]")
    seconds = _seconds(args[0], "seconds")
    if len(args) == 1:
        return (seconds, UI_RUN_ID, uuid.uuid4().hex)
    return (seconds, _identifier(args[1], "run_id"), _identifier(args[2], "token"))


def _flaky_args(args: Sequence[object]) -> tuple[Any, ...]:
    _expect(args, (1, 2), "[fail_times] or [fail_times, key]")
    fail_times = _integer(args[0], "fail_times", 0, MAX_FAIL_TIMES)
    key = _identifier(args[1], "key") if len(args) == 2 else uuid.uuid4().hex
    return (fail_times, key)


def _chord_args(args: Sequence[object]) -> tuple[Any, ...]:
    _expect(args, (1,), "[n]")
    return (_integer(args[0], "n", 1, MAX_CHORD_SIZE),)


def _urgent_args(args: Sequence[object]) -> tuple[Any, ...]:
    _expect(args, (1,), "[message]")
    return (_text(args[0], "message"),)


def _report_args(args: Sequence[object]) -> tuple[Any, ...]:
    _expect(args, (1,), "[name]")
    return (_text(args[0], "name"),)


def _publish_options() -> dict[str, Any]:
    """How a web request publishes: a confirm and a reconnection each bounded, so a broker that is
    down or hanging costs the request about a second or two (then 503), never a hung thread."""
    return {
        "confirm_timeout": settings.APP_PUBLISH_CONFIRM_TIMEOUT,
        "retry_policy": settings.APP_PUBLISH_RETRY_POLICY,
    }


def _send_chord(n: int, task_id: str) -> AsyncResult:
    # The chord's body gets the job's id: its outcome is the job's (the final sum).
    return sum_of_squares(n).apply_async(task_id=task_id, **_publish_options())


def _sender(task: Any) -> Callable[..., AsyncResult]:
    return lambda *args, task_id: task.apply_async(args=args, task_id=task_id, **_publish_options())


_KINDS: dict[str, tuple[Callable[[Sequence[object]], tuple[Any, ...]], Callable[..., AsyncResult]]] = {
    "add": (_add_args, _sender(tasks.add)),
    "sleep": (_sleep_args, _sender(tasks.sleep)),
    "flaky": (_flaky_args, _sender(tasks.flaky)),
    "chord": (_chord_args, _send_chord),
    "urgent": (_urgent_args, _sender(tasks.urgent)),
    "report": (_report_args, _sender(tasks.report)),
}
KINDS = tuple(_KINDS)


def parse_job(kind: object, args: object) -> JobSpec:
    if not isinstance(kind, str) or kind not in _KINDS:
        raise JobValidationError(f"kind must be one of: {', '.join(KINDS)}")
    if not isinstance(args, list):
        raise JobValidationError("args must be a list")
    validate, _ = _KINDS[kind]
    return JobSpec(kind, validate(args))


def parse_payload(payload: object) -> JobSpec:
    """Validate a decoded API body: exactly ``{"kind": str, "args": list}``."""
    if not isinstance(payload, dict):
        raise JobValidationError("body must be a JSON object")
    unknown = set(payload) - {"kind", "args"}
    if unknown:
        raise JobValidationError(f"unknown fields: {', '.join(sorted(unknown))}")
    if "kind" not in payload or "args" not in payload:
        raise JobValidationError('body must have "kind" and "args"')
    return parse_job(payload["kind"], payload["args"])


def _dispatch(spec: JobSpec, job_id: str) -> None:
    _, send = _KINDS[spec.kind]
    send(*spec.args, task_id=job_id)


def submit(spec: JobSpec, owner: AbstractBaseUser | None, submitted_by: str) -> Job:
    """Record the job and send its task once the row is committed.

    A broker that refuses the task (down, no confirm) leaves the row NOT_QUEUED and raises, so
    the caller answers 503; a database that is down raises before anything is sent.
    """
    job = Job(kind=spec.kind, args=list(spec.args), owner=owner, submitted_by=submitted_by)
    try:
        with transaction.atomic():
            job.save()
            transaction.on_commit(partial(_dispatch, spec, str(job.id)))
    except Exception as error:
        if job._state.adding:
            raise
        Job.objects.filter(id=job.id).update(
            state=Job.State.NOT_QUEUED,
            error=f"not queued: {type(error).__name__}"[: Job._meta.get_field("error").max_length],
            finished_at=timezone.now(),
        )
        raise
    return job
