"""Django's PostgreSQL backend, with a deadline on every round trip to the server.

libpq bounds connecting (``connect_timeout``), but not a query on an open connection: a server
that hangs (SIGSTOP, a frozen VM, a storage stall) while its kernel still acknowledges packets
holds the request's thread until mod_wsgi gives up a minute later, and TCP keepalives never fire.
psycopg can bound how long it waits for the server (``Connection.wait(timeout=)``): every wait
gets ``DATABASE_QUERY_TIMEOUT`` seconds (OPTIONS ``query_timeout``; 0 = none, as the migrations
run), and the check Django makes before reusing a persistent connection gets
``USABLE_CHECK_TIMEOUT``. A connection that missed its deadline is closed (its state is unknown)
and the error is an OperationalError, which config.middleware answers with 503.
"""

from __future__ import annotations

import types
from typing import Any

import psycopg
from django.db.backends.postgresql import base as postgresql

# The check before reusing a connection is a "SELECT 1": a server that cannot answer it this
# fast is treated as gone, and Django opens a new connection (bounded by connect_timeout).
USABLE_CHECK_TIMEOUT = 0.5


class DeadlineConnection(psycopg.Connection):
    """A psycopg connection whose waits on the server end at ``deadline`` seconds."""

    deadline: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if timeout is None:
            timeout = self.deadline
        try:
            return super().wait(gen, interval=interval, timeout=timeout)
        # psycopg's own "no answer in time" (an OperationalError); private, hence named here only.
        except psycopg.errors._WaitTimeout:
            self.close()
            raise psycopg.OperationalError(f"PostgreSQL did not answer within {timeout} s") from None


def _connect(*args: Any, query_timeout: float = 0, **kwargs: Any) -> DeadlineConnection:
    connection = DeadlineConnection.connect(*args, **kwargs)
    connection.deadline = query_timeout or None
    return connection


# Django calls ``self.Database.connect``: the same psycopg module, but connecting through the
# class above.
_Database = types.ModuleType("psycopg_with_deadlines")
_Database.__dict__.update({k: v for k, v in vars(psycopg).items() if not k.startswith("__")})
_Database.__version__ = psycopg.__version__
_Database.connect = _connect


class DatabaseWrapper(postgresql.DatabaseWrapper):
    Database = _Database

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        # Django passes OPTIONS through to connect(); query_timeout is ours, not libpq's.
        params["query_timeout"] = float(self.settings_dict["OPTIONS"].get("query_timeout", 0) or 0)
        return params

    def is_usable(self) -> bool:
        if self.connection is None:
            return False
        saved = self.connection.deadline
        self.connection.deadline = USABLE_CHECK_TIMEOUT
        try:
            return super().is_usable()
        finally:
            self.connection.deadline = saved
