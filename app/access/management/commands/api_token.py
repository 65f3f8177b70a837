"""API tokens: ``manage.py api_token create|list|revoke``.

``create <user> [--name N]`` prints the new token once (only its SHA-256 is stored: a lost token
is revoked and replaced, never recovered); ``list [<user>]`` shows every token's hint, owner,
name, dates and state; ``revoke <hint>`` (the token's first 12 characters, as listed) or
``revoke --user <user>`` (all of theirs) ends them at once, on every web host.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from access.models import ApiToken


class Command(BaseCommand):
    help = "Create, list or revoke the API tokens of users."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="make a token for a user and print it once")
        create.add_argument("username")
        create.add_argument("--name", default="default", help="what the token is for")
        listing = actions.add_parser("list", help="list tokens")
        listing.add_argument("username", nargs="?")
        revoke = actions.add_parser("revoke", help="revoke a token (by hint) or all of a user's")
        revoke.add_argument("hint", nargs="?")
        revoke.add_argument("--user", dest="revoke_user")

    def handle(self, *args: object, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _user(self, username: str) -> Any:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user {username!r} (create it with: manage.py create_user {username})")
        return user

    def _create(self, options: dict[str, Any]) -> None:
        user = self._user(options["username"])
        record, token = ApiToken.issue(user, options["name"])
        self.stderr.write(f"token {record.hint}… for {user.get_username()} ({record.name}); shown once:")
        self.stdout.write(token)

    def _list(self, options: dict[str, Any]) -> None:
        tokens = ApiToken.objects.select_related("user")
        if options["username"]:
            tokens = tokens.filter(user__username=options["username"])
        for record in tokens:
            state = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "active"
            used = f"{record.last_used_at:%Y-%m-%d %H:%M}" if record.last_used_at else "never"
            self.stdout.write(
                f"{record.hint}…  {record.user.get_username()}  {record.name}  "
                f"created {record.created_at:%Y-%m-%d %H:%M}  last used {used}  {state}"
            )

    def _revoke(self, options: dict[str, Any]) -> None:
        tokens = ApiToken.objects.filter(revoked_at__isnull=True)
        if options["revoke_user"]:
            tokens = tokens.filter(user__username=options["revoke_user"])
        elif options["hint"]:
            tokens = tokens.filter(hint=options["hint"].rstrip("…"))
        else:
            raise CommandError("name a token (its hint, as listed) or --user")
        count = tokens.update(revoked_at=timezone.now())
        if not count:
            raise CommandError("no such active token")
        self.stdout.write(f"revoked {count} token(s)")
