"""The UI (login, CSRF) and the JSON API (bearer tokens, strict validation)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from jobs import submit as submit_module
from jobs.models import Job
from jobs.submit import KINDS
from kombu.exceptions import OperationalError

from tests.conftest import PublishedTask

pytestmark = pytest.mark.django_db

APP_DIR = Path(__file__).resolve().parent.parent
TASK_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _post_job(client: Client, payload: object, **headers: str):
    return client.post("/api/jobs/", data=json.dumps(payload), content_type="application/json", headers=headers)


def test_index_renders_the_form_with_a_csrf_token(user_client: Client):
    response = user_client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="csrfmiddlewaretoken"' in body
    for kind in KINDS:
        assert f'value="{kind}"' in body


def test_index_refuses_a_post_without_csrf_token(user: Any):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/", {"kind": "add", "x": 1, "y": 2})
    assert response.status_code == 403
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_submitting_the_form_queues_the_job_and_lists_it(user: Any, published_tasks: list[PublishedTask]):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/")
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post("/", {"kind": "add", "x": 2, "y": 3, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    task_id = response["Location"].strip("/").split("/")[-1]
    assert TASK_ID.match(task_id)
    job = Job.objects.get(id=task_id)
    assert (job.kind, job.args, job.submitted_by, job.state) == ("add", [2, 3], "ui", Job.State.PENDING)
    assert job.owner == user
    assert [(task.task_id, task.name, task.queue) for task in published_tasks] == [(task_id, "jobs.add", "default")]
    listing = client.get("/").content.decode()
    assert task_id in listing
    detail = client.get(response["Location"])
    assert detail.status_code == 200
    assert "PENDING" in detail.content.decode()
    status = client.get(f"/jobs/{task_id}/status/").json()
    assert status["id"] == task_id
    assert status["kind"] == "add"
    assert status["state"] == "PENDING"
    assert status["ready"] is False
    assert status["worker"] == ""
    assert status["started_at"] is None
    assert "result" not in status


def test_form_rejects_arguments_out_of_range_with_400(user_client: Client):
    response = user_client.post("/", {"kind": "chord", "n": 10_000})
    assert response.status_code == 400
    assert "n must be between 1 and 100" in response.content.decode()
    assert not Job.objects.exists()


def test_form_requires_the_fields_of_the_chosen_kind(user_client: Client):
    response = user_client.post("/", {"kind": "add", "x": 1})
    assert response.status_code == 400
    assert "required for add" in response.content.decode()


def test_job_page_escapes_what_the_user_typed(user_client: Client):
    user_client.post("/", {"kind": "urgent", "text": "<script>alert(1)</script>"})
    task_id = Job.objects.get().id
    assert "<script>alert" not in user_client.get("/").content.decode()
    assert "<script>alert" not in user_client.get(f"/jobs/{task_id}/").content.decode()


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"kind": "add"},
        {"kind": "nope", "args": []},
        {"kind": "add", "args": [1]},
        {"kind": "add", "args": [1, "2"]},
        {"kind": "add", "args": [True, 2]},
        {"kind": "add", "args": [1, 2], "extra": 1},
        {"kind": "sleep", "args": [-1]},
        {"kind": "sleep", "args": [1, "run id with spaces", "t"]},
        {"kind": "flaky", "args": [6]},
        {"kind": "chord", "args": [0]},
        {"kind": "urgent", "args": [""]},
        {"kind": "report", "args": ["x" * 201]},
    ],
)
def test_api_returns_400_on_invalid_input(api_client: Client, payload: object):
    response = _post_job(api_client, payload)
    assert response.status_code == 400
    assert response.json()["error"]
    assert not Job.objects.exists()


def test_api_returns_400_on_a_body_that_is_not_json(api_client: Client):
    response = api_client.post("/api/jobs/", data="kind=add", content_type="application/json")
    assert response.status_code == 400


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("kind", "args", "task_name"),
    [
        ("add", [2, 3], "jobs.add"),
        ("sleep", [0], "jobs.sleep"),
        ("sleep", [0, "run-1", "token-1"], "jobs.sleep"),
        ("flaky", [0], "jobs.flaky"),
        ("chord", [3], "jobs.square"),
        ("urgent", ["now"], "jobs.urgent"),
        ("report", ["weekly"], "jobs.report"),
    ],
)
def test_api_accepts_every_kind_with_202_and_a_status_url(
    api_client: Client, published_tasks: list[PublishedTask], kind: str, args: list, task_name: str
):
    response = _post_job(api_client, {"kind": kind, "args": args})
    assert response.status_code == 202
    body = response.json()
    assert TASK_ID.match(body["id"])
    assert body["state"] == "PENDING"
    assert body["url"] == f"http://testserver/api/jobs/{body['id']}/"
    assert response["Location"] == body["url"]
    job = Job.objects.get(id=body["id"])
    assert (job.kind, job.submitted_by, job.state) == (kind, "api", Job.State.PENDING)
    assert job.args[: len(args)] == args
    # Every task went out after its row was committed; a chord sends its header, the body
    # (which carries the job's id) follows once the header is done.
    assert published_tasks
    assert {task.name for task in published_tasks} == {task_name}
    if kind != "chord":
        assert [task.task_id for task in published_tasks] == [body["id"]]
        assert published_tasks[0].committed_state == "PENDING"
    status = api_client.get(body["url"]).json()
    assert {key: status[key] for key in ("id", "kind", "state", "ready", "worker", "started_at")} == {
        "id": body["id"],
        "kind": kind,
        "state": "PENDING",
        "ready": False,
        "worker": "",
        "started_at": None,
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("front_door", ["api", "ui"])
def test_the_job_row_is_committed_before_its_task_is_published(
    api_client: Client, user_client: Client, published_tasks: list[PublishedTask], front_door: str
):
    if front_door == "api":
        response = _post_job(api_client, {"kind": "report", "args": ["monthly"]})
        assert response.status_code == 202
    else:
        response = user_client.post("/", {"kind": "report", "text": "monthly"})
        assert response.status_code == 302
    job = Job.objects.get()
    assert job.submitted_by == front_door
    # Read on another connection at the moment of publishing: the worker will find the row.
    assert published_tasks == [PublishedTask(str(job.id), "jobs.report", "low", "PENDING")]


def test_a_job_submitted_inside_an_open_transaction_is_not_sent_before_it_commits(
    api_client: Client, published_tasks: list[PublishedTask]
):
    # pytest-django's plain django_db wraps the test in a transaction that is never committed.
    response = _post_job(api_client, {"kind": "add", "args": [1, 2]})
    assert response.status_code == 202
    assert Job.objects.filter(id=response.json()["id"], state=Job.State.PENDING).exists()
    assert published_tasks == []


@pytest.mark.django_db(transaction=True)
def test_api_returns_503_when_the_broker_refuses_the_job(
    api_client: Client, user_client: Client, monkeypatch: pytest.MonkeyPatch
):
    sent: list[tuple[tuple[object, ...], str]] = []

    # A broker outage mid-publish cannot be staged with the in-memory transport: raise what kombu raises.
    def broker_down(*args: object, task_id: str) -> None:
        sent.append((args, task_id))
        raise OperationalError("[Errno 111] Connection refused")

    validate, _ = submit_module._KINDS["add"]
    monkeypatch.setitem(submit_module._KINDS, "add", (validate, broker_down))
    response = _post_job(api_client, {"kind": "add", "args": [1, 1]})
    assert response.status_code == 503
    assert "OperationalError" in response.json()["error"]
    # The row was written (and committed) first; the refusal is recorded on it.
    job = Job.objects.get()
    assert sent == [((1, 1), str(job.id))]
    assert (job.state, job.submitted_by, job.error) == (Job.State.NOT_QUEUED, "api", "not queued: OperationalError")
    assert job.finished_at is not None
    status = api_client.get(f"/api/jobs/{job.id}/").json()
    assert (status["state"], status["ready"], status["error"]) == ("NOT_QUEUED", True, "not queued: OperationalError")

    assert user_client.post("/", {"kind": "add", "x": 1, "y": 1}).status_code == 503
    ui_job = Job.objects.get(submitted_by="ui")
    assert ui_job.state == Job.State.NOT_QUEUED
    assert sent[-1] == ((1, 1), str(ui_job.id))


def test_api_returns_404_for_an_unknown_job(api_client: Client):
    response = api_client.get("/api/jobs/00000000-0000-4000-8000-000000000000/")
    assert response.status_code == 404
    assert response.json() == {"error": "no such job"}


def test_api_status_is_the_job_row_as_the_worker_left_it(api_client: Client):
    job_id = _post_job(api_client, {"kind": "add", "args": [20, 22]}).json()["id"]
    finished = timezone.now()
    Job.objects.filter(id=job_id).update(
        state=Job.State.SUCCESS, worker="celery@worker-1", result=42, started_at=finished, finished_at=finished
    )
    status = api_client.get(f"/api/jobs/{job_id}/").json()
    assert status["state"] == "SUCCESS"
    assert status["ready"] is True
    assert status["result"] == 42
    assert status["worker"] == "celery@worker-1"
    assert status["finished_at"] == finished.isoformat()
    assert "error" not in status


def test_job_page_shows_the_state_worker_and_error_from_the_row(user_client: Client):
    client = user_client
    client.post("/", {"kind": "add", "x": 1, "y": 1})
    task_id = Job.objects.get().id
    Job.objects.filter(id=task_id).update(
        state=Job.State.FAILURE, worker="celery@worker-2", error="TransientError: it broke", finished_at=timezone.now()
    )
    page = client.get(f"/jobs/{task_id}/").content.decode()
    assert '<span id="job-state" class="state state-failure">FAILURE</span>' in page
    assert '<code id="job-worker">celery@worker-2</code>' in page
    assert '<code id="job-error">TransientError: it broke</code>' in page
    status = client.get(f"/jobs/{task_id}/status/").json()
    assert (status["state"], status["ready"], status["error"]) == ("FAILURE", True, "TransientError: it broke")


def test_api_does_not_set_a_session_cookie(api_client: Client):
    response = _post_job(api_client, {"kind": "add", "args": [1, 1]})
    assert response.status_code == 202
    assert not response.cookies


def test_api_rejects_other_methods_on_the_collection(api_client: Client):
    assert api_client.delete("/api/jobs/").status_code == 405


def test_session_counter_increments_per_session(user: Any):
    first, second = Client(), Client()
    first.force_login(user)
    second.force_login(user)
    assert [first.get("/api/session/").json()["count"] for _ in range(3)] == [1, 2, 3]
    assert second.get("/api/session/").json()["count"] == 1


def test_session_survives_a_web_restart_because_it_lives_in_redis(user_client: Client):
    client = user_client
    client.get("/api/session/")
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    # Another Python process (a restarted web server) reads the same session from Redis.
    reader = (
        "import django, sys; django.setup();"
        "from django.contrib.sessions.backends.cache import SessionStore;"
        "print(SessionStore(session_key=sys.argv[1])['counter'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", reader, session_key], cwd=APP_DIR, check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "1"
    restarted = Client()
    restarted.cookies[settings.SESSION_COOKIE_NAME] = session_key
    assert restarted.get("/api/session/").json()["count"] == 2


@pytest.mark.django_db
def test_ensure_superuser_creates_then_updates_then_leaves_the_admin_alone(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "ops")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "ops@example.org")
    outputs = []
    for password in ("first-password-123", "first-password-123", "rotated-password-456"):
        monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)
        out = StringIO()
        call_command("ensure_superuser", stdout=out)
        outputs.append(out.getvalue().strip())
    assert outputs == ["created", "unchanged", "updated"]
    admin = get_user_model().objects.get(username="ops")
    assert admin.is_superuser
    assert admin.check_password("rotated-password-456")
