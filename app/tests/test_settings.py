"""Settings: production refuses weak or missing secrets, passes check --deploy, wires Redis and Celery."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from config.celery import app as celery_app
from config.settings.env import env_bool, env_int, env_list, redis_db_url
from config.settings.security import validate_secret_key
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

APP_DIR = Path(__file__).resolve().parent.parent
STRONG_KEY = secrets.token_urlsafe(64)
POSTGRESQL_URL = "postgresql://app:pw@db1.example.test:5432/app?sslmode=verify-full"
NOT_POSTGRESQL = "DATABASE_URL must name PostgreSQL in production"


def _production_env(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "APP_", "DATABASE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=STRONG_KEY,
        DJANGO_ALLOWED_HOSTS="app.example.test",
        APP_API_TOKEN=secrets.token_urlsafe(32),
        REDIS_URL="redis://app:pw@redis.example.test:6379",
        CELERY_BROKER_URL="amqp://app:pw@rabbit1:5672/app;amqp://app:pw@rabbit2:5672/app",
        # What the deploy role sets; production refuses to start without PostgreSQL.
        DATABASE_URL=POSTGRESQL_URL,
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=APP_DIR, env=env, capture_output=True, text=True, check=False)


def _production_settings(**overrides: str | None) -> dict:
    script = (
        "import json, django; django.setup(); from django.conf import settings as s;"
        "print(json.dumps({k: getattr(s, k) for k in ("
        "'DEBUG', 'SECURE_HSTS_SECONDS', 'SECURE_SSL_REDIRECT', 'CACHES',"
        " 'STORAGES', 'CELERY_RESULT_BACKEND', 'CELERY_BROKER_URL', 'DATABASES', 'SECURE_REDIRECT_EXEMPT',"
        " 'CSRF_TRUSTED_ORIGINS')}, default=str))"
    )
    result = _run(["-c", script], _production_env(**overrides))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "key",
    ["", "short", "a" * 60, "abcd" * 20, "django-insecure-" + "x1y2z3w4v5" * 5],
    ids=["missing", "short", "one-character", "four-characters", "django-insecure"],
)
def test_weak_secret_keys_are_refused(key: str):
    with pytest.raises(ImproperlyConfigured):
        validate_secret_key(key)


def test_a_long_random_secret_key_is_accepted():
    validate_secret_key(STRONG_KEY)


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY is required"),
        ("DJANGO_ALLOWED_HOSTS", "DJANGO_ALLOWED_HOSTS is required"),
        ("APP_API_TOKEN", "APP_API_TOKEN is required"),
    ],
)
def test_production_settings_refuse_to_load_without_a_required_variable(missing: str, message: str):
    result = _run(["manage.py", "check"], _production_env(**{missing: None}))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_production_settings_refuse_a_weak_secret_key():
    result = _run(["manage.py", "check"], _production_env(DJANGO_SECRET_KEY="x" * 50))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is too weak" in result.stderr


def test_settings_refuse_a_soft_time_limit_not_below_the_hard_one():
    result = _run(
        ["manage.py", "check"], _production_env(CELERY_TASK_TIME_LIMIT="60", CELERY_TASK_SOFT_TIME_LIMIT="60")
    )
    assert result.returncode != 0
    assert "CELERY_TASK_SOFT_TIME_LIMIT must be below CELERY_TASK_TIME_LIMIT" in result.stderr


def test_settings_refuse_a_lost_job_timeout_not_above_the_hard_time_limit():
    result = _run(
        ["manage.py", "check"],
        _production_env(CELERY_TASK_TIME_LIMIT="60", CELERY_TASK_SOFT_TIME_LIMIT="50", JOBS_LOST_AFTER_SECONDS="60"),
    )
    assert result.returncode != 0
    assert "JOBS_LOST_AFTER_SECONDS must be above CELERY_TASK_TIME_LIMIT" in result.stderr


def test_check_deploy_is_clean_with_only_the_environment_set():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_env())
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_django_sets_no_hsts_header_apache_is_the_one_place(settings, client):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/livez", secure=True)
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response


def test_production_settings_are_hardened_and_use_the_redis_layout():
    values = _production_settings(DJANGO_CSRF_TRUSTED_ORIGINS="https://localhost:8443, https://app.example.test")
    assert values["DEBUG"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_REDIRECT_EXEMPT"] == ["^livez$", "^readyz$", "^healthz$"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://localhost:8443", "https://app.example.test"]
    assert values["STORAGES"]["staticfiles"]["BACKEND"].endswith("ManifestStaticFilesStorage")
    assert values["CELERY_RESULT_BACKEND"] == (
        "config.results:ProducerFriendlyRedisBackend+redis://app:pw@redis.example.test:6379/0"
    )
    assert values["CACHES"]["default"]["LOCATION"] == "redis://app:pw@redis.example.test:6379/1"
    assert values["CACHES"]["default"]["KEY_PREFIX"] == "cache"
    assert values["CACHES"]["sessions"]["LOCATION"] == "redis://app:pw@redis.example.test:6379/2"
    assert values["CACHES"]["sessions"]["KEY_PREFIX"] == "session"
    assert values["CELERY_BROKER_URL"].count(";") == 1
    assert values["DATABASES"]["default"]["ENGINE"] == "config.db"
    assert values["DATABASES"]["default"]["OPTIONS"] == {
        "sslmode": "verify-full",
        "connect_timeout": 2,
        "query_timeout": 2.0,
    }


def test_database_url_selects_postgresql_with_a_connect_timeout_and_a_query_deadline():
    values = _production_settings(
        DATABASE_URL="postgres://app:pw@db.example.test:5432/app", DATABASE_QUERY_TIMEOUT="1.5"
    )
    database = values["DATABASES"]["default"]
    assert database["ENGINE"] == "config.db"
    assert database["OPTIONS"]["query_timeout"] == 1.5
    assert database["HOST"] == "db.example.test"
    assert database["NAME"] == "app"
    assert database["CONN_MAX_AGE"] == 60
    assert database["OPTIONS"]["connect_timeout"] == 2


def test_database_conn_max_age_is_read_from_the_environment():
    values = _production_settings(DATABASE_URL="postgres://app:pw@db.example.test:5432/app", DATABASE_CONN_MAX_AGE="0")
    assert values["DATABASES"]["default"]["CONN_MAX_AGE"] == 0


@pytest.mark.parametrize(
    "database_url",
    [None, "sqlite:////var/lib/app/db.sqlite3"],
    ids=["unset-so-sqlite", "sqlite-url"],
)
def test_production_settings_refuse_a_database_other_than_postgresql(database_url: str | None):
    result = _run(["manage.py", "check"], _production_env(DATABASE_URL=database_url))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert NOT_POSTGRESQL in result.stderr


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_production_settings_accept_a_postgresql_database_url(scheme: str):
    result = _run(["manage.py", "check"], _production_env(DATABASE_URL=f"{scheme}://app:pw@db1.example.test:5432/app"))
    assert result.returncode == 0, result.stderr
    assert NOT_POSTGRESQL not in result.stderr


def test_database_owner_url_wins_over_database_url():
    values = _production_settings(
        DATABASE_OWNER_URL="postgresql://app_owner:owner-pw@db1.example.test:5432/app?sslmode=verify-full",
        DATABASE_URL="postgresql://app:app-pw@db2.example.test:5432/app_runtime",
    )
    database = values["DATABASES"]["default"]
    assert (database["USER"], database["PASSWORD"]) == ("app_owner", "owner-pw")
    # Migrations may take long: no deadline for the owner's connection.
    assert database["OPTIONS"]["query_timeout"] == 0.0
    assert (database["HOST"], database["NAME"]) == ("db1.example.test", "app")


def test_database_url_password_with_reserved_characters_is_decoded_exactly():
    # The deploy percent-encodes the password: %2F = "/", %40 = "@", %3A = ":", %25 = "%".
    values = _production_settings(
        DATABASE_URL="postgresql://app:a%2Fb%40c%3Ad%25e%2541@db1.example.test:5432/app?sslmode=verify-full"
    )
    database = values["DATABASES"]["default"]
    assert database["PASSWORD"] == "a/b@c:d%e%41"  # noqa: S105 - a dummy, never used to connect
    assert (database["USER"], database["HOST"], database["PORT"], database["NAME"]) == (
        "app",
        "db1.example.test",
        5432,
        "app",
    )


def test_collectstatic_writes_hashed_names_for_apache_to_cache(settings, tmp_path: Path):
    settings.STATIC_ROOT = str(tmp_path)
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())
    assert manifest["paths"]["css/app.css"] != "css/app.css"
    assert (tmp_path / manifest["paths"]["css/app.css"]).exists()
    assert (tmp_path / manifest["paths"]["js/job.js"]).exists()


@pytest.mark.parametrize(
    ("raw", "expected"), [("", True), ("true", True), ("1", True), ("no", False), ("False", False), ("off", False)]
)
def test_env_bool_reads_the_usual_spellings(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool):
    monkeypatch.setenv("X_FLAG", raw)
    assert env_bool("X_FLAG", default=True) is expected


def test_env_helpers_refuse_values_they_cannot_parse(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    monkeypatch.setenv("X_NUMBER", "ten")
    monkeypatch.setenv("X_SMALL", "0")
    with pytest.raises(ImproperlyConfigured):
        env_bool("X_FLAG", default=True)
    with pytest.raises(ImproperlyConfigured):
        env_int("X_NUMBER", 10)
    with pytest.raises(ImproperlyConfigured):
        env_int("X_SMALL", 10, minimum=1)


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("X_HOSTS", " a.example , ,b.example,")
    assert env_list("X_HOSTS") == ["a.example", "b.example"]
    assert env_list("X_UNSET", ["fallback"]) == ["fallback"]


def test_redis_db_url_appends_the_database_and_keeps_tls_options():
    assert redis_db_url("redis://app:pw@redis:6379", 2) == "redis://app:pw@redis:6379/2"
    assert redis_db_url("redis://app:pw@redis:6379/", 0) == "redis://app:pw@redis:6379/0"
    assert (
        redis_db_url("rediss://app:pw@redis:6380?ssl_ca_certs=/etc/ssl/ca.pem", 1)
        == "rediss://app:pw@redis:6380/1?ssl_ca_certs=%2Fetc%2Fssl%2Fca.pem&ssl_cert_reqs=required"
    )


@pytest.mark.parametrize("url", ["redis://redis:6379/3", "http://redis:6379"])
def test_redis_db_url_refuses_a_database_number_or_another_scheme(url: str):
    with pytest.raises(ImproperlyConfigured):
        redis_db_url(url, 0)


def test_celery_settings_that_no_test_exercises_are_as_documented():
    # Acks late, reject on worker lost, quorum queues, routing and STARTED are exercised by
    # test_broker.py and test_tasks.py against the real broker; these are not.
    conf = celery_app.conf
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is True
    assert conf.broker_connection_retry_on_startup is True
    assert (conf.task_time_limit, conf.task_soft_time_limit) == (300, 270)
    assert (conf.worker_max_tasks_per_child, conf.worker_max_memory_per_child) == (1000, 200_000)
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == conf.result_serializer == "json"
    assert conf.worker_send_task_events is True
    assert conf.task_send_sent_event is True
    assert conf.control_queue_exclusive is True
    assert conf.event_queue_exclusive is True
    assert conf.result_expires == 86400
    assert conf.result_backend_transport_options == {"global_keyprefix": "celery:"}
    assert conf.result_backend_always_retry is True
    assert (conf.redis_socket_connect_timeout, conf.redis_socket_timeout) == (5, 5)
    assert conf.timezone == "UTC"


def test_an_upload_in_a_new_subdirectory_is_readable_by_other_users_whatever_the_umask(settings, tmp_path: Path):
    # The daemons that save uploads run with umask 0027; Apache reads them as another user.
    settings.MEDIA_ROOT = str(tmp_path)
    previous = os.umask(0o027)
    try:
        name = default_storage.save("reports/2026/11/summary.txt", ContentFile(b"report"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    for directory in ("reports", "reports/2026", "reports/2026/11"):
        assert stat.S_IMODE((tmp_path / directory).stat().st_mode) == 0o755, directory
