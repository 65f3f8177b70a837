"""Every way in is authenticated and limited: logins, users' tokens, the service token, sessions."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import redis
from access.models import ApiToken, hash_token
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from jobs.models import Job

from tests.conftest import PublishedTask
from tests.fixtures import PASSWORD, bearer, make_user

pytestmark = pytest.mark.django_db
ADD = {"kind": "add", "args": [1, 2]}


def _post(client: Client, payload: object = ADD, **extra: Any):
    return client.post("/api/jobs/", data=json.dumps(payload), content_type="application/json", **extra)


def _session_keys(redis_admin: redis.Redis) -> list[str]:
    """The session keys in Redis (database 2), read with the suite's admin user."""
    sessions = redis.Redis(**{**redis_admin.connection_pool.connection_kwargs, "db": 2})
    return sorted(sessions.scan_iter("session:*"))


# --- Anonymous callers are refused and get no session ---------------------------------------


def test_anonymous_post_of_the_form_is_refused_and_queues_nothing(published_tasks: list[PublishedTask]):
    response = Client().post("/", {"kind": "sleep", "seconds": 120})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/")
    assert not Job.objects.exists()
    assert published_tasks == []


def test_anonymous_pages_redirect_to_the_login_page():
    job = "00000000-0000-4000-8000-000000000000"
    for path in ("/", f"/jobs/{job}/"):
        response = Client().get(path)
        assert (response.status_code, response["Location"]) == (302, f"/accounts/login/?next={path}")
    assert Client().get(f"/jobs/{job}/status/").status_code == 403


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {settings.APP_API_TOKEN}"}],
    ids=["missing", "wrong-token", "wrong-scheme"],
)
def test_the_api_refuses_a_call_without_a_valid_token(headers: dict[str, str], published_tasks: list[PublishedTask]):
    response = _post(Client(headers=headers))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert Client(headers=headers).get("/api/jobs/").status_code == 401
    assert not Job.objects.exists()
    assert published_tasks == []


def test_no_anonymous_request_makes_a_session(redis_admin: redis.Redis):
    before = _session_keys(redis_admin)
    client = Client()
    for path in ("/", "/accounts/login/", "/api/session/", "/livez", "/readyz", "/healthz", f"/{settings.ADMIN_PATH}"):
        response = client.get(path)
        assert settings.SESSION_COOKIE_NAME not in response.cookies, path
    assert client.get("/api/session/").status_code == 403
    client.post("/accounts/login/", {"username": "nobody", "password": "wrong-password-123"})
    assert _session_keys(redis_admin) == before


def test_a_logged_in_user_has_a_session_that_counts(user: Any):
    client = Client()
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert (response.status_code, response["Location"]) == (302, "/")
    assert settings.SESSION_COOKIE_NAME in response.cookies
    assert [client.get("/api/session/").json()["count"] for _ in range(2)] == [1, 2]
    assert client.get("/api/session/").json()["user"] == "alice"


