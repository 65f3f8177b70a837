"""Task pipeline: N trivial tasks through the deployed Celery, against raw AMQP through the
same cluster (the limit), and against the same Celery app with Celery's default settings."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from .lab import app_script, in_container

N = 2000
HERE = Path(__file__).resolve().parent

STATS = """
def stats(submitted, done):
    latencies = sorted((d - s) * 1000 for s, d in zip(submitted, done))
    span = max(done) - min(submitted)
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)
    return {"n": len(latencies), "tasks_per_s": round(len(latencies) / span, 1),
            "p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99), "seconds": round(span, 2)}
"""

# The scripts below are str.format templates; STATS is prepended after formatting.
CELERY = """
import json, time
from datetime import timezone
from jobs import tasks
{setup}
submitted, results = [], []
for i in range({n}):
    submitted.append(time.time())
    results.append(tasks.add.apply_async(args=[i, 1]{options}))
done = []
for r in results:
    r.get(timeout=300)
    done.append(r.date_done.replace(tzinfo=timezone.utc).timestamp())
print(json.dumps(stats(submitted, done)))
"""

RAW = """
import json, threading, time
from django.conf import settings
from kombu import Connection, Exchange, Queue
queue = Queue("bench-raw", Exchange("bench-raw", type="direct"), routing_key="bench-raw",
              queue_arguments={{"x-queue-type": "quorum"}})
url = settings.CELERY_BROKER_URL
received = {{}}
ready = threading.Event()

def consume():
    with Connection(url) as conn:
        def on_message(body, message):
            received[body["i"]] = time.time()
            message.ack()
        with conn.Consumer(queue, callbacks=[on_message], prefetch_count=100):
            ready.set()
            while len(received) < {n}:
                conn.drain_events(timeout=30)

with Connection(url) as conn:
    queue(conn.default_channel).declare()
    queue(conn.default_channel).purge()
thread = threading.Thread(target=consume)
thread.start()
ready.wait(30)
submitted = []
with Connection(url, transport_options={{"confirm_publish": True}}) as conn:
    producer = conn.Producer(serializer="json")
    for i in range({n}):
        submitted.append(time.time())
        producer.publish({{"i": i}}, exchange=queue.exchange, routing_key="bench-raw", declare=[queue],
                         delivery_mode=2)
thread.join(300)
print(json.dumps(stats(submitted, [received[i] for i in range({n})])))
"""


def script(template: str, **values) -> str:
    return STATS + template.format(**values)


def unsafe_worker_up() -> None:
    unsafe_worker_down()  # a worker left by an interrupted run
    module = (HERE / "celery_defaults.py").read_text()
    for container in ("lab-web", "lab-worker"):
        in_container(
            container,
            "sh",
            "-c",
            "cat > /tmp/bench_celery_defaults.py && chmod 644 /tmp/bench_celery_defaults.py",
            stdin=module,
        )
    in_container(
        "lab-worker",
        "systemd-run",
        "--unit=bench-celery-defaults",
        "--collect",
        "--property=User=app",
        "--property=EnvironmentFile=/etc/django-app/app.env",
        "--property=WorkingDirectory=/srv/django-app/current",
        "--setenv=PYTHONPATH=/srv/django-app/current:/tmp",
        "/srv/django-app/current/venv/bin/celery",
        "--app=bench_celery_defaults",
        "worker",
        "--queues=bench-defaults",
        "--concurrency=2",
        "--hostname=bench-defaults@%h",
        "--loglevel=warning",
    )
    deadline = time.monotonic() + 60
    while not consumers("bench-defaults"):
        if time.monotonic() > deadline:
            log = in_container("lab-worker", "journalctl", "-u", "bench-celery-defaults", "--no-pager", "-n", "20")
            raise RuntimeError(f"the worker with Celery's defaults did not start:\n{log}")
        time.sleep(1)


def consumers(queue: str) -> int:
    """Consumers of a queue in the app's vhost, as RabbitMQ counts them (0 if it is not there)."""
    out = in_container("lab-rabbit1", "rabbitmqctl", "list_queues", "-q", "-p", "app", "name", "consumers")
    counts = dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)
    return int(counts.get(queue, "0"))


def unsafe_worker_down() -> None:
    for action in ("stop", "reset-failed"):
        # Either may find nothing to do (no such unit): not an error here.
        command = ["docker", "exec", "lab-worker", "systemctl", action, "bench-celery-defaults"]
        subprocess.run(command, capture_output=True, check=False)


def run() -> dict:
    print(f"[bench] tasks: {N} trivial tasks through the deployed Celery", flush=True)
    app_script("lab-web", script(CELERY, n=200, setup="", options=""))
    deployed = app_script("lab-web", script(CELERY, n=N, setup="", options=""))
    print(f"[bench] tasks: {N} raw AMQP messages (quorum queue, confirms, acks)", flush=True)
    raw = app_script("lab-web", script(RAW, n=N))
    print(f"[bench] tasks: {N} tasks with Celery's default settings", flush=True)
    try:
        unsafe_worker_up()
        setup = "import sys; sys.path.insert(0, '/tmp'); import bench_celery_defaults"
        options = ", queue='bench-defaults'"
        app_script("lab-web", script(CELERY, n=200, setup=setup, options=options))
        unsafe = app_script("lab-web", script(CELERY, n=N, setup=setup, options=options))
    finally:
        unsafe_worker_down()
    return {"n": N, "deployed": deployed, "raw": raw, "defaults": unsafe}
