"""Reads that may come from the cache, and still work without it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)
T = TypeVar("T")


def cached_or_computed(key: str, compute: Callable[[], T], seconds: int) -> T:
    """The cached value, else ``compute()`` (stored for ``seconds``).

    With Redis down or hanging the value is computed every time (one bounded attempt to read,
    none to write back): the page is slower, not broken.
    """
    try:
        value = cache.get(key)
    except (RedisError, OSError) as error:
        logger.warning("cache unavailable, computing %s: %s", key, error)
        return compute()
    if value is None:
        value = compute()
        try:
            cache.set(key, value, seconds)
        except (RedisError, OSError) as error:
            logger.warning("cache unavailable, %s not stored: %s", key, error)
    return value
