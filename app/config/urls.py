from __future__ import annotations

from access import views as access_views
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("jobs.urls")),
    path("", include("health.urls")),
    path("accounts/login/", access_views.login, name="login"),
    path("accounts/logout/", access_views.logout, name="logout"),
    # The admin's login goes through the same throttle as the app's (429 when locked).
    path(f"{settings.ADMIN_PATH}login/", access_views.throttled(admin.site.login)),
    path(settings.ADMIN_PATH, admin.site.urls),
]
