"""Create a user of the app (not staff): ``manage.py create_user <name> [--email E] [--staff]``.

The password is read from standard input (one line; ``--password-stdin``) or asked for twice on
a terminal, never taken from the command line where ``ps`` shows it. It must pass the password
validators (length, similarity, common passwords). An existing user is refused.
"""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create a user; the password comes from stdin (--password-stdin) or a prompt."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--staff", action="store_true", help="may see /healthz's details and use the admin")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    def _password(self, options: dict[str, Any]) -> str:
        if options["password_stdin"]:
            return sys.stdin.readline().rstrip("\n")
        if not sys.stdin.isatty():
            raise CommandError("no terminal to ask for the password: pass it on stdin with --password-stdin")
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("the passwords differ")
        return first

    def handle(self, *args: object, **options: Any) -> None:
        user_model = get_user_model()
        username = options["username"]
        if user_model.objects.filter(username=username).exists():
            raise CommandError(f"user {username!r} exists already")
        password = self._password(options)
        candidate = user_model(username=username, email=options["email"])
        try:
            validate_password(password, candidate)
        except ValidationError as error:
            raise CommandError("password refused: " + " ".join(error.messages)) from None
        user = user_model.objects.create_user(
            username=username, email=options["email"], password=password, is_staff=options["staff"]
        )
        self.stdout.write(f"created user {user.get_username()}{' (staff)' if user.is_staff else ''}")
