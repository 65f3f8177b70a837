"""The UI (session, CSRF) and the JSON API (bearer token) over the same job submission code."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from celery.exceptions import CeleryError
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from .forms import JobForm
from .submit import JobSpec, JobValidationError, job_status, parse_payload, submit

SESSION_JOBS = "jobs"
SESSION_COUNTER = "counter"
SESSION_JOBS_KEPT = 20
# What a broken broker raises once its own retries are spent (a database that is down is
# answered by config.middleware.DatabaseUnavailableMiddleware).
UNAVAILABLE_ERRORS = (OperationalError, RedisError, CeleryError, ConnectionError, TimeoutError)

View = Callable[..., HttpResponse]


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def bearer_token_required(view: View) -> View:
    """Allow only ``Authorization: Bearer <APP_API_TOKEN>``; CSRF does not apply to such clients.

    Cookies are never consulted, so exempting these views from CSRF opens nothing a browser
    could be tricked into using.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        expected = settings.APP_API_TOKEN.encode()
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            response = _error(401, "a valid 'Authorization: Bearer <token>' header is required")
            response["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapped)


def _send(spec: JobSpec, submitted_by: str) -> str | JsonResponse:
    try:
        return str(submit(spec, submitted_by).id)
    except UNAVAILABLE_ERRORS as error:
        return _error(503, f"the job could not be queued (broker down): {type(error).__name__}")


def _status(task_id: str) -> JsonResponse:
    status = job_status(task_id)
    if status is None:
        return _error(404, "no such job")
    return JsonResponse(status)


def _session_jobs(request: HttpRequest) -> list[dict[str, str]]:
    return request.session.get(SESSION_JOBS, [])


def _own_job(request: HttpRequest, task_id: str) -> dict[str, str]:
    """The session's record of this job; another session's (or an unknown) id is a 404."""
    for job in _session_jobs(request):
        if job["id"] == task_id:
            return job
    raise Http404("no such job in this session")


@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    status = 200
    if request.method == "POST":
        form = JobForm(request.POST)
        if form.is_valid():
            sent = _send(form.spec, "ui")
            if not isinstance(sent, JsonResponse):
                job = {
                    "id": sent,
                    "kind": form.spec.kind,
                    "submitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
                request.session[SESSION_JOBS] = [job, *_session_jobs(request)][:SESSION_JOBS_KEPT]
                return redirect("job-detail", task_id=sent)
            form.add_error(None, "The job could not be queued right now; try again in a moment.")
            status = 503
        else:
            status = 400
    else:
        form = JobForm()
    return render(request, "jobs/index.html", {"form": form, "jobs": _session_jobs(request)}, status=status)


@require_GET
def job_detail(request: HttpRequest, task_id: str) -> HttpResponse:
    job = _own_job(request, task_id)
    status = job_status(task_id) or {"id": task_id, "state": "UNKNOWN", "ready": False}
    context = {
        "job": job,
        "status": status,
        # JSON, as the polling script shows it, so the first paint and the updates agree.
        "result_json": json.dumps(status["result"]) if "result" in status else "",
        "status_url": reverse("job-status", kwargs={"task_id": task_id}),
    }
    return render(request, "jobs/detail.html", context)


@require_GET
def job_status_json(request: HttpRequest, task_id: str) -> JsonResponse:
    _own_job(request, task_id)
    return _status(task_id)


@bearer_token_required
@require_POST
def api_jobs(request: HttpRequest) -> JsonResponse:
    try:
        payload = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _error(400, "body must be JSON")
    try:
        spec = parse_payload(payload)
    except JobValidationError as error:
        return _error(400, str(error))
    sent = _send(spec, "api")
    if isinstance(sent, JsonResponse):
        return sent
    url = request.build_absolute_uri(reverse("api-job", kwargs={"task_id": sent}))
    response = JsonResponse({"id": sent, "state": "PENDING", "url": url}, status=202)
    response["Location"] = url
    return response


@bearer_token_required
@require_GET
def api_job(request: HttpRequest, task_id: str) -> JsonResponse:
    return _status(task_id)


@require_GET
def api_session(request: HttpRequest) -> JsonResponse:
    """Count this session's calls: proves sessions outlive a web restart and a Redis restart."""
    count = request.session.get(SESSION_COUNTER, 0) + 1
    request.session[SESSION_COUNTER] = count
    return JsonResponse({"count": count})
