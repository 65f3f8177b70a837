"""Helpers shared by every scenario's testinfra verifier (loaded as a pytest plugin).

The verifier runs on the controller with molecule's environment: the inventory, the
generated ansible.cfg and the roles path. ``run_role`` uses them to apply a role to a
test instance with chosen variables, for the tests that prove bad input is refused
before anything changes, or that a changed variable takes effect.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PlaybookRun:
    returncode: int
    output: str

    def recap(self, host: str) -> dict[str, int]:
        """Counters of the PLAY RECAP line for ``host`` (ok, changed, failed, ...)."""
        clean = re.sub(r"\x1b\[[0-9;]*m", "", self.output)
        match = re.search(rf"^{re.escape(host)}\s*:\s*(.*)$", clean, re.MULTILINE)
        if not match:
            return {}
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def run_playbook(
    playbook: list[dict], extra_vars: dict | None = None, timeout: int = 900, args: tuple[str, ...] = ()
) -> PlaybookRun:
    """Run ``playbook`` (a list of plays) against molecule's inventory, with more CLI ``args``."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    with tempfile.TemporaryDirectory(prefix="baseline-test-") as tmp:
        book = Path(tmp, "playbook.yml")
        book.write_text(json.dumps(playbook))
        command = ["ansible-playbook", "-i", inventory, *args, str(book)]
        if extra_vars:
            vars_file = Path(tmp, "vars.json")
            vars_file.write_text(json.dumps(extra_vars))
            command += ["-e", f"@{vars_file}"]
        env = dict(os.environ, ANSIBLE_FORCE_COLOR="false", ANSIBLE_NOCOLOR="true")
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    return PlaybookRun(result.returncode, result.stdout + result.stderr)


def run_role(role: str, host: str, role_vars: dict | None = None, play_vars: dict | None = None) -> PlaybookRun:
    """Apply ``role`` to ``host`` with ``role_vars`` as extra vars (highest precedence)."""
    play = {"name": f"Apply {role}", "hosts": host, "gather_facts": True, "roles": [role], "vars": play_vars or {}}
    return run_playbook([play], extra_vars=role_vars)


def assert_refused_before_any_change(run: PlaybookRun, host: str, variable: str) -> None:
    """The run failed, its message names ``variable``, and nothing on ``host`` changed."""
    recap = run.recap(host)
    assert run.returncode != 0, f"the role accepted bad {variable}:\n{run.output[-3000:]}"
    assert variable in run.output, f"the error does not name {variable}:\n{run.output[-3000:]}"
    assert recap.get("changed", -1) == 0, f"the refused run changed the host ({recap}):\n{run.output[-3000:]}"
    assert recap.get("failed", 0) == 1, f"expected exactly one failed task ({recap})"


def instance_name(host) -> str:
    """Molecule instance (container) name of a testinfra host."""
    return host.backend.get_hostname()


def wait_for(predicate, timeout: float, interval: float = 0.5, message: str = "condition") -> float:
    """Poll ``predicate`` until it is true; return the seconds it took, or fail after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"{message} not reached within {timeout} s")


# Python run in the sample app's context on a host the django_app role deployed
# (django-app-manage: the app user, its environment file, the live release).
APP_PRELUDE = (
    "import json; from jobs import tasks; from jobs.models import Charge, Job; "
    "from config.redis import app_key, get_redis; from celery.result import AsyncResult; "
)


def app_python(host, code: str, timeout: int = 120):
    """Run ``code`` in the app's context on ``host``; its last printed line is parsed as JSON."""
    result = host.run(f"timeout {timeout} django-app-manage shell -c {shlex.quote(APP_PRELUDE + code)}")
    assert result.rc == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_in_app(host, expression: str, timeout: int = 120):
    """Evaluate ``expression`` in the app's context; its value comes back through JSON."""
    return app_python(host, f"print(json.dumps({expression}))", timeout=timeout)
