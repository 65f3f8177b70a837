"""The app's own Redis client (DB 0, keys under ``app:``), shared by tasks and /healthz."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings

APP_KEY_PREFIX = "app:"


@lru_cache(maxsize=4)
def _client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
    )


def get_redis() -> redis.Redis:
    """Return a client for the results database; one connection pool per URL and process."""
    return _client(settings.REDIS_RESULTS_URL, settings.REDIS_SOCKET_TIMEOUT)


def app_key(*parts: str) -> str:
    """Build a key the ACL allows (``app:a:b``); every key the app itself writes goes through here."""
    return APP_KEY_PREFIX + ":".join(parts)
