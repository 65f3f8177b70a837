"""``migrate`` under a PostgreSQL advisory lock: two deploys that overlap migrate one after the other.

The deploy runs it on one host, as the owner role, before any host switches to the new release.
The lock is taken on the connection the migrations use and released when they end (or when the
connection drops); a second runner waits for it, then finds nothing left to apply.
"""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

# Any 64-bit number the app's other advisory locks do not use: "migr" in ASCII.
MIGRATION_LOCK_ID = 0x6D696772


class Command(BaseCommand):
    help = "Apply the migrations while holding a PostgreSQL advisory lock (a plain migrate on other databases)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument("--lock-timeout", default="15min", help="how long to wait for another deploy's migrations")

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            call_command("migrate", database=options["database"], interactive=False, verbosity=options["verbosity"])
            return
        # Waiting for another deploy's lock, and the migrations themselves, take as long as they
        # take: no client-side query deadline (config.db) on this connection, whichever URL it uses
        # (the deploy's owner URL has none; a run by hand with the runtime URL would have one).
        connection.close()
        if "query_timeout" in connection.settings_dict["OPTIONS"]:
            connection.settings_dict["OPTIONS"]["query_timeout"] = 0
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [options["lock_timeout"]])
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
        try:
            self.stdout.write(f"holding advisory lock {MIGRATION_LOCK_ID}")
            call_command("migrate", database=options["database"], interactive=False, verbosity=options["verbosity"])
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
                cursor.execute("RESET lock_timeout")
