"""The deployed release on the converged host."""

from __future__ import annotations

# The app hosts (django-app-db is their database).
testinfra_hosts = ["ansible://django-app-trixie", "ansible://django-app-bookworm"]

ROOT = "/srv/django-app"


def manage(host, *args: str):
    return host.run("django-app-manage " + " ".join(args))


def test_venv_is_built_from_the_system_python_and_imports_django_and_celery(host):
    python = f"{ROOT}/current/venv/bin/python"
    out = host.check_output(
        f"{python} -c 'import django, celery, sys; print(django.__version__, celery.__version__, sys.base_prefix)'"
    )
    django_version, celery_version, base_prefix = out.split()
    assert django_version.startswith("5.2."), out
    assert tuple(int(p) for p in celery_version.split(".")[:2]) >= (5, 5), out
    assert base_prefix == "/usr", f"the venv is not built on the system python: {out}"
    # mod_wsgi embeds the release's python3 (3.11 on bookworm, 3.13 on trixie): the venv must match it.
    system = host.check_output("/usr/bin/python3 -c 'import sys; print(*sys.version_info[:2], sep=\".\")'")
    venv = host.check_output(f"{python} -c 'import sys; print(*sys.version_info[:2], sep=\".\")'")
    assert venv == system, f"venv Python {venv}, system Python {system}"
    assert f"/venvs/py{system}-" in host.file(f"{ROOT}/current/venv").linked_to


def test_check_deploy_passes_on_the_host(host):
    result = manage(host, "check", "--deploy", "--fail-level", "WARNING")
    assert result.rc == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_environment_file_is_private_to_root_and_the_app(host):
    env = host.file("/etc/django-app/app.env")
    assert env.user == "root"
    assert env.group == "app"
    assert env.mode == 0o640, oct(env.mode)
    assert "DJANGO_SECRET_KEY=" in env.content_string
    assert host.file("/etc/django-app").mode == 0o750


def test_app_runs_as_a_dedicated_system_user(host):
    user = host.user("app")
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"
    assert user.name != "www-data"


def test_code_and_venv_are_read_only_for_the_app(host):
    current = host.file(f"{ROOT}/current")
    assert current.is_symlink
    release = host.file(current.linked_to)
    assert release.user == "root"
    assert host.run(f"runuser -u app -- touch {current.linked_to}/config/pwned.py").rc != 0
    assert host.run(f"runuser -u app -- touch {ROOT}/current/venv/bin/pwned").rc != 0


def test_static_files_are_collected_with_hashed_names(host):
    manifest = host.file(f"{ROOT}/current/staticfiles/staticfiles.json")
    assert manifest.exists
    assert '"css/app.css": "css/app.' in manifest.content_string


def test_database_is_migrated_and_the_admin_exists(host):
    plan = manage(host, "showmigrations", "--plan")
    assert plan.rc == 0, plan.stderr
    assert "[ ]" not in plan.stdout
    check = manage(
        host,
        "shell",
        "-c",
        "'from django.contrib.auth.models import User; print(User.objects.get(username=\"admin\").is_superuser)'",
    )
    assert check.stdout.strip().splitlines()[-1] == "True", check.stdout + check.stderr


def test_wsgi_entry_point_loads_the_application(host):
    script = f"exec(open('{ROOT}/wsgi.py').read()); print(type(application).__name__)"
    result = host.run(f'runuser -u app -- {ROOT}/current/venv/bin/python -c "{script}"')
    assert result.stdout.strip() == "WSGIHandler", result.stdout + result.stderr
