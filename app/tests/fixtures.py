"""Fixtures for users, logged-in clients and tokens, and fresh health results (a pytest plugin,
loaded by conftest.py's ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from config.redis import APP_KEY_PREFIX
from django.contrib.auth import get_user_model
from django.test import Client

PASSWORD = "correct-horse-battery-staple-42"  # noqa: S105 - a test user's


@pytest.fixture(autouse=True)
def fresh_health_results() -> Iterator[None]:
    """Every test probes afresh: /readyz and /healthz reuse results for a few seconds."""
    from health.checks import broker_probe, health, readiness  # noqa: PLC0415 - may load before Django is set up

    for forget in (readiness.clear, health.clear, broker_probe.reset):
        forget()
    yield
    for forget in (readiness.clear, health.clear, broker_probe.reset):
        forget()


@pytest.fixture
def no_limits_counted(redis_admin: redis.Redis) -> Iterator[None]:
    """Start with no submission or login counts: user ids repeat between tests."""

    def clear() -> None:
        for pattern in ("rate:*", "login:*"):
            keys = list(redis_admin.scan_iter(f"{APP_KEY_PREFIX}{pattern}"))
            if keys:
                redis_admin.delete(*keys)

    clear()
    yield
    clear()


def make_user(username: str, **fields: Any) -> Any:
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)


@pytest.fixture
def user(no_limits_counted: None) -> Any:
    return make_user("alice", email="alice@example.org")


@pytest.fixture
def other_user(no_limits_counted: None) -> Any:
    return make_user("bob")


@pytest.fixture
def user_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def user_token(user: Any) -> str:
    from access.models import ApiToken  # noqa: PLC0415 - this module may load before Django is set up

    _, token = ApiToken.issue(user, "tests")
    return token


def bearer(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})
