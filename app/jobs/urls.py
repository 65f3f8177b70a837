from __future__ import annotations

from django.urls import path, register_converter

from . import views


class TaskIdConverter:
    """Celery task ids are UUID4 strings; anything else never reaches a view (404)."""

    regex = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TaskIdConverter, "task_id")

urlpatterns = [
    path("", views.index, name="index"),
    path("jobs/<task_id:task_id>/", views.job_detail, name="job-detail"),
    path("jobs/<task_id:task_id>/status/", views.job_status_json, name="job-status"),
    path("api/jobs/", views.api_jobs, name="api-jobs"),
    path("api/jobs/<task_id:task_id>/", views.api_job, name="api-job"),
    path("api/session/", views.api_session, name="api-session"),
]
