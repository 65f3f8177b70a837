"""Which policy RabbitMQ applies to a queue, worked out before any policy is set.

RabbitMQ applies exactly one policy to a queue: the matching one with the highest priority.
Among equal priorities it picks one without saying so, and the other's keys are dropped
silently (a user policy at the role's priority can take delivery-limit and dead-lettering away
from the Celery queues). The role refuses such inventories; these filters find them.
"""

from __future__ import annotations

import re
from typing import Any

# What a policy's apply-to covers when the queue is a quorum queue (the app's queues are).
APPLIES_TO_QUORUM_QUEUES = {"queues", "quorum_queues", "all"}


def _matches(policy: dict[str, Any], queue: str) -> bool:
    """RabbitMQ matches with PCRE (re:run); Python's re agrees on the patterns policies use."""
    if policy.get("apply_to", "queues") not in APPLIES_TO_QUORUM_QUEUES:
        return False
    try:
        return re.search(policy["pattern"], queue) is not None
    except re.error as error:
        raise ValueError(f"rabbitmq_policies: policy {policy.get('name')!r} has a bad pattern: {error}") from error


def rabbitmq_policy_problems(policies: list[dict[str, Any]], queues: list[str], required_keys: list[str]) -> list[str]:
    """One sentence per application queue whose policy is ambiguous or lacks ``required_keys``."""
    problems = []
    for queue in queues:
        matching = [p for p in policies if _matches(p, queue)]
        if not matching:
            problems.append(f"queue '{queue}': no policy applies, so it has no {', '.join(required_keys)}")
            continue
        top = max(int(p.get("priority", 0)) for p in matching)
        winners = [p for p in matching if int(p.get("priority", 0)) == top]
        if len(winners) > 1:
            names = " and ".join(f"'{p['name']}'" for p in winners)
            problems.append(
                f"queue '{queue}': policies {names} both match at priority {top}; RabbitMQ applies only "
                "one of them, chosen arbitrarily, and drops the other's keys"
            )
            continue
        missing = [key for key in required_keys if key not in winners[0].get("definition", {})]
        if missing:
            problems.append(
                f"queue '{queue}': policy '{winners[0]['name']}' (priority {top}) wins and replaces every "
                f"other, but has no {', '.join(missing)}"
            )
    return problems


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"rabbitmq_policy_problems": rabbitmq_policy_problems}
