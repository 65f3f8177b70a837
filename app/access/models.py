"""Per-user API tokens, stored as hashes: the database never holds a usable token."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models

TOKEN_PREFIX = "app_"  # noqa: S105 - a prefix that makes a leaked token recognisable, no secret
# 32 random bytes: a token cannot be guessed, so a fast hash (SHA-256) is the right one to store;
# a password hasher's slowness would only cost every API call.
TOKEN_BYTES = 32


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(models.Model):
    """One bearer token of one user: created and revoked with ``manage.py api_token``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # SHA-256 of the token, hex: what a request's token is looked up by.
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters, to tell tokens apart in listings and logs (never enough to use one).
    hint = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("user_id", "created_at")

    def __str__(self) -> str:
        return f"{self.hint}… ({self.user}, {self.name})"

    @classmethod
    def issue(cls, user: models.Model, name: str) -> tuple[ApiToken, str]:
        """Create a token for ``user``; the clear token is returned once and never stored."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        record = cls.objects.create(user=user, name=name, key_hash=hash_token(token), hint=token[:12])
        return record, token
