"""Login throttling, for the app's login page and the admin's alike.

Failed attempts are counted in Redis per user name and per client address over a window; past
either limit, the authentication backend refuses to even check the password, and the login
views answer 429. A success clears the user name's count. The client address is REMOTE_ADDR:
Apache terminates TLS on the web host itself (a proxy in front would have to be trusted
explicitly before X-Forwarded-For could be used).
"""

from __future__ import annotations

import hashlib
from typing import Any

from config.redis import app_key, get_redis
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest


def client_address(request: HttpRequest | None) -> str:
    return (request.META.get("REMOTE_ADDR") or "unknown") if request is not None else "unknown"


def _keys(username: str, address: str) -> tuple[str, str]:
    # Hashed: user names are user input, and key names must stay short and ACL-friendly.
    name = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return app_key("login", "user", name), app_key("login", "addr", address)


def is_locked(username: str, address: str) -> bool:
    user_key, address_key = _keys(username, address)
    user_failures, address_failures = get_redis().mget(user_key, address_key)
    return (
        int(user_failures or 0) >= settings.LOGIN_MAX_FAILURES_PER_USER
        or int(address_failures or 0) >= settings.LOGIN_MAX_FAILURES_PER_ADDRESS
    )


def record_failure(username: str, address: str) -> None:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    with get_redis().pipeline() as pipe:
        for key in _keys(username, address):
            pipe.incr(key).expire(key, window)
        pipe.execute()


class ThrottledModelBackend(ModelBackend):
    """Django's user/password backend, which first refuses a locked user name or address."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if username is not None and is_locked(username, client_address(request)):
            # PermissionDenied stops authenticate() without trying the password (or another backend).
            raise PermissionDenied("too many failed logins")
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed)
def _count_failure(sender: object, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any) -> None:
    username = credentials.get("username")
    if username:
        record_failure(str(username), client_address(request))


@receiver(user_logged_in)
def _clear_failures(sender: object, request: HttpRequest | None, user: Any, **_: Any) -> None:
    user_key, _ = _keys(user.get_username(), client_address(request))
    get_redis().delete(user_key)
