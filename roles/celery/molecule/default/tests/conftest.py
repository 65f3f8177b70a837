"""Helpers of the Celery verifier: the app's tasks, run on the instance."""

from __future__ import annotations

from baseline_testlib import run_in_app

UNITS = ["celery-worker@default.service", "celery-worker@priority.service", "celery-beat.service"]


def main_pid(host, unit: str) -> int:
    return int(host.check_output(f"systemctl show -p MainPID --value {unit}"))


def submit(host, task: str, *args) -> str:
    """Send jobs.<task>(*args); return the task id."""
    return run_in_app(host, f"tasks.{task}.apply_async(args={list(args)!r}).id")


def result_of(host, task: str, *args):
    """Send jobs.<task>(*args) and wait for its result."""
    return run_in_app(host, f"tasks.{task}.apply_async(args={list(args)!r}).get(timeout=60)")


def state_of(host, task_id: str) -> str:
    return run_in_app(host, f"AsyncResult({task_id!r}).state")


def runs_of(host, run_id: str) -> dict[str, str]:
    """Executions per token recorded by jobs.sleep / jobs.record (app:runs:<run_id>)."""
    return run_in_app(host, f"get_redis().hgetall(app_key('runs', {run_id!r}))")


def last_heartbeat(host) -> float:
    return run_in_app(host, "float(get_redis().get(app_key('beat', 'last')))")
