"""What a worker's main process records for a job when the task cannot: a hard time limit.

The hard time limit kills the pool's child in the middle of the task, so neither the task nor its
task_postrun handler (jobs/signals.py) runs again, and Celery sends no task_failure signal for it
either: the main process only marks the result failed (``Request.on_timeout``). This request
class does the same for the job's row, so a job killed at its limit reads FAILURE at once instead
of STARTED until jobs.reconcile finds it. Every task of the app uses it (config/celery.py:
``task_cls``).
"""

from __future__ import annotations

from celery import Task
from celery.exceptions import TimeLimitExceeded
from celery.worker import state as worker_state
from celery.worker.request import Request


class JobRequest(Request):
    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        # As Celery's own handler: a cold shutdown's kills are not the task's failure.
        if not soft and not worker_state.should_terminate:
            from .signals import record_killed  # noqa: PLC0415 - the models load after this module

            record_killed(self.id, TimeLimitExceeded(timeout))


class AppTask(Task):
    Request = JobRequest
