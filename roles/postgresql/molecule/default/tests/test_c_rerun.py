"""Bad input is refused before anything changes (on the trixie cluster)."""

from __future__ import annotations

import pytest

from baseline_testlib import assert_refused_before_any_change, run_playbook

GROUP = "postgresql_trixie"


def apply(extra: dict, before: list[dict] | None = None):
    return run_playbook(
        [*(before or []), {"name": "Apply postgresql", "hosts": GROUP, "roles": ["postgresql"]}], extra_vars=extra
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("postgresql_primary", "pg-nowhere"),
        ("postgresql_synchronous_standbys", ["pg-client"]),
        ("postgresql_runtime_password", "short"),
        ("postgresql_listen_addresses", ["*"]),
        ("postgresql_tls_mode", "provided"),
    ],
)
def test_bad_input_is_refused_before_any_change(variable, value):
    run = apply({variable: value})
    assert_refused_before_any_change(
        run, "pg-tx-1", {"postgresql_tls_mode": "postgresql_tls_cert"}.get(variable, variable)
    )


def test_two_primaries_in_the_inventory_are_refused():
    # Each host names itself, as two host_vars files could.
    each_its_own = {
        "name": "Name a different primary on each host",
        "hosts": GROUP,
        "gather_facts": False,
        "tasks": [{"ansible.builtin.set_fact": {"postgresql_primary": "{{ inventory_hostname }}"}}],
    }
    run = apply({}, before=[each_its_own])
    assert_refused_before_any_change(run, "pg-tx-1", "postgresql_primary")
    assert "there can be only one primary" in run.output


def test_an_app_over_the_connection_budget_is_refused_naming_both_numbers():
    demand = [{"name": "web (8 hosts x 2 processes x 15 threads)", "connections": 240}]
    run = apply({"postgresql_connection_demand": demand})
    assert_refused_before_any_change(run, "pg-tx-1", "postgresql_connection_demand")
    assert "open 240 connections" in run.output, run.output[-2000:]
    assert "leaves 87 for it" in run.output, run.output[-2000:]
