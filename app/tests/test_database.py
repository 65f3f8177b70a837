"""The database as a dependency: 503 when it is unavailable, its health check, the locked migrate."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import InterfaceError, OperationalError, connection
from django.test import Client
from health import checks
from jobs import views

pytestmark = pytest.mark.django_db

APP_DIR = Path(__file__).resolve().parent.parent
UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"
UNAVAILABLE = "the database is unavailable; try again in a few seconds"


def _database_down(*args: object, **kwargs: object) -> None:
    raise OperationalError('connection to server at "db1" (10.0.0.5), port 5432 failed: Connection refused')


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_a_database_error_in_an_api_view_answers_503_json_with_retry_after(
    api_client: Client, monkeypatch: pytest.MonkeyPatch, error: type[Exception]
):
    def database_down(*args: object) -> None:
        raise error("connection already closed")

    monkeypatch.setattr(views, "_jobs_of", database_down)
    response = api_client.get(f"/api/jobs/{UNKNOWN_JOB}/")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": UNAVAILABLE}
    assert response["Retry-After"] == "5"


def test_a_database_error_in_a_page_answers_503_json_with_retry_after(
    user_client: Client, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(views, "submit", _database_down)
    response = user_client.post("/", {"kind": "add", "x": 1, "y": 2})
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": UNAVAILABLE}
    assert response["Retry-After"] == "5"


def test_a_database_error_while_submitting_through_the_api_answers_503(
    api_client: Client, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(views, "submit", _database_down)
    response = api_client.post("/api/jobs/", data='{"kind": "add", "args": [1, 2]}', content_type="application/json")
    assert response.status_code == 503
    assert response.json() == {"error": UNAVAILABLE}
    assert response["Retry-After"] == "5"


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_database_answers_503_instead_of_500(
    api_client: Client, user_client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    # A real failure to connect, raised by the driver: the database file's directory is gone.
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "NAME", str(tmp_path / "gone" / "db.sqlite3"))
    submitted = api_client.post("/api/jobs/", data='{"kind": "add", "args": [1, 2]}', content_type="application/json")
    assert (submitted.status_code, submitted["Retry-After"]) == (503, "5")
    assert submitted.json() == {"error": UNAVAILABLE}
    status = api_client.get(f"/api/jobs/{UNKNOWN_JOB}/")
    assert (status.status_code, status["Retry-After"]) == (503, "5")
    page = user_client.post("/", {"kind": "add", "x": 1, "y": 2})
    assert (page.status_code, page["Retry-After"], page.json()) == (503, "5", {"error": UNAVAILABLE})
    database = Client().get("/healthz").json()["checks"]["database"]
    assert database["ok"] is False
    assert "unable to open database file" in database["error"]


def test_other_errors_are_not_turned_into_503(monkeypatch: pytest.MonkeyPatch):
    def bug(*args: object) -> None:
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(views, "_jobs_of", bug)
    client = Client(raise_request_exception=False, headers={"Authorization": "Bearer test-api-token"})
    response = client.get(f"/api/jobs/{UNKNOWN_JOB}/")
    assert response.status_code == 500
    assert "Retry-After" not in response


def test_check_database_reports_the_sqlite_vendor():
    assert checks.check_database() == {"ok": True, "vendor": "sqlite"}
    assert Client().get("/healthz").json()["checks"]["database"]["vendor"] == "sqlite"


@pytest.mark.parametrize("probe", ["/readyz", "/healthz"])
def test_the_probes_report_the_database_failed_when_it_cannot_be_reached(monkeypatch: pytest.MonkeyPatch, probe: str):
    monkeypatch.setattr(connection, "cursor", _database_down)
    response = Client().get(probe)
    assert response.status_code == 503
    database = response.json()["checks"]["database"]
    assert database["ok"] is False
    assert database["error"].startswith("OperationalError: connection to server")


def test_migrate_locked_applies_the_migrations_on_sqlite(tmp_path: Path):
    database = tmp_path / "app.sqlite3"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_SECRET_KEY": "only-for-this-migrate-test-" + "x" * 40,
        "DATABASE_URL": f"sqlite:///{database}",
    }

    def migrate_locked() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "migrate_locked"],
            cwd=APP_DIR,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    first = migrate_locked()
    assert first.returncode == 0, first.stderr
    # The plain migrate path: no advisory lock on SQLite.
    assert "advisory lock" not in first.stdout
    assert "Applying jobs.0001_initial... OK" in first.stdout
    with sqlite3.connect(database) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        applied = set(db.execute("SELECT app, name FROM django_migrations"))
    assert {"jobs_job", "jobs_charge", "auth_user"} <= tables
    assert ("jobs", "0001_initial") in applied
    second = migrate_locked()
    assert second.returncode == 0, second.stderr
    assert "No migrations to apply." in second.stdout
