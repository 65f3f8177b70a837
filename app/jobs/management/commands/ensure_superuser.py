"""Create or update the admin superuser from the environment, idempotently.

Deployment runs it after migrate: ``manage.py ensure_superuser`` reads DJANGO_SUPERUSER_USERNAME,
DJANGO_SUPERUSER_EMAIL and DJANGO_SUPERUSER_PASSWORD and prints ``created``, ``updated`` or
``unchanged`` (the deploy role reports a change only for the first two). Unlike
``createsuperuser --noinput`` it also applies a rotated password, and like the admin's own
password form it refuses one the password validators refuse (too short, too common, too close
to the user name or e-mail), before anything is written.
"""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create or update the superuser named by DJANGO_SUPERUSER_USERNAME."

    def handle(self, *args: object, **options: object) -> None:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        if not username or not password:
            raise CommandError("DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD are required")
        user_model = get_user_model()
        existing = user_model.objects.filter(username=username).first()
        try:
            validate_password(password, existing or user_model(username=username, email=email))
        except ValidationError as error:
            raise CommandError("DJANGO_SUPERUSER_PASSWORD refused: " + " ".join(error.messages)) from None
        user, created = user_model.objects.get_or_create(username=username, defaults={"email": email})
        changed = created
        if not user.check_password(password):
            user.set_password(password)
            changed = True
        for field, value in (("email", email), ("is_staff", True), ("is_superuser", True), ("is_active", True)):
            if getattr(user, field) != value:
                setattr(user, field, value)
                changed = True
        if changed:
            user.save()
        self.stdout.write("created" if created else "updated" if changed else "unchanged")
