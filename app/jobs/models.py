"""What the app keeps in PostgreSQL: the jobs people submit, and the effects tasks have (charges, notifications)."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models


class Job(models.Model):
    """One submission: written by the web tier with its task, updated by the worker that runs it."""

    class State(models.TextChoices):
        PENDING = "PENDING"
        STARTED = "STARTED"
        RETRY = "RETRY"
        SUCCESS = "SUCCESS"
        FAILURE = "FAILURE"
        # The row was written but the broker refused the task: nothing will run.
        NOT_QUEUED = "NOT_QUEUED"
        # No outcome came within the longest a run can take (jobs.reconcile): its worker died for
        # good, or RabbitMQ dead-lettered its message after the delivery limit. Not final: a
        # delivery that is still to come records its outcome over it.
        LOST = "LOST"

    FINISHED = (State.SUCCESS, State.FAILURE, State.NOT_QUEUED, State.LOST)

    # The Celery task id too: a worker finds its job by the id of the task it runs.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20)
    args = models.JSONField(default=list)
    # Whose job it is: a user (through the UI or their API token), or null for the service token.
    # Users see their own jobs only; the service token sees the service's.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    # The way in: "ui" (a logged-in browser) or "api" (a bearer token).
    submitted_by = models.CharField(max_length=150)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    # What the result was, small enough to list (the full result stays in Celery's backend).
    result = models.JSONField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    # The worker (Celery hostname) that ran it last.
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = (
            models.Index(fields=("state", "created_at")),
            # A user's job list, and the count of their unfinished jobs (access.limits).
            models.Index(fields=("owner", "created_at")),
        )

    def __str__(self) -> str:
        return f"{self.kind} {self.id} {self.state}"

    def as_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "id": str(self.id),
            "kind": self.kind,
            "state": self.state,
            "ready": self.state in self.FINISHED,
            "worker": self.worker,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }
        if self.state == self.State.SUCCESS:
            status["result"] = self.result
        elif self.error:
            status["error"] = self.error
        return status


class Charge(models.Model):
    """The effect of jobs.charge: at most one row per idempotency key, whatever the deliveries."""

    idempotency_key = models.CharField(max_length=100, unique=True)
    amount = models.BigIntegerField()
    charge_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    charged_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.idempotency_key}: {self.amount}"

    def as_result(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "amount": self.amount,
            "charge_id": str(self.charge_id),
            "charged_at": self.charged_at.isoformat(),
        }


class Notification(models.Model):
    """The effect of jobs.send_notification: at most one row per key, whatever the deliveries.

    The key is the task's id unless the caller gives one, and a redelivered message keeps its id.
    """

    key = models.CharField(max_length=100, unique=True)
    to = models.CharField(max_length=254)
    sent_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.to}"

    def as_result(self) -> dict[str, Any]:
        return {"to": self.to, "key": self.key, "sent_at": self.sent_at.isoformat()}
