"""End to end through HTTPS: the UI and API submit jobs that run on the workers via the
RabbitMQ cluster, with results from Redis; beat's heartbeat; a chord; a countdown; and Celery on
the broker: quorum queues, native delayed delivery, publisher confirms, dead-lettering."""

from __future__ import annotations

import re
import shlex
import time
import uuid

from baseline_testlib import app_python, run_in_app, wait_for
from conftest import SITE

testinfra_hosts = ["ansible://stack-web"]


def wait_for_job(site, job_id: str, timeout: float = 60) -> dict:
    job: dict = {}

    def done() -> bool:
        nonlocal job
        job = site.api("GET", f"/api/jobs/{job_id}/")
        return job["state"] in {"SUCCESS", "FAILURE"}

    wait_for(done, timeout, message=f"job {job_id} finished")
    return job


def test_healthz_reports_every_component_healthy(site):
    seconds = wait_for(lambda: site.healthz()[0] == 200, 120, interval=3, message="/healthz 200")
    code, body = site.healthz()
    checks = ", ".join(f"{name}={check['ok']}" for name, check in body["checks"].items())
    print(f"\n[stack] /healthz 200 after {seconds:.0f} s: {checks}")
    assert code == 200, body
    assert set(body["checks"]) == {"database", "cache", "broker", "results", "workers", "beat"}
    assert all(check["ok"] for check in body["checks"].values()), body


def test_healthz_shows_the_postgresql_primary_and_its_replica_lag(site):
    database = site.healthz()[1]["checks"]["database"]
    print(f"\n[stack] /healthz database: {database}")
    assert database["vendor"] == "postgresql", database
    assert database["server"] == "stack-pg1", database
    replicas = {replica["name"]: replica for replica in database["replicas"]}
    assert replicas["stack-pg2"]["state"] == "streaming", database
    assert replicas["stack-pg2"]["lag_bytes"] < 16 * 1024 * 1024, database


def test_http_redirects_to_the_public_https_url(site):
    out = site.host.check_output("curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://localhost/jobs/")
    assert out == "301 https://localhost:8443/jobs/", out


def test_api_job_runs_on_a_worker_and_its_result_comes_back(site):
    job = site.api("POST", "/api/jobs/", {"kind": "urgent", "args": ["end to end"]})
    done = wait_for_job(site, job["id"])
    assert done["state"] == "SUCCESS", done
    assert done["result"]["hostname"] == "priority@stack-worker", done
    assert done["result"]["queue"] == "high", done
    # The result the API returned is the one in Redis (db 0, the celery: prefix).
    assert run_in_app(site.host, f"get_redis().exists('celery:celery-task-meta-{job['id']}')") == 1
    # The job's row in PostgreSQL, written by the web tier and updated by the worker that ran it.
    fields = "[j.state, j.worker, j.submitted_by, j.finished_at is not None]"
    row = run_in_app(site.host, f"(lambda j: {fields})(Job.objects.get(id={job['id']!r}))")
    print(f"\n[stack] job {job['id']} row in PostgreSQL: {row}")
    assert row == ["SUCCESS", "priority@stack-worker", "api", True], row


def test_a_charge_redelivered_to_another_worker_process_charges_once(site):
    key = f"stack-{time.time_ns()}"
    first = run_in_app(site.host, f"tasks.charge.delay({key!r}, 700).get(timeout=60)")
    again = run_in_app(site.host, f"tasks.charge.delay({key!r}, 700).get(timeout=60)")
    rows = run_in_app(site.host, f"Charge.objects.filter(idempotency_key={key!r}).count()")
    assert first == again, (first, again)
    assert rows == 1, rows


def test_a_file_saved_in_a_new_media_subdirectory_is_served(site, host):
    # As the app saves an upload: Django's storage, the app's user, the daemons' umask.
    name = f"uploads/{uuid.uuid4().hex}/note.txt"
    save = (
        "from django.core.files.base import ContentFile; from django.core.files.storage import default_storage; "
        f"print(default_storage.save({name!r}, ContentFile(b'uploaded')))"
    )
    command = f"umask 0027 && django-app-manage shell -c {shlex.quote(save)}"
    host.run_expect([0], f"runuser -u app -- sh -c {shlex.quote(command)}")
    assert site.curl(f"{SITE}/media/{name}") == "uploaded"


