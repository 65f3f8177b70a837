"""Second deploys: changed code, and a migration that fails."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from baseline_testlib import assert_refused_before_any_change, instance_name, run_role

# Debian 13, the primary release.
testinfra_hosts = ["ansible://django-app-trixie"]

ROOT = "/srv/django-app"
APP = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).parent.parent / "app"
BROKEN_MIGRATION = """
from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("this migration fails on purpose")


class Migration(migrations.Migration):
    dependencies = []
    operations = [migrations.RunPython(fail)]
"""


@pytest.fixture
def app_copy():
    with tempfile.TemporaryDirectory(prefix="django-app-") as tmp:
        copy = Path(tmp) / "app"
        shutil.copytree(APP, copy, ignore=shutil.ignore_patterns("__pycache__", "staticfiles", "db.sqlite3"))
        yield copy


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


def test_failed_migration_leaves_current_on_the_old_release(host, app_copy):
    before = current_release(host)
    migrations = app_copy / "jobs" / "migrations"
    migrations.mkdir(exist_ok=True)
    (migrations / "__init__.py").write_text("")
    (migrations / "0001_fails.py").write_text(BROKEN_MIGRATION)
    run = run_role("django_app", instance_name(host), {"django_app_source": str(app_copy)})
    assert run.returncode != 0, "the deploy with a failing migration succeeded"
    assert "this migration fails on purpose" in run.output
    assert current_release(host) == before
    assert host.run("django-app-manage check").rc == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("django_app_secret_key", "too-short"),
        ("django_app_allowed_hosts", []),
        ("django_app_redis_url", "redis://app:pw@redis:6379/3"),
        ("django_app_log_level", "CHATTY"),
    ],
)
def test_bad_input_is_refused_before_any_change(host, variable, value):
    run = run_role("django_app", instance_name(host), {variable: value})
    assert_refused_before_any_change(run, instance_name(host), variable)
