"""Validation of the secrets production refuses to start without."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5


def validate_secret_key(key: str) -> None:
    """Refuse what Django's check --deploy calls a weak key (security.W009), before it is used."""
    if not key:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required in production")
    if len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is too weak: use at least {SECRET_KEY_MIN_LENGTH} random characters"
            f" with at least {SECRET_KEY_MIN_UNIQUE_CHARACTERS} distinct ones"
        )
    if key.startswith("django-insecure-"):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is Django's insecure development key")


def require(value: object, message: str) -> None:
    if not value:
        raise ImproperlyConfigured(message)
