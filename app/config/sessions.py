"""Sessions in Redis that say so when Redis is unavailable (503), instead of logging users out.

Django's cache session store treats any error on load as "no session": with Redis down, a
logged-in user would look logged out and be sent to the login page, which then fails too. This
store lets the error through, so config.middleware answers 503 ("try again") instead.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

from .middleware import unavailable_response


class SessionStore(CacheSessionStore):
    def load(self) -> dict[str, Any]:
        data = self._cache.get(self.cache_key) if self.session_key else None
        if data is not None:
            return data
        self._session_key = None
        return {}


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's, answering 503 when the session cannot be saved (Redis down) instead of a 500."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        try:
            return super().process_response(request, response)
        except RedisError:
            return unavailable_response("the cache and sessions store (Redis)")
