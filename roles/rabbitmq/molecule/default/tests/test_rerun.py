"""Behaviour that needs the role applied again (on the bookworm cluster)."""

from __future__ import annotations

import pytest
import testinfra

from baseline_testlib import assert_refused_before_any_change, run_playbook
from conftest import ctl_json

testinfra_hosts = ["ansible://rabbit-bw-3"]


def converge(limit: str, extra: dict | None = None):
    play = {"name": "Re-apply rabbitmq", "hosts": limit, "roles": ["rabbitmq"]}
    return run_playbook([play], extra_vars=extra)


def test_a_node_that_was_reset_rejoins_on_the_next_run(host):
    host.run_expect([0], "rabbitmqctl stop_app && rabbitmqctl reset && rabbitmqctl start_app")
    alone = ctl_json(host, "cluster_status")["running_nodes"]
    assert alone == ["rabbit@rabbit-bw-3"], alone
    run = converge("rabbitmq_bookworm")
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap("rabbit-bw-1").get("changed") == 0, run.recap("rabbit-bw-1")
    running = sorted(ctl_json(host, "cluster_status")["running_nodes"])
    assert running == ["rabbit@rabbit-bw-1", "rabbit@rabbit-bw-2", "rabbit@rabbit-bw-3"]


def test_a_policy_set_by_hand_is_removed_on_the_next_run():
    # At the role's priority and matching every queue: RabbitMQ would apply one of the two.
    node = testinfra.get_host("docker://rabbit-tx-1")
    node.run_expect(
        [0], "rabbitmqctl set_policy -p app --priority 0 --apply-to queues stray '.*' '{\"max-length\": 1}'"
    )
    run = converge("rabbitmq_trixie")
    assert run.returncode == 0, run.output[-4000:]
    names = sorted(policy["name"] for policy in ctl_json(node, "list_policies", "-p", "app"))
    assert names == ["dead-letter-queue", "quorum-defaults"], names


# The scenario's own policies (molecule.yml), and one more that matches the Celery queues.
POLICIES = [
    {
        "name": "quorum-defaults",
        "pattern": "^(?!dead-letters$).*",
        "apply_to": "quorum_queues",
        "priority": 0,
        "definition": {"delivery-limit": 3, "dead-letter-exchange": "dlx"},
    },
    {
        "name": "dead-letter-queue",
        "pattern": "^dead-letters$",
        "apply_to": "quorum_queues",
        "priority": 10,
        "definition": {"max-length": 100000, "overflow": "drop-head"},
    },
]
LIMITS = {"name": "limits", "pattern": "^(default|low)$", "apply_to": "queues", "definition": {"max-length": 50000}}


@pytest.mark.parametrize(
    ("limit", "variable", "value"),
    [
        # Same priority as quorum-defaults: which one RabbitMQ applies is left to chance.
        ("rabbitmq_trixie", "rabbitmq_policies", [*POLICIES, {**LIMITS, "priority": 0}]),
        # Higher priority: it replaces quorum-defaults and takes dead-lettering away.
        ("rabbitmq_trixie", "rabbitmq_policies", [*POLICIES, {**LIMITS, "priority": 5}]),
        ("rabbitmq_pair", "rabbitmq_cluster_group", "rabbitmq_pair"),
        ("rabbitmq_trixie", "rabbitmq_policies", [{"name": "ha", "pattern": ".*", "definition": {"ha-mode": "all"}}]),
        ("rabbitmq_bookworm", "rabbitmq_erlang_cookie", ""),
    ],
)
def test_bad_input_is_refused_before_any_change(limit, variable, value):
    run = converge(limit, {variable: value})
    host = "rabbit-tx-1" if limit == "rabbitmq_trixie" else "rabbit-bw-1"
    assert_refused_before_any_change(run, host, variable)
