"""The Celery application: configured from Django settings (CELERY_ namespace), tasks autodiscovered."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

# Every task's requests record a hard time limit on the job's row (jobs/worker.py).
app = Celery("config", task_cls="jobs.worker:AppTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
