"""Who is calling the API: a user's token (hashed in the database) or the bootstrap service token.

The service token comes from the inventory (``APP_API_TOKEN``); during a rotation the previous
one (``APP_API_TOKEN_PREVIOUS``) is accepted too, so clients switch over without a failed call.
Users' tokens are made and revoked with ``manage.py api_token``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone

from .models import ApiToken, hash_token

# How stale ``last_used_at`` may get before a call writes it again: at most one write per token
# and interval, not one per request.
LAST_USED_RESOLUTION = timedelta(minutes=5)
SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """The caller: a user, or the service token (``user`` None)."""

    user: AbstractBaseUser | None

    @property
    def is_service(self) -> bool:
        return self.user is None

    @property
    def key(self) -> str:
        """Stable, short and free of user input: what limits are counted under."""
        return SERVICE if self.user is None else f"user:{self.user.pk}"

    @property
    def label(self) -> str:
        return SERVICE if self.user is None else self.user.get_username()


def bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _is_service_token(token: str) -> bool:
    presented = token.encode()
    # Every candidate is compared (no early exit), each in constant time.
    known = (settings.APP_API_TOKEN, settings.APP_API_TOKEN_PREVIOUS)
    matches = [hmac.compare_digest(presented, token.encode()) for token in known if token]
    return any(matches)


def authenticate_token(token: str) -> Principal | None:
    if not token:
        return None
    if _is_service_token(token):
        return Principal(user=None)
    record = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_token(token), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if record is None:
        return None
    now = timezone.now()
    if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=record.pk).update(last_used_at=now)
    return Principal(user=record.user)
