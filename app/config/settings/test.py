"""Settings for the pytest suite: the real Redis and RabbitMQ that run_tests.py starts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .env import env_str

SECRET_KEY = "test-only-secret-key-never-used-outside-the-test-suite-0123456789"  # noqa: S105
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
APP_API_TOKEN = "test-api-token"  # noqa: S105
DEBUG = False
SECURE_SSL_REDIRECT = False

# The test database is a throwaway SQLite file, not SQLite's shared in-memory database: the
# in-process Celery worker updates job rows from its own thread and connection while a test reads
# them, and the shared in-memory cache answers such concurrent access with "database table is
# locked" at once (a lost update) where PostgreSQL would let them proceed. In WAL mode readers
# and a writer proceed side by side and writers wait for each other (timeout), as on PostgreSQL.
# One file per test process (pytest-django creates and deletes it); nothing outside the tests
# uses this database.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        "OPTIONS": {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF"},
        "TEST": {"NAME": str(Path(tempfile.gettempdir()) / f"app-tests-{os.getpid()}.sqlite3")},
    },
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Unhashed names: templates render {% static %} without a collectstatic run first.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# The broker is the throwaway RabbitMQ node run_tests.py starts (the app's user in vhost "app",
# the production role's policies and dead-letter queue), reached with base.py's own broker
# settings: publisher confirms, quorum queues, native delayed delivery. Never base.py's
# default (a guest on the machine's port 5672), which could be somebody's real broker.
if not env_str("CELERY_BROKER_URL"):
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL is not set: the tests need the RabbitMQ node that `python3 app/run_tests.py` starts"
    )

# Each /healthz test pings the workers afresh; the one about caching turns it back on.
HEALTH_WORKER_PING_CACHE_SECONDS = 0
