"""Celery's Redis result backend, minus the subscription every producer makes per task.

Celery's backend subscribes the sending process to each task's result channel as it publishes
(``on_task_call``), so that a later ``.get()`` hears the result. The web tier never waits on a
result (a job's state is its database row, kept by the worker), so in a long-lived web process
those subscriptions only pile up, and they put Redis on the path of every submission: with Redis
down, a publish hung on them. Waiting on a result still works: ``.get()`` subscribes by itself.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend


class ProducerFriendlyRedisBackend(RedisBackend):
    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None
