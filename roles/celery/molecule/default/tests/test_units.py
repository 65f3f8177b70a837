"""The Celery units on the converged host."""

from __future__ import annotations

import json
import re
import time

from baseline_testlib import instance_name, wait_for
from conftest import UNITS, last_heartbeat, main_pid, result_of, runs_of, state_of, submit

DEFAULT_WORKER = "celery-worker@default.service"


def test_every_unit_is_active_enabled_and_runs_as_the_app_user(host):
    for unit in [*UNITS, "celery.target"]:
        service = host.service(unit)
        assert service.is_enabled, unit
        assert service.is_running, unit
    for unit in UNITS:
        user = host.check_output(f"ps -o user= -p {main_pid(host, unit)}")
        assert user == "app", f"{unit} runs as {user}"
        children = host.check_output(f"ps -o user= --ppid {main_pid(host, unit)} || true").split()
        assert set(children) <= {"app"}, f"{unit} children run as {children}"


def test_health_command_pings_every_pool_and_sees_beat(host):
    result = host.run("celery-health --timeout 5")
    assert result.rc == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    name = instance_name(host)
    assert report["workers"]["answered"] == [f"default@{name}", f"priority@{name}"], report
    assert report["beat"]["ok"], report


def test_each_queue_is_served_by_its_pool(host):
    urgent = result_of(host, "urgent", "ping")
    report = result_of(host, "report", "weekly")
    assert urgent["hostname"] == f"priority@{instance_name(host)}", urgent
    assert urgent["queue"] == "high", urgent
    assert report["hostname"] == f"priority@{instance_name(host)}", report
    assert report["queue"] == "low", report
    assert result_of(host, "add", 2, 3) == 5


def test_beat_runs_the_heartbeat_on_schedule(host):
    first = last_heartbeat(host)
    time.sleep(6)
    second = last_heartbeat(host)
    assert second > first, f"no heartbeat between {first} and {second}"
    assert time.time() - second < 12, "the heartbeat is older than two periods"
    assert host.run("ls /var/lib/celery-beat/schedule*").rc == 0, "beat keeps no schedule in its state directory"


def test_stop_waits_for_a_running_task_to_finish(host):
    run_id = f"stop-{int(time.time())}"
    task_id = submit(host, "sleep", 10, run_id, "t")
    wait_for(lambda: state_of(host, task_id) == "STARTED", 30, message="task STARTED")
    started = time.monotonic()
    host.run_expect([0], f"systemctl stop {DEFAULT_WORKER}")
    stopped_after = time.monotonic() - started
    try:
        runs = runs_of(host, run_id)
        print(f"\n[celery] systemctl stop returned after {stopped_after:.1f} s; runs of the 10 s task: {runs}")
        assert runs == {"t": "1"}, f"the running task did not finish before the stop returned: {runs}"
        assert stopped_after >= 3, stopped_after
    finally:
        host.run_expect([0], f"systemctl start {DEFAULT_WORKER}")
    assert state_of(host, task_id) == "SUCCESS"


def test_kill_9_restarts_the_worker_and_the_running_task_completes(host):
    run_id = f"kill-{int(time.time())}"
    task_id = submit(host, "sleep", 8, run_id, "t")
    wait_for(lambda: state_of(host, task_id) == "STARTED", 30, message="task STARTED")
    old_pid = main_pid(host, DEFAULT_WORKER)
    host.run_expect([0], f"kill -9 {old_pid}")
    wait_for(lambda: main_pid(host, DEFAULT_WORKER) not in (0, old_pid), 60, message="worker restarted")
    wait_for(lambda: state_of(host, task_id) == "SUCCESS", 120, interval=2, message="task SUCCESS")
    runs = runs_of(host, run_id)
    print(f"\n[celery] kill -9 {old_pid}: systemd restarted the worker; the task was delivered again, runs: {runs}")
    assert runs == {"t": "1"}, runs


def test_a_worker_may_write_to_the_media_directory_and_nowhere_else_in_the_app(host):
    # In the worker's own mount namespace (ProtectSystem=strict), as the app's user.
    pid = main_pid(host, DEFAULT_WORKER)
    media = "/srv/django-app/shared/media"

    def write(path: str):
        command = f"mkdir -p {path}/worker-probe && echo probe > {path}/worker-probe/file"
        return host.run(f"nsenter --target {pid} --mount -- runuser -u app -- sh -c '{command}'")

    written = write(media)
    assert written.rc == 0, written.stderr
    assert host.file(f"{media}/worker-probe/file").content_string == "probe\n"
    host.run_expect([0], f"rm -r {media}/worker-probe")
    refused = write("/srv/django-app/shared/data")
    assert refused.rc != 0
    assert "Read-only file system" in refused.stderr


def test_units_score_ok_in_systemd_analyze_security(host):
    for unit in UNITS:
        output = host.check_output(f"systemd-analyze security --no-pager {unit}")
        score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", output).group(1))
        print(f"\n[celery] systemd-analyze security {unit}: {score}")
        assert score <= 4.9, output[-1500:]