# --- Users see their own jobs ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_user_queues_through_the_form_and_sees_only_their_jobs(user_client: Client, other_user: Any):
    response = user_client.post("/", {"kind": "add", "x": 2, "y": 3})
    assert response.status_code == 302
    job = Job.objects.get()
    assert (job.owner.username, job.submitted_by) == ("alice", "ui")
    assert str(job.id) in user_client.get("/").content.decode()
    assert user_client.get(f"/jobs/{job.id}/").status_code == 200

    bob = Client()
    bob.force_login(other_user)
    assert str(job.id) not in bob.get("/").content.decode()
    assert bob.get(f"/jobs/{job.id}/").status_code == 404
    assert bob.get(f"/jobs/{job.id}/status/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_users_token_sees_their_jobs_and_not_the_services(user_token: str, api_client: Client):
    mine = _post(bearer(user_token)).json()["id"]
    service = _post(api_client).json()["id"]
    assert Job.objects.get(id=mine).owner.username == "alice"
    assert Job.objects.get(id=service).owner is None
    assert bearer(user_token).get(f"/api/jobs/{mine}/").status_code == 200
    assert bearer(user_token).get(f"/api/jobs/{service}/").status_code == 404
    assert api_client.get(f"/api/jobs/{mine}/").status_code == 404
    listed = bearer(user_token).get("/api/jobs/").json()
    assert [job["id"] for job in listed["jobs"]] == [mine]
    assert listed["last_hour"] == {"PENDING": 1}


# --- Tokens ----------------------------------------------------------------------------------


def test_tokens_are_stored_hashed_and_revoked_at_once(user: Any):
    out = io.StringIO()
    call_command("api_token", "create", "alice", "--name", "laptop", stdout=out, stderr=io.StringIO())
    token = out.getvalue().strip()
    assert token.startswith("app_")
    assert len(token) > 40
    record = ApiToken.objects.get()
    assert record.key_hash == hash_token(token)
    assert token not in {record.key_hash, record.hint, record.name}
    assert _post(bearer(token)).status_code == 202
    assert ApiToken.objects.get().last_used_at is not None

    listing = io.StringIO()
    call_command("api_token", "list", stdout=listing)
    assert f"{record.hint}…  alice  laptop" in listing.getvalue()
    assert "active" in listing.getvalue()
    call_command("api_token", "revoke", record.hint, stdout=io.StringIO())
    assert _post(bearer(token)).status_code == 401
    with pytest.raises(CommandError, match="no such active token"):
        call_command("api_token", "revoke", record.hint, stdout=io.StringIO())


def test_a_deactivated_users_token_is_refused(user: Any, user_token: str):
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    assert _post(bearer(user_token)).status_code == 401


def test_a_token_for_an_unknown_user_is_refused():
    with pytest.raises(CommandError, match="no active user 'ghost'"):
        call_command("api_token", "create", "ghost", stdout=io.StringIO(), stderr=io.StringIO())


def test_the_service_token_rotates_without_downtime(settings: Any, no_limits_counted: None):
    old, new = settings.APP_API_TOKEN, "a-new-service-token-from-the-vault-0123456789"
    # During the rollover both are valid ...
    settings.APP_API_TOKEN, settings.APP_API_TOKEN_PREVIOUS = new, old
    assert _post(bearer(old)).status_code == 202
    assert _post(bearer(new)).status_code == 202
    # ... and once the previous one is dropped from the inventory, only the new one.
    settings.APP_API_TOKEN_PREVIOUS = ""
    assert _post(bearer(old)).status_code == 401
    assert _post(bearer(new)).status_code == 202


def test_create_user_reads_the_password_from_stdin_and_validates_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    with pytest.raises(CommandError, match=r"password refused: .*too short"):
        call_command("create_user", "carol", "--password-stdin", stdout=io.StringIO())
    assert not get_user_model().objects.filter(username="carol").exists()
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
    out = io.StringIO()
    call_command("create_user", "carol", "--password-stdin", stdout=out)
    assert out.getvalue().strip() == "created user carol"
    carol = get_user_model().objects.get(username="carol")
    assert carol.check_password(PASSWORD)
    assert not carol.is_staff
    with pytest.raises(CommandError, match="exists already"):
        call_command("create_user", "carol", "--password-stdin", stdout=io.StringIO())


# --- Limits ----------------------------------------------------------------------------------


def test_the_submission_rate_is_limited_per_user_with_a_clear_429(
    settings: Any, user_token: str, other_user: Any, api_client: Client
):
    settings.APP_SUBMIT_RATE_PER_MINUTE = 3
    codes = [_post(bearer(user_token)).status_code for _ in range(4)]
    assert codes == [202, 202, 202, 429]
    refused = _post(bearer(user_token))
    assert refused.status_code == 429
    assert refused.json()["error"].startswith("at most 3 jobs a minute; try again in")
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Another caller has their own count.
    _, bobs = ApiToken.issue(other_user, "tests")
    assert _post(bearer(bobs)).status_code == 202
    assert _post(api_client).status_code == 202


def test_unfinished_jobs_are_capped_per_user(settings: Any, user_client: Client, user_token: str):
    settings.APP_MAX_ACTIVE_JOBS = 2
    assert [_post(bearer(user_token)).status_code for _ in range(3)] == [202, 202, 429]
    response = user_client.post("/", {"kind": "add", "x": 1, "y": 1})
    assert response.status_code == 429
    assert "2 of your jobs are still queued or running (at most 2)" in response.content.decode()
    Job.objects.update(state=Job.State.SUCCESS)
    assert _post(bearer(user_token)).status_code == 202


def test_a_body_over_the_limit_is_refused_with_413(api_client: Client, settings: Any):
    big = {"kind": "report", "args": ["x" * (settings.APP_API_MAX_BODY_BYTES + 1)]}
    response = _post(api_client, big)
    assert response.status_code == 413
    assert not Job.objects.exists()


# --- Logins are throttled, on the app's page and the admin's ---------------------------------


@pytest.mark.parametrize("login_path", ["/accounts/login/", f"/{settings.ADMIN_PATH}login/"])
def test_failed_logins_lock_the_account_even_for_the_right_password(settings: Any, user: Any, login_path: str) -> None:
    user.is_staff = True
    user.save()
    settings.LOGIN_MAX_FAILURES_PER_USER = 3
    client = Client()
    for _ in range(3):
        assert client.post(login_path, {"username": "alice", "password": "not-the-password"}).status_code == 200
    locked = client.post(login_path, {"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert int(locked["Retry-After"]) == settings.LOGIN_FAILURE_WINDOW_SECONDS
    assert settings.SESSION_COOKIE_NAME not in locked.cookies


def test_a_successful_login_clears_the_users_failures(settings: Any, user: Any):
    settings.LOGIN_MAX_FAILURES_PER_USER = 3
    client = Client()
    for _ in range(2):
        client.post("/accounts/login/", {"username": "alice", "password": "not-the-password"})
    assert client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    other = Client()
    for _ in range(2):
        other.post("/accounts/login/", {"username": "alice", "password": "not-the-password"})
    assert other.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 302


def test_one_address_is_throttled_across_user_names(settings: Any, no_limits_counted: None):
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 4
    client = Client()
    for n in range(4):
        client.post("/accounts/login/", {"username": f"guess{n}", "password": "not-the-password"})
    assert client.post("/accounts/login/", {"username": "guess9", "password": "x"}).status_code == 429


# --- The admin -------------------------------------------------------------------------------


def test_the_admin_is_not_at_slash_admin(user_client: Client):
    assert Client().get("/admin/").status_code == 404
    response = Client().get(f"/{settings.ADMIN_PATH}")
    assert response.status_code == 302
    assert response["Location"].startswith(f"/{settings.ADMIN_PATH}login/")


def test_ensure_superuser_refuses_a_password_the_validators_refuse(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "ops")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "ops@example.org")
    for weak, reason in (("password1234", "too common"), ("ops@example.org1", "too similar")):
        monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", weak)
        with pytest.raises(CommandError, match=rf"DJANGO_SUPERUSER_PASSWORD refused: .*{reason}"):
            call_command("ensure_superuser", stdout=io.StringIO())
    assert not get_user_model().objects.filter(username="ops").exists()
    make_user("ops")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "12345678901234")
    with pytest.raises(CommandError, match="entirely numeric"):
        call_command("ensure_superuser", stdout=io.StringIO())
    assert get_user_model().objects.get(username="ops").check_password(PASSWORD)
