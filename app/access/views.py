"""The login page (the admin's login goes through the same throttle, see config/urls.py)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from .throttle import client_address, is_locked

LOCKED_MESSAGE = "Too many failed logins for this account or address: try again in {minutes} minutes."


def throttled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer a login POST for a locked user name or address with 429, before any password check."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST" and is_locked(request.POST.get("username", ""), client_address(request)):
            minutes = max(1, settings.LOGIN_FAILURE_WINDOW_SECONDS // 60)
            context = {"locked_message": LOCKED_MESSAGE.format(minutes=minutes)}
            response = TemplateResponse(request, "registration/locked.html", context, status=429)
            response["Retry-After"] = str(settings.LOGIN_FAILURE_WINDOW_SECONDS)
            return response
        return view(request, *args, **kwargs)

    return wrapped


login = throttled(auth_views.LoginView.as_view(redirect_authenticated_user=True))
logout = auth_views.LogoutView.as_view()
