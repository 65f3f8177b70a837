"""Per-caller submission limits: a rate (jobs per minute) and a cap on unfinished jobs.

The rate is a fixed one-minute window counted in Redis (``app:rate:<caller>:<minute>``), shared
by every web host; the cap counts the caller's unfinished jobs of the last hour in PostgreSQL
(older unfinished rows are lost work, not load). Either refusal is a 429 with Retry-After. A Redis
that cannot count refuses too (the caller gets a 503): a limit that silently stops limiting
is no limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import timedelta

from config.redis import app_key, get_redis
from django.conf import settings
from django.utils import timezone
from jobs.models import Job

from .auth import Principal

ACTIVE_WINDOW = timedelta(hours=1)
ACTIVE_RETRY_AFTER_SECONDS = 10


@dataclass(frozen=True)
class LimitExceededError(Exception):
    message: str
    retry_after: int


def _limits(principal: Principal) -> tuple[int, int]:
    if principal.is_service:
        return settings.APP_SERVICE_SUBMIT_RATE_PER_MINUTE, settings.APP_SERVICE_MAX_ACTIVE_JOBS
    return settings.APP_SUBMIT_RATE_PER_MINUTE, settings.APP_MAX_ACTIVE_JOBS


def _unfinished_jobs(principal: Principal) -> int:
    jobs = Job.objects.exclude(state__in=Job.FINISHED).filter(created_at__gte=timezone.now() - ACTIVE_WINDOW)
    jobs = jobs.filter(owner__isnull=True) if principal.is_service else jobs.filter(owner=principal.user)
    return jobs.count()


def check_submission(principal: Principal) -> None:
    """Count one submission for ``principal``; raise LimitExceededError when over a limit."""
    per_minute, max_active = _limits(principal)
    now = time.time()
    window = int(now // 60)
    key = app_key("rate", principal.key, str(window))
    with get_redis().pipeline() as pipe:
        count, _ = pipe.incr(key).expire(key, 120).execute()
    if count > per_minute:
        retry_after = max(1, math.ceil((window + 1) * 60 - now))
        raise LimitExceededError(f"at most {per_minute} jobs a minute; try again in {retry_after} s", retry_after)
    active = _unfinished_jobs(principal)
    if active >= max_active:
        raise LimitExceededError(
            f"{active} of your jobs are still queued or running (at most {max_active}); wait for some to finish",
            ACTIVE_RETRY_AFTER_SECONDS,
        )