def test_anonymous_callers_cannot_queue_work(site):
    jar = "/tmp/anonymous-cookies"
    # Even with a valid CSRF token (CSRF is not authentication), the form sends them to log in.
    page = site.curl("-c", jar, f"{SITE}/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = ["-b", jar, "-X", "POST", "-H", "Referer: https://localhost/"]
    data = ["--data", f"kind=sleep&seconds=120&csrfmiddlewaretoken={token}"]
    out = site.curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", *form, *data, f"{SITE}/")
    assert out == "302 https://localhost/accounts/login/?next=/", out
    body = ["-H", "Content-Type: application/json", "--data", '{"kind": "chord", "args": [100]}']
    assert site.status("/api/jobs/", "-X", "POST", *body) == 401
    assert site.status("/api/jobs/", "-X", "POST", "-H", "Authorization: Bearer not-a-token", *body) == 401
    # No session for anyone who has not logged in.
    assert "sessionid" not in site.curl("-D", "-", "-o", "/dev/null", f"{SITE}/accounts/login/")


def test_a_users_token_made_by_the_operator_sees_only_their_jobs(site):
    site.login("/tmp/token-user-cookies")
    token = site.host.check_output("django-app-manage api_token create stacker --name stack-test 2>/dev/null")
    auth = ["-H", f"Authorization: Bearer {token}"]
    body = ["-X", "POST", "-H", "Content-Type: application/json", "--data", '{"kind": "add", "args": [4, 5]}']
    mine = site.json("/api/jobs/", *auth, *body)["id"]
    services = site.api("POST", "/api/jobs/", {"kind": "add", "args": [1, 1]})["id"]
    assert wait_for_job(site, services)["result"] == 2
    assert site.status(f"/api/jobs/{mine}/", *auth) == 200
    assert site.status(f"/api/jobs/{services}/", *auth) == 404
    site.host.run_expect([0], f"django-app-manage api_token revoke {token[:12]}")
    assert site.status(f"/api/jobs/{mine}/", *auth) == 401


def test_ui_submission_is_csrf_protected_and_runs(site):
    jar = "/tmp/ui-cookies"
    site.login(jar)
    page = site.curl("-b", jar, "-c", jar, f"{SITE}/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    refused = site.status("/", "-b", jar, "-X", "POST", "--data", "kind=add&x=2&y=3")
    assert refused == 403, "a POST without the CSRF token was accepted"
    headers = site.curl(
        "-b",
        jar,
        "-c",
        jar,
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-X",
        "POST",
        "-H",
        "Referer: https://localhost/",
        "--data",
        f"kind=add&x=2&y=3&csrfmiddlewaretoken={token}",
        f"{SITE}/",
    )
    location = re.search(r"^location: (\S+)", headers, re.MULTILINE | re.IGNORECASE).group(1)
    job_id = location.rstrip("/").rsplit("/", 1)[-1]
    # The user's job: its page's status, not the service token's API (which does not see it).
    status: dict = {}

    def finished() -> bool:
        status.update(site.json(f"/jobs/{job_id}/status/", "-b", jar))
        return status.get("ready") is True

    wait_for(finished, 60, message=f"job {job_id} finished")
    assert status["result"] == 5, status
    assert job_id in site.curl("-b", jar, f"{SITE}/")


def test_beat_heartbeat_is_visible_in_healthz(site):
    _, body = site.healthz()
    beat = body["checks"]["beat"]
    print(f"\n[stack] beat heartbeat age {beat.get('age_seconds')} s (limit {beat.get('max_age_seconds')} s)")
    assert beat["ok"], beat
    assert beat["age_seconds"] < 30, beat


def test_a_chord_completes(site):
    job = site.api("POST", "/api/jobs/", {"kind": "chord", "args": [10]})
    done = wait_for_job(site, job["id"])
    assert done["state"] == "SUCCESS", done
    assert done["result"] == sum(i * i for i in range(10)), done


COUNTDOWN = """
from datetime import datetime, timedelta, timezone
eta = datetime.now(timezone.utc) + timedelta(seconds=5)
lateness = tasks.remind.apply_async(args=[eta.isoformat()], eta=eta).get(timeout=60)
print(json.dumps([eta.isoformat(), lateness]))
"""


def test_a_countdown_task_runs_on_time(site):
    submitted = time.time()
    eta, lateness = app_python(site.host, COUNTDOWN)
    waited = time.time() - submitted
    print(f"\n[stack] countdown 5 s: ran {lateness:.2f} s after its ETA ({waited:.1f} s after submission)")
    assert waited >= 5, waited
    assert 0 <= lateness < 2, f"ran {lateness} s after {eta}"


# --- Celery on the broker: quorum queues, native delayed delivery, confirms, dead-lettering ---


def test_celery_queues_are_quorum_queues_under_the_roles_policy(broker):
    queues = {q["name"]: q for q in broker.ctl("list_queues", "-p", "app", "name", "type", "policy", "members")}
    for name in ("default", "high", "low"):
        assert queues[name]["type"] == "quorum", queues[name]
        assert queues[name]["policy"] == "quorum-defaults", queues[name]
        assert len(queues[name]["members"]) == 3, queues[name]
    assert queues["dead-letters"]["policy"] == "dead-letter-queue", queues["dead-letters"]
    assert queues["heartbeat"]["type"] == "quorum", queues["heartbeat"]
    assert queues["heartbeat"]["policy"] == "liveness", queues["heartbeat"]


DELAYED = """
from datetime import datetime, timedelta, timezone
eta = datetime.now(timezone.utc) + timedelta(seconds=20)
print(json.dumps(tasks.remind.apply_async(args=[eta.isoformat()], eta=eta).id))
"""


def test_a_countdown_waits_in_rabbitmq_not_in_a_worker(site, broker):
    task_id = app_python(site.host, DELAYED)

    def waiting_in_the_delay_queues() -> bool:
        queues = broker.ctl("list_queues", "-p", "app", "name", "messages", "messages_unacknowledged")
        delayed = sum(q["messages"] for q in queues if q["name"].startswith("celery_delayed_"))
        held = next(q for q in queues if q["name"] == "default")["messages_unacknowledged"]
        return delayed >= 1 and held == 0

    # Native delayed delivery: the message sits in RabbitMQ's celery_delayed_* queues, not
    # unacknowledged in a worker's memory (where a worker restart would bring it back early or late).
    wait_for(waiting_in_the_delay_queues, 15, interval=1, message="the countdown task in celery_delayed_* queues")
    lateness = run_in_app(site.host, f"AsyncResult({task_id!r}).get(timeout=60)")
    print(f"\n[stack] countdown 20 s through RabbitMQ's delay queues: ran {lateness:.2f} s after its ETA")
    assert 0 <= lateness < 2, lateness


def test_the_broker_confirms_every_task_the_app_publishes(site, broker):
    def confirmed() -> int:
        return broker.api("/vhosts/app").get("message_stats", {}).get("confirm", 0)

    before = confirmed()
    run_in_app(site.host, "[tasks.add.delay(i, i).id for i in range(20)]")
    # Management statistics refresh every 5 s.
    wait_for(lambda: confirmed() >= before + 20, 30, interval=1, message="20 more publisher confirms")
    print(f"\n[stack] publisher confirms on vhost app: {before} -> {confirmed()} after 20 tasks")


def test_a_message_celery_rejects_is_dead_lettered(site, broker):
    def dead_letters() -> int:
        queues = broker.ctl("list_queues", "-p", "app", "name", "messages")
        return next(q for q in queues if q["name"] == "dead-letters")["messages"]

    before = dead_letters()
    marker = f"unknown-{time.time_ns()}"
    # A task no worker knows: the worker rejects it without requeueing, and the policy's
    # dead-letter exchange takes it.
    run_in_app(site.host, f"tasks.add.app.send_task('jobs.{marker}', queue='default').id")
    wait_for(lambda: dead_letters() > before, 30, interval=1, message="the rejected task in dead-letters")
    messages = broker.api(
        "/queues/app/dead-letters/get", {"count": before + 1, "ackmode": "reject_requeue_true", "encoding": "auto"}
    )
    ours = [m for m in messages if m["properties"].get("headers", {}).get("task") == f"jobs.{marker}"]
    assert ours, [m["properties"].get("headers", {}).get("task") for m in messages]
    death = ours[0]["properties"]["headers"]["x-first-death-queue"]
    print(f"\n[stack] rejected task jobs.{marker} dead-lettered from queue {death!r} to dead-letters")
    assert death == "default", ours[0]["properties"]["headers"]
