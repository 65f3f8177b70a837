from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        # The workers record what happens to each job's task (jobs/signals.py).
        from . import signals  # noqa: F401, PLC0415
