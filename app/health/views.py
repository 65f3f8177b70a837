"""/livez (the process), /readyz (this web host can serve), /healthz (the whole stack).

Each answers 200 or 503 with ``{"status": "ok"|"fail"}``; the checks' detail (hosts, errors,
latencies) only for callers on HEALTH_DETAIL_NETWORKS (the load balancers, monitoring, the web
host itself) or logged-in staff. None reads a session unless the caller sent a session cookie,
and none makes one.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .checks import CachedChecks, health, readiness


@lru_cache(maxsize=1)
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in spec)


def may_see_detail(request: HttpRequest) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        address = None
    if address is not None and any(address in network for network in _networks(tuple(settings.HEALTH_DETAIL_NETWORKS))):
        return True
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return False
    try:
        return bool(request.user.is_staff)
    # A session store that is down makes nobody staff here; it never fails the probe.
    except Exception:
        return False


def _answer(request: HttpRequest, checks: CachedChecks) -> JsonResponse:
    results, age = checks()
    healthy = all(check["ok"] for check in results.values())
    body: dict[str, object] = {"status": "ok" if healthy else "fail"}
    if may_see_detail(request):
        body.update(checks=results, age_seconds=age)
    return JsonResponse(body, status=200 if healthy else 503)


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness, for the load balancer: the database, Redis and the broker; never beat or workers."""
    return _answer(request, readiness)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The whole stack: readiness plus the workers, beat, the replicas and the queues."""
    return _answer(request, health)


@never_cache
@require_safe
def livez(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. No dependency is touched, so a supervisor never restarts
    the web tier because Redis or RabbitMQ is down."""
    return HttpResponse("ok\n", content_type="text/plain")
