"""Cluster-wide behaviour, checked once per cluster."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from conftest import CLUSTERS, cluster_of, ctl_json, probe

testinfra_hosts = ["ansible://rabbit-bw-1", "ansible://rabbit-tx-1"]


def test_vhost_default_queue_type_is_quorum(host):
    vhosts = {v["name"]: v["default_queue_type"] for v in ctl_json(host, "list_vhosts", "name", "default_queue_type")}
    assert vhosts.get("app") == "quorum", vhosts


def test_queue_declared_without_type_is_quorum_with_three_online_members(host):
    queue = f"verify-{int(time.time())}"
    probe(host, "declare", queue)
    deadline = time.monotonic() + 30
    while True:
        queues = ctl_json(host, "list_queues", "-p", "app", "name", "type", "members", "online", "policy")
        info = next(q for q in queues if q["name"] == queue)
        if len(info["online"]) == 3 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert info["type"] == "quorum", info
    assert len(info["members"]) == 3, info
    assert len(info["online"]) == 3, info
    assert info["policy"] == "quorum-defaults", info


def test_policies_are_in_effect_a_message_rejected_too_often_is_dead_lettered(host):
    result = json.loads(probe(host, "dead-letter", f"poison-{int(time.time())}", "dead-letters"))
    assert result["dead_lettered"], result
    assert result["deliveries"] <= 5, f"delivery-limit 3 allowed {result['deliveries']} deliveries"
    queues = ctl_json(host, "list_queues", "-p", "app", "name", "policy")
    assert {"name": "dead-letters", "policy": "dead-letter-queue"} in queues


def test_policy_definitions_match_the_inventory(host):
    policies = {p["name"]: p for p in ctl_json(host, "list_policies", "-p", "app")}
    assert set(policies) == {"quorum-defaults", "dead-letter-queue"}
    definition = policies["quorum-defaults"]["definition"]
    definition = json.loads(definition) if isinstance(definition, str) else definition
    assert definition == {"delivery-limit": 3, "dead-letter-exchange": "dlx"}


def test_every_confirmed_message_survived_the_leader_node_stop(host):
    cluster = cluster_of(host)
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / f"failover-rabbitmq_{cluster}.json"
    figures = json.loads(path.read_text())
    confirmed = set(figures["published"]["confirmed"])
    consumed = figures["consumed"]
    lost = sorted(confirmed - set(consumed))
    duplicates = len(consumed) - len(set(consumed))
    print(
        f"\n[failover {cluster}] leader {figures['leader_before']} stopped -> new leader {figures['leader_after']}; "
        f"published with confirms: {len(confirmed)} confirmed, {len(figures['published']['failed'])} not confirmed "
        f"in {figures['published']['seconds']} s; consumed from {figures['survivor']}: {len(consumed)}; "
        f"lost: {len(lost)}; duplicates: {duplicates}"
    )
    assert figures["leader_after"] != f"rabbit@{figures['leader_before']}", figures["leader_after"]
    assert confirmed, "no message was confirmed"
    assert not lost, f"{len(lost)} confirmed messages were lost: {lost[:20]}"
    expected = sorted(f"rabbit@{node}" for node in CLUSTERS[cluster])
    assert sorted(figures["running_after_restart"]) == expected


def test_anonymous_login_is_off(host):
    mechanisms = host.check_output("rabbitmqctl eval 'application:get_env(rabbit, auth_mechanisms).' --quiet")
    assert "ANONYMOUS" not in mechanisms, mechanisms
    if cluster_of(host) == "trixie":
        user = host.check_output("rabbitmqctl eval 'application:get_env(rabbit, anonymous_login_user).' --quiet")
        assert user == "{ok,none}", user
