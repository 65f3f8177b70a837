"""Bad input is refused before anything changes."""

from __future__ import annotations

import pytest

from baseline_testlib import assert_refused_before_any_change, instance_name, run_playbook

testinfra_hosts = ["ansible://celery-trixie"]

POOL = {"name": "default", "queues": ["default"]}


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
