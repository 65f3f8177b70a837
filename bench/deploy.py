"""Deployment: site.yml cold (recorded by make lab on a fresh lab), warm (an idempotent re-run)
with the project's ansible.cfg, and the same warm re-run with Ansible's defaults."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .lab import DEPLOY_TIMES, ROOT, changed_total, playbook


def run() -> dict:
    if not DEPLOY_TIMES.exists():
        raise SystemExit("[bench] no cold deploy time recorded: run `make lab-down && make lab` (a fresh lab) first")
    cold = json.loads(DEPLOY_TIMES.read_text())
    print("[bench] deploy: warm site.yml with the project's ansible.cfg", flush=True)
    warm, out = playbook("playbooks/site.yml")
    warm_changed = changed_total(out)
    print("[bench] deploy: warm site.yml with Ansible's defaults", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        # Only what finding the roles needs: every speed setting is Ansible's default.
        config = Path(tmp) / "ansible.cfg"
        config.write_text(f"[defaults]\nroles_path = {ROOT / 'roles'}\n")
        defaults, out_defaults = playbook("playbooks/site.yml", config=config)
    return {
        "cold_seconds": cold["seconds"],
        "cold_recorded": cold["when"],
        "warm_seconds": round(warm, 1),
        "warm_changed": warm_changed,
        "warm_defaults_seconds": round(defaults, 1),
        "warm_defaults_changed": changed_total(out_defaults),
    }
