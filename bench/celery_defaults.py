"""The sample app's Celery with Celery's own defaults, for the benchmark's comparison only.

What the deployed settings add, undone here: publisher confirms, quorum queues, late
acknowledgement, requeue on worker loss, prefetch 1, STARTED tracking, task events.
"""

from config.celery import app
from kombu import Exchange, Queue

app.conf.update(
    broker_transport_options={},
    task_default_queue="bench-defaults",
    task_default_exchange="bench-defaults",
    task_default_exchange_type="direct",
    task_default_routing_key="bench-defaults",
    task_default_queue_type="classic",
    task_queues=[
        Queue(
            "bench-defaults",
            Exchange("bench-defaults", type="direct"),
            routing_key="bench-defaults",
            queue_arguments={"x-queue-type": "classic"},
        )
    ],
    task_routes={},
    task_acks_late=False,
    task_reject_on_worker_lost=False,
    worker_prefetch_multiplier=4,
    task_track_started=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
)
