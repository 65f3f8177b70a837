"""Settings of the prefork worker tests/test_broker.py starts: the test settings, one more queue, one delay.

That worker consumes only ``tests.prefork`` (``-Q``), so it and the in-process worker of the
other modules never take each other's messages. The queue is declared like the app's own: a
quorum queue on the app's topic exchange, which is what makes Celery use per-consumer QoS and
native delayed delivery for it.
"""

from __future__ import annotations

import os

from config.settings.test import *  # noqa: F403
from config.settings.test import CELERY_TASK_QUEUES, DATABASES
from kombu import Queue

_APP_QUEUE = CELERY_TASK_QUEUES[0]
PREFORK_QUEUE = Queue(
    "tests.prefork", _APP_QUEUE.exchange, routing_key="tests.prefork", queue_arguments=_APP_QUEUE.queue_arguments
)
CELERY_TASK_QUEUES = [*CELERY_TASK_QUEUES, PREFORK_QUEUE]

# How long the pool waits for a result from a child that died before it calls the task lost
# (WorkerLostError, and with reject_on_worker_lost the message goes back to the queue). Celery's
# 10 s would make every delivery of a poison message cost 10-15 s (the pool notices a lost job
# on its next 5-second round); the behaviour is the same.
CELERY_WORKER_LOST_WAIT = 0.5

# The test process's own database (tests/test_broker.py passes its path): the job rows this worker
# updates are the ones the tests wrote and read. SQLite in WAL mode lets the processes share it.
if os.environ.get("APP_TESTS_DATABASE"):
    DATABASES = {"default": {**DATABASES["default"], "NAME": os.environ["APP_TESTS_DATABASE"]}}
