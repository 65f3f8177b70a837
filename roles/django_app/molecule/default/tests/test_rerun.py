"""Second deploys: changed code, migrations that run once for both hosts, and one that fails."""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import testinfra

from baseline_testlib import assert_refused_before_any_change, instance_name, run_playbook, run_role

# Debian 13, the primary release.
testinfra_hosts = ["ansible://django-app-trixie"]

ROOT = "/srv/django-app"
APP = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).parent.parent / "app"
# The app's newest migration: the test migrations come after it.
LATEST = max(path.stem for path in (APP / "jobs" / "migrations").glob("[0-9][0-9][0-9][0-9]_*.py"))
NEW_MIGRATION = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("jobs", "LATEST")]
    operations = [
        migrations.CreateModel(name="Probe", fields=[("id", models.BigAutoField(primary_key=True))]),
    ]
"""
NEW_MODEL = """

class Probe(models.Model):
    pass
"""
BROKEN_MIGRATION = """
from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("this migration fails on purpose")


class Migration(migrations.Migration):
    dependencies = [("jobs", "LATEST")]
    operations = [migrations.RunPython(fail)]
"""


@pytest.fixture
def app_copy():
    with tempfile.TemporaryDirectory(prefix="django-app-") as tmp:
        copy = Path(tmp) / "app"
        shutil.copytree(APP, copy, ignore=shutil.ignore_patterns("__pycache__", "staticfiles", "db.sqlite3"))
        yield copy


def other_host(name: str):
    return testinfra.get_host(f"docker://{name}")


def current_release(host) -> str:
    return host.file(f"{ROOT}/current").linked_to


def test_changed_code_switches_current_and_keeps_the_previous_release(host, app_copy):
    before = current_release(host)
    template = app_copy / "templates" / "base.html"
    template.write_text(template.read_text() + "\n<!-- second release -->\n")
    run = run_role("django_app", instance_name(host), {"django_app_source": str(app_copy)})
    assert run.returncode == 0, run.output[-4000:]
    after = current_release(host)
    assert after != before
    assert host.file(before).is_directory, "the previous release was removed"
    assert "second release" in host.file(f"{after}/templates/base.html").content_string
    assert host.run("django-app-manage check --deploy --fail-level WARNING").rc == 0


def test_app_packages_named_like_the_top_level_exclusions_are_deployed(host, app_copy):
    # An app may well have a package called media, tests or staticfiles: only the project's own
    # top-level directories of those names stay out of the bundle.
    nested = ["jobs/media/__init__.py", "jobs/tests/__init__.py", "jobs/staticfiles/__init__.py"]
    for relative in nested:
        (app_copy / relative).parent.mkdir(parents=True, exist_ok=True)
        (app_copy / relative).write_text("# nested\n")
    (app_copy / "media" / "upload.png").parent.mkdir(exist_ok=True)
    (app_copy / "media" / "upload.png").write_text("a developer's local upload")
    run = run_role("django_app", instance_name(host), {"django_app_source": str(app_copy)})
    assert run.returncode == 0, run.output[-4000:]
    release = current_release(host)
    missing = [relative for relative in nested if not host.file(f"{release}/{relative}").exists]
    assert missing == [], f"the bundle dropped app packages: {missing}"
    assert not host.file(f"{release}/tests").exists
    assert not host.file(f"{release}/media").exists


def test_a_virtualenv_no_release_uses_is_removed_with_the_releases(host, app_copy):
    # What a pruned release whose requirements differed from every kept one leaves behind.
    orphan = f"{ROOT}/venvs/py3.0-000000000000"
    host.run_expect([0], f"mkdir -p {orphan}/bin && touch {orphan}/.complete")
    template = app_copy / "templates" / "base.html"
    template.write_text(template.read_text() + "\n<!-- another release -->\n")
    run = run_role("django_app", instance_name(host), {"django_app_source": str(app_copy)})
    assert run.returncode == 0, run.output[-4000:]
    assert not host.file(orphan).exists, "a virtualenv no release uses was kept"
    releases = host.check_output(f"ls -d {ROOT}/releases/*").split()
    used = {host.file(f"{release}/venv").linked_to for release in releases}
    on_disk = set(host.check_output(f"ls -d {ROOT}/venvs/*").split())
    assert on_disk == used, f"virtualenvs on disk {on_disk}, used by the releases {used}"


def deploy_both(app_source: Path):
    play = {"name": "Deploy to both app hosts", "hosts": "app", "roles": ["django_app"]}
    return run_playbook([play], extra_vars={"django_app_source": str(app_source)})


def test_a_new_migration_runs_once_for_both_hosts_before_they_switch(host, app_copy):
    (app_copy / "jobs" / "migrations" / "9001_probe.py").write_text(NEW_MIGRATION.replace("LATEST", LATEST))
    models = app_copy / "jobs" / "models.py"
    models.write_text(models.read_text() + NEW_MODEL)
    run = deploy_both(app_copy)
    assert run.returncode == 0, run.output[-4000:]
    migrated = run.output.split("TASK [django_app : Gate - migrate the database")[1].split("TASK [")[0]
    print(f"\n[django_app] migrate ran on: {[line for line in migrated.splitlines() if 'changed:' in line]}")
    assert migrated.count("changed:") == 1, migrated
    releases = {
        name: other_host(name).file(f"{ROOT}/current").linked_to
        for name in ("django-app-trixie", "django-app-bookworm")
    }
    assert len({Path(r).name for r in releases.values()}) == 1, releases
    shell = "from jobs.models import Probe; print(Probe.objects.count())"
    assert host.run(f"django-app-manage shell -c {shlex.quote(shell)}").stdout.strip().splitlines()[-1] == "0"


def test_migrate_waits_for_the_advisory_lock_another_deploy_holds(host):
    # The lock migrate_locked takes ("migr" in ASCII), held for 4 s by another session.
    db = other_host("django-app-db")
    hold = "SELECT pg_advisory_lock(1835624306); SELECT pg_sleep(4); SELECT pg_advisory_unlock(1835624306)"
    db.run_expect([0], f"nohup runuser -u postgres -- psql -d app -c {shlex.quote(hold)} > /dev/null 2>&1 &")
    time.sleep(1)
    started = time.monotonic()
    migrate = host.run("django-app-manage migrate_locked")
    waited = time.monotonic() - started
    print(f"\n[django_app] migrate_locked waited {waited:.1f} s for the lock another session held")
    assert migrate.rc == 0, migrate.stdout + migrate.stderr
    assert waited >= 2, waited


def test_failed_migration_leaves_every_host_on_its_release(host, app_copy):
    before = {
        name: other_host(name).file(f"{ROOT}/current").linked_to
        for name in ("django-app-trixie", "django-app-bookworm")
    }
    migrations = app_copy / "jobs" / "migrations"
    (migrations / "9002_fails.py").write_text(BROKEN_MIGRATION.replace("LATEST", LATEST))
    run = deploy_both(app_copy)
    assert run.returncode != 0, "the deploy with a failing migration succeeded"
    assert "this migration fails on purpose" in run.output
    after = {name: other_host(name).file(f"{ROOT}/current").linked_to for name in before}
    assert after == before, f"a host switched to the release whose migration failed: {before} -> {after}"
    assert host.run("django-app-manage check").rc == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("django_app_secret_key", "too-short"),
        ("django_app_allowed_hosts", []),
        ("django_app_redis_url", "redis://app:pw@redis:6379/3"),
        ("django_app_log_level", "CHATTY"),
        ("django_app_database_owner_url", ""),
    ],
)
def test_bad_input_is_refused_before_any_change(host, variable, value):
    run = run_role("django_app", instance_name(host), {variable: value})
    assert_refused_before_any_change(run, instance_name(host), variable)
