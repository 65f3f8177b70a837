"""Behaviour that needs the role applied again with other variables.

Host-independent, so it runs on one instance only to keep the scenario short.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baseline_testlib import assert_refused_before_any_change, instance_name, run_playbook, run_role

testinfra_hosts = ["ansible://base-trixie"]


CONVERGE = Path(__file__).resolve().parent.parent / "converge.yml"


@pytest.mark.parametrize("instance", ["base-trixie", "base-bookworm"])
def test_a_rerun_under_check_mode_reports_no_change(instance):
    # What ops run before every deploy: the converged host, its variables, nothing to change.
    run = run_playbook(
        [{"ansible.builtin.import_playbook": str(CONVERGE)}], args=("--check", "--diff", "--limit", instance)
    )
    assert run.returncode == 0, run.output[-3000:]
    assert run.recap(instance).get("changed") == 0, run.output[-3000:]


def controller_cas() -> list[Path]:
    return sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))


def test_removed_ca_is_no_longer_trusted(host):
    name = instance_name(host)
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    controller = [{"name": f"controller-{p.stem}", "src": str(p)} for p in controller_cas()]
    test_ca = {"name": "molecule-test-ca", "content": (ephemeral / "pki/ca.crt").read_text()}
    common = {"base_timezone": "Europe/Paris", "base_locales": ["en_US.UTF-8", "fr_FR.UTF-8"]}

    without = run_role("base", name, {**common, "base_ca_certificates": controller})
    assert without.returncode == 0, without.output[-3000:]
    assert host.run("openssl verify /root/molecule-leaf.crt").rc != 0
    assert not host.file("/usr/local/share/ca-certificates/baseline/molecule-test-ca.crt").exists

    restored = run_role("base", name, {**common, "base_ca_certificates": [*controller, test_ca]})
    assert restored.returncode == 0, restored.output[-3000:]
    assert host.run("openssl verify /root/molecule-leaf.crt").rc == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("base_unattended_upgrades_enabled", "sometimes"),
        ("base_apt_components", ["main", "universe"]),
        ("base_default_locale", "de_DE.UTF-8"),
        ("base_ca_certificates", [{"name": "broken"}]),
    ],
)
def test_bad_input_is_refused_before_any_change(host, variable, value):
    run = run_role("base", instance_name(host), {variable: value})
    assert_refused_before_any_change(run, instance_name(host), variable)
