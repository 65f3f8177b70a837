"""Everything the app, Django and Celery write in Redis stays inside the production ACL.

run_tests.py starts Redis with the app's production ACL user, so a key or channel outside
``~cache:* ~session:* ~celery:* ~app:*`` / ``&celery:*`` already fails the operation; these
tests also record (MONITOR) every key and channel touched, so a Redis without ACL catches it too.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from fnmatch import fnmatchcase

import pytest
import redis
from config.settings.env import redis_db_url
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.test import Client
from jobs import tasks, workflows
from jobs.models import Charge, Job

from tests.conftest import RESULT_TIMEOUT
from tests.fixtures import PASSWORD, make_user

KEY_PATTERNS = ("cache:*", "session:*", "celery:*", "app:*")
CHANNEL_PATTERNS = ("celery:*",)
PUBLISH_COMMANDS = {"publish", "spublish"}
SUBSCRIBE_COMMANDS = {"subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ssubscribe", "sunsubscribe"}
KEYLESS_COMMANDS = {"ping", "select", "client", "hello", "multi", "exec", "discard", "info", "command", "auth"}

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_worker")]


class CommandRecorder:
    """Records every command the server runs (MONITOR) while the app is exercised."""

    _LINE = re.compile(r"^[\d.]+ \[(\d+) [^\]]*\] (.*)$")
    _ARGUMENT = re.compile(r'"((?:[^"\\]|\\.)*)"')

    def __init__(self, admin_url: str) -> None:
        self._client = redis.Redis.from_url(redis_db_url(admin_url, 0), socket_timeout=10, decode_responses=True)
        self._sentinel = f"stop-recording-{uuid.uuid4().hex}"
        self.commands: list[tuple[int, list[str]]] = []
        self._monitor = self._client.monitor()
        self._thread = threading.Thread(target=self._record, daemon=True)

    def __enter__(self) -> CommandRecorder:
        self._monitor.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # MONITOR shows this ECHO too: the reader stops once everything before it is recorded.
        self._client.echo(self._sentinel)
        self._thread.join(timeout=10)
        self._monitor.__exit__(*exc_info)

    def _record(self) -> None:
        while True:
            match = self._LINE.match(self._monitor.connection.read_response())
            if not match:
                continue
            db, arguments = match.groups()
            command = self._ARGUMENT.findall(arguments)
            if command == ["ECHO", self._sentinel]:
                return
            self.commands.append((int(db), command))

    def keys_and_channels(self) -> tuple[set[tuple[int, str]], set[str]]:
        keys: set[tuple[int, str]] = set()
        channels: set[str] = set()
        for db, (name, *arguments) in self.commands:
            if name.lower() in PUBLISH_COMMANDS:
                channels.add(arguments[0])
            elif name.lower() in SUBSCRIBE_COMMANDS:
                channels.update(arguments)
            elif name.lower() not in KEYLESS_COMMANDS:
                keys.update((db, key) for key in self._client.command_getkeys(name, *arguments))
        return keys, channels


def _exercise_every_writer() -> None:
    tasks.heartbeat.delay().get(timeout=RESULT_TIMEOUT)
    caches["default"].set("probe", "value", timeout=60)
    user = make_user(f"keys-{uuid.uuid4().hex[:8]}")
    browser = Client()
    browser.post("/accounts/login/", {"username": user.get_username(), "password": "not-the-password"})
    browser.post("/accounts/login/", {"username": user.get_username(), "password": PASSWORD})
    assert browser.get("/api/session/").status_code == 200
    submitted = Client(headers={"Authorization": f"Bearer {settings.APP_API_TOKEN}"}).post(
        "/api/jobs/", data='{"kind": "add", "args": [1, 2]}', content_type="application/json"
    )
    assert submitted.status_code == 202
    assert Client().get("/healthz").status_code == 200
    tasks.add.delay(1, 2).get(timeout=RESULT_TIMEOUT)
    workflows.sum_of_squares(4).apply_async().get(timeout=RESULT_TIMEOUT)
    tasks.charge.delay(uuid.uuid4().hex, 100).get(timeout=RESULT_TIMEOUT)
    tasks.flaky.delay(1, uuid.uuid4().hex).get(timeout=RESULT_TIMEOUT)
    tasks.record.delay(uuid.uuid4().hex, "t").get(timeout=RESULT_TIMEOUT)


@pytest.fixture(scope="module")
def recorded(django_db_setup, django_db_blocker, celery_worker) -> tuple[set[tuple[int, str]], set[str]]:
    """Keys and channels of every command run while each writer is exercised once."""
    recorder = CommandRecorder(os.environ.get("REDIS_ADMIN_URL") or settings.REDIS_URL)
    with django_db_blocker.unblock():
        try:
            with recorder:
                _exercise_every_writer()
        finally:
            # Outside any test's transaction: what the writers left in the database must not
            # leak into the next module's tests.
            for model in (Job, Charge, get_user_model()):
                model.objects.all().delete()
    return recorder.keys_and_channels()


def test_every_key_the_app_touches_matches_the_acl_key_patterns(recorded):
    keys, _ = recorded
    assert sorted(f"db{db} {key}" for db, key in keys if not any(fnmatchcase(key, p) for p in KEY_PATTERNS)) == []


def test_every_channel_the_app_uses_matches_the_acl_channel_patterns(recorded):
    _, channels = recorded
    assert any(fnmatchcase(c, "celery:celery-task-meta-*") for c in channels)
    assert sorted(c for c in channels if not any(fnmatchcase(c, p) for p in CHANNEL_PATTERNS)) == []


@pytest.mark.parametrize(
    ("db", "pattern"),
    [
        (0, "celery:celery-task-meta-*"),
        (0, "celery:celery-taskset-meta-*.j"),
        (0, "app:beat:last"),
        (0, "app:flaky:*"),
        (0, "app:runs:*"),
        (0, "app:rate:service:*"),
        (0, "app:login:user:*"),
        (0, "app:login:addr:*"),
        (1, "cache:1:probe"),
        (1, "cache:1:health"),
        (2, "session:1:django.contrib.sessions.cache*"),
    ],
)
def test_each_writer_uses_its_database_and_prefix(recorded, db: int, pattern: str):
    keys, _ = recorded
    assert any(key_db == db and fnmatchcase(key, pattern) for key_db, key in keys)


def test_charges_write_no_idempotency_keys_in_redis(recorded):
    # A charge is a row under its idempotency key (jobs.models.Charge): no claim or counter in Redis.
    keys, _ = recorded
    assert sorted(key for _, key in keys if fnmatchcase(key, "app:idem*")) == []


def test_the_acl_refuses_keys_outside_the_app_prefixes(app_redis: redis.Redis):
    if not os.environ.get("REDIS_ADMIN_URL"):
        pytest.skip("Redis runs without the production ACL (use run_tests.py)")
    with pytest.raises(redis.exceptions.NoPermissionError):
        app_redis.set("outside:the-acl", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        app_redis.publish("elsewhere", "1")
