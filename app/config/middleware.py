"""A dependency that is down or hanging answers 503 with a JSON error in seconds, never a 500.

Every client of a dependency is bounded in time (settings: libpq's connect_timeout and the query
deadline of config.db, the Redis clients' socket timeouts, the publish confirm and retry policy):
the error arrives within a second or two, and this turns it into 503 + Retry-After naming what
is unavailable. The next request reconnects by itself once the dependency is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError
from django.db import OperationalError as DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5

# Which dependency an exception means, in the order they are tried.
UNAVAILABLE: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    ((DatabaseError, InterfaceError), "the database"),
    (RedisError, "the cache and sessions store (Redis)"),
    (BrokerError, "the task broker (RabbitMQ)"),
)


def unavailable_response(what: str) -> JsonResponse:
    response = JsonResponse({"error": f"{what} is unavailable; try again in a few seconds"}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DependencyUnavailableMiddleware:
    """Map "cannot reach PostgreSQL / Redis / RabbitMQ" to 503 + Retry-After, as JSON."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return self._response_for(request, exception)

    @staticmethod
    def _response_for(request: HttpRequest, exception: BaseException) -> HttpResponse | None:
        for errors, what in UNAVAILABLE:
            if isinstance(exception, errors):
                logger.warning("%s unavailable for %s: %s: %s", what, request.path, type(exception).__name__, exception)
                return unavailable_response(what)
        return None
