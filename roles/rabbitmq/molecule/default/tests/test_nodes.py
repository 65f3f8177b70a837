"""Every node of both clusters: membership, health, access rules, listeners."""

from __future__ import annotations

from conftest import ADMIN, APP, CLUSTERS, cluster_of, ctl_json, probe


def test_node_sees_three_running_nodes_no_partition_no_alarm(host):
    status = ctl_json(host, "cluster_status")
    expected = sorted(f"rabbit@{node}" for node in CLUSTERS[cluster_of(host)])
    assert sorted(status["running_nodes"]) == expected, status["running_nodes"]
    assert not status["partitions"], status["partitions"]
    assert not status["alarms"], status["alarms"]
    assert status["cluster_name"] == f"molecule-{cluster_of(host)}"


def test_guest_cannot_log_in(host):
    assert probe(host, "login", "guest", "guest", "/") != "ok"
    assert "guest" not in [user["user"] for user in ctl_json(host, "list_users")]


def test_app_user_logs_in_to_its_vhost_only(host):
    assert probe(host, "login", APP[0], APP[1], "app") == "ok"
    assert probe(host, "login", APP[0], APP[1], "/") != "ok"


def test_wrong_password_is_refused(host):
    assert probe(host, "login", APP[0], "not-the-password", "app") != "ok"


def test_management_api_answers_on_loopback_only(host):
    overview = host.run(f"curl -sf -u {ADMIN[0]}:{ADMIN[1]} http://127.0.0.1:15672/api/overview")
    assert overview.rc == 0, overview.stderr
    assert '"cluster_name"' in overview.stdout
    listeners = host.check_output("ss -H -ltn 'sport = :15672'").splitlines()
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listeners}
    assert addresses == {"127.0.0.1"}, addresses


def test_management_api_is_not_reachable_from_another_node(host):
    name = host.backend.get_hostname()
    other = next(node for node in CLUSTERS[cluster_of(host)] if node != name)
    result = host.run(f"curl -s -m 5 -o /dev/null -w '%{{http_code}}' http://{other}:15672/api/overview")
    assert result.rc != 0, f"{other}:15672 answered {result.stdout} from {name}"


def test_amqp_and_clustering_ports_listen(host):
    for port in (5672, 25672):
        assert host.socket(f"tcp://0.0.0.0:{port}").is_listening or host.socket(f"tcp://:::{port}").is_listening


def test_erlang_cookie_is_private(host):
    cookie = host.file("/var/lib/rabbitmq/.erlang.cookie")
    assert cookie.user == "rabbitmq"
    assert cookie.mode == 0o400
