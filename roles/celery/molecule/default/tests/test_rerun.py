"""Re-runs: a pool removed from celery_pools is retired; bad input is refused before anything changes."""

from __future__ import annotations

import pytest

from baseline_testlib import assert_refused_before_any_change, instance_name, run_playbook, run_role

testinfra_hosts = ["ansible://celery-trixie"]

POOL = {"name": "default", "queues": ["default"]}
# The scenario's pools (molecule.yml), and one more.
POOLS = [
    {"name": "default", "queues": ["default"], "concurrency": 2},
    {"name": "priority", "queues": ["high", "low", "heartbeat"], "concurrency": 1},
]
EXTRA = {"name": "extra", "queues": ["low"], "concurrency": 1}


def test_a_pool_removed_from_celery_pools_is_stopped_disabled_and_forgotten(host):
    unit = "celery-worker@extra.service"
    added = run_role("celery", instance_name(host), {"celery_pools": [*POOLS, EXTRA]})
    assert added.returncode == 0, added.output[-4000:]
    assert host.service(unit).is_running
    assert host.service(unit).is_enabled
    removed = run_role("celery", instance_name(host), {"celery_pools": POOLS})
    assert removed.returncode == 0, removed.output[-4000:]
    print(f"\n[celery] after removing the pool: {host.check_output(f'systemctl is-active {unit} || true')}")
    assert not host.service(unit).is_running
    assert not host.service(unit).is_enabled
    assert not host.file(f"/etc/systemd/system/{unit}.d").exists
    assert all(host.service(f"celery-worker@{pool['name']}.service").is_running for pool in POOLS)
    again = run_role("celery", instance_name(host), {"celery_pools": POOLS})
    assert again.recap(instance_name(host)).get("changed") == 0, again.output[-3000:]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("celery_pools", []),
        ("celery_pools", [{"name": "default", "queues": []}]),
        ("celery_pools", [{**POOL, "concurrency": 0}]),
        # No pool consumes the heartbeat queue: beat's heartbeats would never run.
        ("celery_pools", [{"name": "default", "queues": ["default", "high", "low"]}]),
        # The scenario's task time limit is 60 s: a 60 s consumer_timeout is not above it.
        ("celery_consumer_timeout_seconds", 60),
        ("celery_beat_group", "beat_pair"),
    ],
)
def test_bad_input_is_refused_before_any_change(host, variable, value):
    name = instance_name(host)
    # A second (unreachable, never contacted) beat host, so that beat_pair has two members.
    add_pair = {
        "name": "Put two hosts in beat_pair",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.add_host": {"name": item, "groups": "beat_pair"}, "loop": [name, "ghost-beat-host"]}
            for item in ["{{ item }}"]
        ],
    }
    play = {"name": "Apply celery", "hosts": name, "roles": ["celery"]}
    run = run_playbook([add_pair, play], extra_vars={variable: value})
    assert_refused_before_any_change(run, name, variable)
