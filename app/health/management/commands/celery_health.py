"""Health of the Celery side, for ops and monitoring: ``manage.py celery_health``.

Pings the workers through the broker (all of them, or the ones named with ``--worker``, which
must each answer) and reads the age of beat's last heartbeat. Prints JSON; exits 0 when
healthy, 1 otherwise, so it can back a monitoring check or a deploy gate.
"""

from __future__ import annotations

import json
from typing import Any

from config.celery import app as celery_app
from django.core.management.base import BaseCommand, CommandError, CommandParser

from health.checks import check_beat


class Command(BaseCommand):
    help = "Ping the Celery workers through the broker and check beat's heartbeat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--worker", action="append", default=[], help="node name that must answer (repeatable)")
        parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for ping replies")
        parser.add_argument("--skip-beat", action="store_true", help="do not check beat's heartbeat")

    def handle(self, *args: object, **options: Any) -> None:
        expected: list[str] = options["worker"]
        replies = celery_app.control.ping(destination=expected or None, timeout=options["timeout"]) or []
        answered = sorted(name for reply in replies for name in reply)
        missing = sorted(set(expected) - set(answered))
        workers = {"ok": bool(answered) and not missing, "answered": answered, "missing": missing}
        report: dict[str, Any] = {"workers": workers}
        if not options["skip_beat"]:
            report["beat"] = check_beat()
        healthy = all(check["ok"] for check in report.values())
        self.stdout.write(json.dumps({"status": "ok" if healthy else "fail", **report}, indent=2))
        if not healthy:
            raise CommandError("Celery is not healthy", returncode=1)
