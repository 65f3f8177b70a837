"""A job's row through its life: written by the web tier, then updated by the worker that runs it.

Jobs go in through the real front doors (API, UI), run on the real worker thread, and the row is
read back from the database: the state, the worker's hostname, the times, the result or the error.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from celery import states
from celery.signals import task_postrun, task_prerun
from celery.worker import WorkController
from config.celery import app as celery_app
from django.conf import settings
from django.test import Client
from django.utils import timezone
from jobs import tasks
from jobs.models import Job

from tests.conftest import RESULT_TIMEOUT, wait_for_job

pytestmark = [pytest.mark.usefixtures("celery_worker"), pytest.mark.django_db(transaction=True)]


def _submit(api_client: Client, kind: str, args: list[Any]) -> str:
    response = api_client.post(
        "/api/jobs/", data=json.dumps({"kind": kind, "args": args}), content_type="application/json"
    )
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_the_worker_records_started_with_its_hostname_while_the_job_runs(
    api_client: Client, celery_worker: WorkController
):
    job_id = _submit(api_client, "sleep", [1.0, "rows", uuid.uuid4().hex])
    running = wait_for_job(job_id, until=lambda job: job.state != Job.State.PENDING)
    assert running.state == Job.State.STARTED
    assert running.worker == celery_worker.hostname
    assert running.started_at is not None
    assert running.started_at >= running.created_at
    assert running.finished_at is None
    status = api_client.get(f"/api/jobs/{job_id}/").json()
    assert (status["state"], status["ready"], status["worker"]) == ("STARTED", False, celery_worker.hostname)
    assert status["started_at"] == running.started_at.isoformat()
    assert wait_for_job(job_id).state == Job.State.SUCCESS


def test_the_worker_records_success_with_the_result_and_the_finish_time(
    api_client: Client, celery_worker: WorkController
):
    job_id = _submit(api_client, "add", [2, 3])
    job = wait_for_job(job_id)
    assert job.state == Job.State.SUCCESS
    assert job.result == 5
    assert job.error == ""
    assert job.worker == celery_worker.hostname
    assert job.created_at <= job.started_at <= job.finished_at
    status = api_client.get(f"/api/jobs/{job_id}/").json()
    assert status == {
        "id": job_id,
        "kind": "add",
        "state": "SUCCESS",
        "ready": True,
        "worker": celery_worker.hostname,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat(),
        "finished_at": job.finished_at.isoformat(),
        "result": 5,
    }


def test_a_job_submitted_through_the_ui_is_run_and_recorded_by_the_worker(
    celery_worker: WorkController, user_client: Client
):
    response = user_client.post("/", {"kind": "urgent", "text": "page the on-call"})
    assert response.status_code == 302
    job = wait_for_job(response["Location"].rstrip("/").rsplit("/", 1)[-1])
    assert (job.submitted_by, job.state, job.worker) == ("ui", Job.State.SUCCESS, celery_worker.hostname)
    assert job.owner.username == "alice"
    assert job.result == {
        "kind": "urgent",
        "message": "page the on-call",
        "hostname": celery_worker.hostname,
        "queue": "high",
    }


def test_a_chord_job_is_recorded_with_the_outcome_of_its_body(api_client: Client):
    job_id = _submit(api_client, "chord", [4])
    job = wait_for_job(job_id)
    assert job.state == Job.State.SUCCESS
    assert job.result == 0 + 1 + 4 + 9


def test_a_flaky_job_is_recorded_as_retrying_then_succeeds(api_client: Client):
    # What the row said right after each attempt of each task, read on the worker once the job's
    # own handler had updated it (receivers run in the order they were connected).
    after_attempts: list[tuple[str, str, tuple[str, str] | None]] = []

    def read_row(task_id: str, state: str, **_: Any) -> None:
        after_attempts.append((task_id, state, Job.objects.filter(id=task_id).values_list("state", "error").first()))

    task_postrun.connect(read_row, weak=False)
    try:
        job_id = _submit(api_client, "flaky", [1, uuid.uuid4().hex])
        job = wait_for_job(job_id)
    finally:
        task_postrun.disconnect(read_row)
    assert job.state == Job.State.SUCCESS
    assert job.result == 2
    assert job.error == ""
    rows = [(task_state, row) for task_id, task_state, row in after_attempts if task_id == job_id]
    assert [(task_state, row[0]) for task_state, row in rows] == [("RETRY", "RETRY"), ("SUCCESS", "SUCCESS")]
    assert "attempt 1 of 2 fails on purpose" in rows[0][1][1]


def test_a_failing_task_is_recorded_as_failure_with_its_error(api_client: Client, celery_worker: WorkController):
    key = uuid.uuid4().hex
    tasks.charge.delay(key, 100).get(timeout=RESULT_TIMEOUT)
    job = Job.objects.create(kind="charge", args=[key, 200], submitted_by="api")
    tasks.charge.apply_async((key, 200), task_id=str(job.id))
    job = wait_for_job(str(job.id))
    assert job.state == Job.State.FAILURE
    assert job.error == f"ChargeConflictError: idempotency key {key} was charged 100, not 200: use a new key"
    assert job.worker == celery_worker.hostname
    assert job.finished_at is not None
    assert job.result is None
    status = api_client.get(f"/api/jobs/{job.id}/").json()
    assert (status["state"], status["ready"], status["error"]) == ("FAILURE", True, job.error)
    assert "result" not in status


def test_a_flaky_job_run_past_its_retries_is_recorded_as_failure():
    key = uuid.uuid4().hex
    job = Job.objects.create(kind="flaky", args=[10, key], submitted_by="api")
    # Eager: the retries run at once instead of after up to 30 s of backoff each; the same
    # signal handlers record every attempt under the same task id.
    result = tasks.flaky.apply(args=(10, key), task_id=str(job.id))
    assert isinstance(result.result, tasks.TransientError)
    job.refresh_from_db()
    attempts = tasks.flaky.max_retries + 1
    assert job.state == Job.State.FAILURE
    assert job.error == f"TransientError: attempt {attempts} of 11 fails on purpose"
    assert job.finished_at is not None
    assert job.started_at is not None


def test_a_finished_job_is_not_turned_back_into_started_when_its_task_is_delivered_again():
    # A redelivery (acks_late after a lost worker) of a job already recorded as finished.
    job = Job.objects.create(kind="add", args=[1, 1], submitted_by="api", state=Job.State.SUCCESS, result=2)
    seen_at_start: list[str] = []

    def read_row(task_id: str, **_: Any) -> None:
        if task_id == str(job.id):
            seen_at_start.append(Job.objects.get(id=task_id).state)

    task_prerun.connect(read_row, weak=False)
    try:
        tasks.add.apply_async((1, 1), task_id=str(job.id)).get(timeout=RESULT_TIMEOUT)
    finally:
        task_prerun.disconnect(read_row)
    assert seen_at_start == ["SUCCESS"]
    job = wait_for_job(str(job.id), until=lambda job: job.finished_at is not None)
    assert job.started_at is None
    assert job.finished_at is not None


def _unsettled(state: str, started_seconds_ago: float) -> Job:
    return Job.objects.create(
        kind="add",
        args=[1, 1],
        submitted_by="api",
        state=state,
        started_at=timezone.now() - timedelta(seconds=started_seconds_ago),
    )


def test_reconcile_settles_only_the_rows_unsettled_longer_than_a_run_can_take():
    lost_after = settings.JOBS_LOST_AFTER_SECONDS
    stale = _unsettled(Job.State.STARTED, lost_after + 5)
    stale_retry = _unsettled(Job.State.RETRY, lost_after + 5)
    running = _unsettled(Job.State.STARTED, lost_after - 30)
    succeeded = _unsettled(Job.State.STARTED, lost_after + 5)
    failed = _unsettled(Job.State.STARTED, lost_after + 5)
    # What the result backend knows when the worker could not write the row (database down).
    celery_app.backend.store_result(str(succeeded.id), {"sum": 2}, states.SUCCESS)
    celery_app.backend.store_result(str(failed.id), ValueError("bad input"), states.FAILURE)

    settled = tasks.reconcile.apply().get()

    assert settled == {"LOST": 2, "SUCCESS": 1, "FAILURE": 1}
    rows = {job.id: job for job in Job.objects.all()}
    for lost in (stale, stale_retry):
        assert rows[lost.id].state == Job.State.LOST
        assert rows[lost.id].error.startswith(f"no outcome {lost_after} s after its last start")
        assert rows[lost.id].finished_at is not None
    assert (rows[running.id].state, rows[running.id].finished_at) == (Job.State.STARTED, None)
    assert (rows[succeeded.id].state, rows[succeeded.id].result) == (Job.State.SUCCESS, {"sum": 2})
    assert (rows[failed.id].state, rows[failed.id].error) == (Job.State.FAILURE, "ValueError: bad input")
    assert tasks.reconcile.apply().get() == {}


def test_a_lost_job_delivered_late_records_its_outcome(api_client: Client):
    job = _unsettled(Job.State.LOST, settings.JOBS_LOST_AFTER_SECONDS + 5)
    tasks.add.apply_async((1, 1), task_id=str(job.id)).get(timeout=RESULT_TIMEOUT)
    job = wait_for_job(str(job.id), until=lambda job: job.state == Job.State.SUCCESS)
    assert (job.state, job.result, job.error) == (Job.State.SUCCESS, 2, "")
    assert api_client.get(f"/api/jobs/{job.id}/").json()["state"] == "SUCCESS"


def test_beat_sends_reconcile_without_an_expiry():
    entry = celery_app.conf.beat_schedule["reconcile-jobs"]
    assert (entry["task"], entry["schedule"]) == ("jobs.reconcile", 60.0)
    # An expiring message would be dead-lettered from the default queue while the workers are down.
    assert "expires" not in entry.get("options", {})
