"""Typed readers for the environment, the only source of deployment settings.

Small on purpose: the deploy role owns the variables, so each reader fails loudly on a value it
cannot parse instead of guessing.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name).lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    return value


def env_float(name: str, default: float, minimum: float | None = None) -> float:
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = env_str(name)
    if not raw:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def redis_db_url(base_url: str, db: int) -> str:
    """Return ``base_url`` pointing at logical database ``db``.

    REDIS_URL carries no database number because one server holds three of them (results, cache,
    sessions). A query string (TLS options) is kept. A ``rediss://`` URL without ``ssl_cert_reqs``
    gets ``required``: Celery refuses such a URL otherwise, and verifying the server is the only
    safe default.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in {"redis", "rediss"}:
        raise ImproperlyConfigured(f"REDIS_URL must start with redis:// or rediss://, got {parts.scheme!r}")
    if parts.path.strip("/"):
        raise ImproperlyConfigured("REDIS_URL must not name a database: the app appends /0, /1 and /2 itself")
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "rediss":
        query.setdefault("ssl_cert_reqs", "required")
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", urlencode(query), ""))
