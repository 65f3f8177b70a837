"""The site playbook under --check --diff on the converged stack: no failure, no change."""

from __future__ import annotations

import os
from pathlib import Path

from baseline_testlib import run_playbook
from conftest import HOSTS

testinfra_hosts = ["ansible://stack-web"]
SITE_PLAYBOOK = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "playbooks" / "site.yml"


def test_site_playbook_runs_clean_in_check_mode():
    run = run_playbook([{"ansible.builtin.import_playbook": str(SITE_PLAYBOOK)}], args=("--check", "--diff"))
    assert run.returncode == 0, run.output[-5000:]
    recaps = {host: run.recap(host) for host in HOSTS}
    print(f"\n[stack] site.yml --check --diff: changed per host { ({h: r.get('changed') for h, r in recaps.items()}) }")
    for host, recap in recaps.items():
        assert recap.get("failed") == 0, f"{host}: {recap}"
        assert recap.get("changed") == 0, f"{host} would change under --check: {recap}\n{run.output[-5000:]}"
