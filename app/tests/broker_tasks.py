"""Tasks only the tests send, run by the prefork workers of tests/test_broker.py (``-I tests.broker_tasks``).

They record what happened to them under ``app:tests:<key>`` (the app's ACL allows ``app:*``)
because a process that is killed returns nothing.

And a redelivery on demand, for any task: a task id the test enters in the hash ``REDELIVER``
has its deliveries (field ``<id>``) and its finished runs (``<id>:finished``) counted there, and
its first delivery's process dies right after the task returned (task_postrun), its effect done,
its result stored and its message not yet acknowledged. The worker calls
the child lost and hands the message back (reject_on_worker_lost): RabbitMQ delivers it again,
as after a worker host lost in the middle of the task.
"""

from __future__ import annotations

import os
import time
from typing import Any

from billiard.process import current_process
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_postrun, task_prerun
from config.redis import app_key, get_redis

TRACE_TTL_SECONDS = 60 * 60
REDELIVER = app_key("tests", "redeliver")


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


@task_prerun.connect
def count_a_delivery(task_id: str, **_: Any) -> None:
    trace = get_redis()
    if trace.hexists(REDELIVER, task_id):
        trace.hincrby(REDELIVER, task_id, 1)


@task_postrun.connect
def die_after_the_first_delivery(task_id: str, **_: Any) -> None:
    trace = get_redis()
    if not trace.hexists(REDELIVER, task_id):
        return
    finished = trace.hincrby(REDELIVER, f"{task_id}:finished", 1)
    if finished == 1 and current_process().name != "MainProcess":
        os._exit(1)
