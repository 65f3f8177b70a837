"""Deployment settings: everything secret or site-specific comes from the environment.

Import fails with ImproperlyConfigured when a required variable is missing or weak, so a bad
deployment stops at ``manage.py check`` instead of serving with a guessable key.
"""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import ALLOWED_HOSTS, APP_API_TOKEN, DATABASES, SECRET_KEY
from .security import require, validate_secret_key

validate_secret_key(SECRET_KEY)
require(ALLOWED_HOSTS, "DJANGO_ALLOWED_HOSTS is required in production (comma-separated host names)")
require(APP_API_TOKEN, "APP_API_TOKEN is required in production (the JSON API's bearer token)")
# Web hosts and workers share one database: a per-host SQLite file would split the jobs.
require(
    DATABASES["default"]["ENGINE"] == "config.db",
    "DATABASE_URL must name PostgreSQL in production (postgresql://app:...@db1:5432/app?sslmode=verify-full&...)",
)

DEBUG = False

# Apache terminates TLS on the web node itself, so request.is_secure() is true without trusting
# any proxy header (no SECURE_PROXY_SSL_HEADER on purpose).
SECURE_SSL_REDIRECT = True
# HSTS: Apache's alone (see base.py).
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

# Hashed file names let Apache serve /static/ with far-future cache headers.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}
