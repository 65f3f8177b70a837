"""Helpers for the RabbitMQ verifier: rabbitmqctl and the AMQP probe run on the nodes."""

from __future__ import annotations

import json
import shlex

APP = ("app", "molecule-app-password-0123456")
ADMIN = ("admin", "molecule-admin-password-0123")
CLUSTERS = {
    "bookworm": ["rabbit-bw-1", "rabbit-bw-2", "rabbit-bw-3"],
    "trixie": ["rabbit-tx-1", "rabbit-tx-2", "rabbit-tx-3"],
}


def cluster_of(host) -> str:
    name = host.backend.get_hostname()
    return next(cluster for cluster, nodes in CLUSTERS.items() if name in nodes)


def ctl_json(host, *args: str):
    command = "rabbitmqctl " + " ".join(shlex.quote(a) for a in args) + " --formatter json --quiet"
    return json.loads(host.check_output(command))


def probe(host, *args: str, user: tuple[str, str] = APP) -> str:
    env = f"MQ_USER={shlex.quote(user[0])} MQ_PASSWORD={shlex.quote(user[1])}"
    result = host.run(f"{env} mq-probe " + " ".join(shlex.quote(a) for a in args))
    assert result.rc == 0, result.stdout + result.stderr
    return result.stdout.strip()
