"""The UI (login, session, CSRF) and the JSON API (bearer tokens) over the same submission code.

Every way to queue work is authenticated and limited per caller (access.limits); a user sees
only their own jobs, the service token only the service's. A dependency that is down answers
503 (config.middleware), a limit 429, never a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from access.auth import Principal, authenticate_token, bearer_token
from access.limits import LimitExceededError, check_submission
from celery.exceptions import CeleryError
from config.degrade import cached_or_computed
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods
from kombu.exceptions import OperationalError

from .forms import JobForm
from .models import Job
from .submit import JobSpec, JobValidationError, parse_payload, submit

logger = logging.getLogger(__name__)

SESSION_COUNTER = "counter"
JOBS_LISTED = 20
SUMMARY_CACHE_SECONDS = 10
# What a broken broker raises once the (short) publish retries are spent.
BROKER_ERRORS = (OperationalError, CeleryError, ConnectionError, TimeoutError)

View = Callable[..., HttpResponse]


class BrokerUnavailableError(Exception):
    """The task could not be queued: the job's row says NOT_QUEUED."""


def _error(status: int, message: str, retry_after: int | None = None) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def api_auth_required(view: View) -> View:
    """Allow ``Authorization: Bearer <token>`` (a user's token or the service's) and nothing else.

    Cookies are never consulted, so exempting these views from CSRF opens nothing a browser
    could be tricked into using; no session is read or made.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        principal = authenticate_token(bearer_token(request))
        if principal is None:
            response = _error(401, "a valid 'Authorization: Bearer <token>' header is required")
            response["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
        request.principal = principal  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapped)


def _jobs_of(principal: Principal) -> QuerySet[Job]:
    return Job.objects.filter(owner__isnull=True) if principal.is_service else Job.objects.filter(owner=principal.user)


def _queue(spec: JobSpec, principal: Principal, way_in: str) -> Job:
    """Limits first (429), then the row and its task; BrokerUnavailableError when the broker refuses."""
    check_submission(principal)
    try:
        return submit(spec, owner=principal.user, submitted_by=way_in)
    except BROKER_ERRORS as error:
        logger.warning("job not queued (broker): %s: %s", type(error).__name__, error)
        raise BrokerUnavailableError(type(error).__name__) from error


def _summary(principal: Principal) -> dict[str, int]:
    """The caller's jobs of the last hour by state: a page that only reads the cache."""

    def compute() -> dict[str, int]:
        since = timezone.now() - timezone.timedelta(hours=1)
        rows = _jobs_of(principal).filter(created_at__gte=since).values("state").annotate(n=Count("id"))
        return {row["state"]: row["n"] for row in rows}

    return cached_or_computed(f"summary:{principal.key}", compute, SUMMARY_CACHE_SECONDS)


@login_required
@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    principal = Principal(user=request.user)
    status = 200
    if request.method == "POST":
        form = JobForm(request.POST)
        if form.is_valid():
            try:
                job = _queue(form.spec, principal, "ui")
            except LimitExceededError as error:
                form.add_error(None, error.message)
                status = 429
            except BrokerUnavailableError:
                form.add_error(None, "The job could not be queued right now; try again in a moment.")
                status = 503
            else:
                return redirect("job-detail", task_id=str(job.id))
        else:
            status = 400
    else:
        form = JobForm()
    context = {"form": form, "jobs": _jobs_of(principal)[:JOBS_LISTED], "summary": _summary(principal)}
    return render(request, "jobs/index.html", context, status=status)


def _own_job(request: HttpRequest, task_id: str) -> Job:
    job = Job.objects.filter(id=task_id, owner=request.user).first()
    if job is None:
        raise Http404("no such job of yours")
    return job


@login_required
@require_GET
def job_detail(request: HttpRequest, task_id: str) -> HttpResponse:
    status = _own_job(request, task_id).as_status()
    context = {
        "job": status,
        "status": status,
        # JSON, as the polling script shows it, so the first paint and the updates agree.
        "result_json": json.dumps(status["result"]) if "result" in status else "",
        "status_url": reverse("job-status", kwargs={"task_id": task_id}),
    }
    return render(request, "jobs/detail.html", context)


@require_GET
def job_status_json(request: HttpRequest, task_id: str) -> JsonResponse:
    # The page polls this: a lapsed login is a JSON 403 it can show, not a redirect to follow.
    if not request.user.is_authenticated:
        return _error(403, "log in to see your jobs")
    return JsonResponse(_own_job(request, task_id).as_status())


@api_auth_required
@require_http_methods(["GET", "POST"])
def api_jobs(request: HttpRequest) -> JsonResponse:
    """GET: the caller's latest jobs and the last hour's counts (these from the cache, or computed
    when Redis is down); POST: queue a job."""
    principal: Principal = request.principal  # type: ignore[attr-defined]
    if request.method == "GET":
        jobs = [job.as_status() for job in _jobs_of(principal)[:JOBS_LISTED]]
        return JsonResponse({"jobs": jobs, "last_hour": _summary(principal)})
    return _api_submit(request, principal)


def _api_submit(request: HttpRequest, principal: Principal) -> JsonResponse:
    if int(request.META.get("CONTENT_LENGTH") or 0) > settings.APP_API_MAX_BODY_BYTES:
        return _error(413, f"the body must be at most {settings.APP_API_MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _error(400, "body must be JSON")
    try:
        spec = parse_payload(payload)
    except JobValidationError as error:
        return _error(400, str(error))
    try:
        job = _queue(spec, principal, "api")
    except LimitExceededError as error:
        return _error(429, error.message, error.retry_after)
    except BrokerUnavailableError as error:
        return _error(503, f"the job could not be queued (broker down): {error}", retry_after=5)
    url = request.build_absolute_uri(reverse("api-job", kwargs={"task_id": str(job.id)}))
    response = JsonResponse({"id": str(job.id), "state": job.state, "url": url}, status=202)
    response["Location"] = url
    return response


@api_auth_required
@require_GET
def api_job(request: HttpRequest, task_id: str) -> JsonResponse:
    job = _jobs_of(request.principal).filter(id=task_id).first()  # type: ignore[attr-defined]
    if job is None:
        return _error(404, "no such job")
    return JsonResponse(job.as_status())


@require_GET
def api_session(request: HttpRequest) -> JsonResponse:
    """Count the logged-in user's calls in their session: sessions outlive web and Redis restarts.

    Anonymous callers get a 403 and no session: sessions exist for logged-in users only.
    """
    if not request.user.is_authenticated:
        return _error(403, "log in first: sessions are for logged-in users")
    count = request.session.get(SESSION_COUNTER, 0) + 1
    request.session[SESSION_COUNTER] = count
    return JsonResponse({"count": count, "user": request.user.get_username()})
