"""Tasks only the tests send, run by the prefork workers of tests/test_broker.py (``-I tests.broker_tasks``).

They record what happened to them under ``app:tests:<key>`` (the app's ACL allows ``app:*``)
because a process that is killed returns nothing.
"""

from __future__ import annotations

import os
import time

from billiard.process import current_process
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from config.redis import get_redis

TRACE_TTL_SECONDS = 60 * 60


@shared_task(name="tests.outlive_the_soft_limit")
def outlive_the_soft_limit(key: str, seconds: float) -> None:
    """Sleep through the soft time limit, as a task stuck in C code would: only the hard limit stops it."""
    trace = get_redis()
    trace.hset(key, "pid", os.getpid())
    trace.expire(key, TRACE_TTL_SECONDS)
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        trace.hset(key, "soft_limit_at", time.time())
        time.sleep(seconds)


@shared_task(name="tests.process_id")
def process_id() -> int:
    return os.getpid()


@shared_task(name="tests.kill_own_process")
def kill_own_process(key: str) -> None:
    """A poison message: every delivery kills the process that runs it, counting the deliveries first."""
    if current_process().name == "MainProcess":
        raise RuntimeError("tests.kill_own_process runs only in a prefork child: it would kill the worker itself")
    trace = get_redis()
    trace.incr(key)
    trace.expire(key, TRACE_TTL_SECONDS)
    os._exit(1)
