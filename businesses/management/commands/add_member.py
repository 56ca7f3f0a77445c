"""`manage.py add_member <business slug|id> <email> --role owner|admin|editor|viewer [--password P]`."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from businesses.management import application_errors, business_from_ref, clean_email
from businesses.models import Role
from businesses.services import membership_add


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def _can_log_in(email: str) -> bool:
    """Whether a user with this email exists and has a password (an owner made by
    create_business has none until one is set)."""
    user = get_user_model().objects.filter(email__iexact=email).order_by("id").first()
    return user is not None and user.has_usable_password()


class Command(BaseCommand):
    help = (
        "Give someone a staff login for a business with a role. Without --password a user with "
        "no password yet gets a generated one, printed once; an existing login keeps its password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("business", help="The business's slug or id.")
        parser.add_argument("email", help="The member's email; it is also the username of a new login.")
        parser.add_argument("--role", required=True, choices=Role.values, help="The member's role.")
        parser.add_argument("--password", help="Set this password (a new user otherwise gets a random one).")

    def handle(self, *args: Any, **options: Any) -> None:
        business = business_from_ref(options["business"])
        email = clean_email(options["email"])
        password = options["password"]
        if password is not None and not password.strip():
            raise CommandError("--password must not be empty.")
        generated = None
        if password is None and not _can_log_in(email):
            password = generated = generate_password()

        with application_errors():
            membership, created = membership_add(
                business=business, email=email, role=options["role"], password=password
            )

        user = membership.user
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} {user.email} as {membership.role} of {business.name}."))
        self.stdout.write(f"Login at /admin/ with username: {user.get_username()}")
        if generated:
            self.stdout.write("Store this password now; it is shown only once:")
            self.stdout.write(f"Password: {generated}")
        elif password:
            self._warn_if_weak(password, user)
        else:
            self.stdout.write("The existing password was kept.")

    def _warn_if_weak(self, password: str, user: Any) -> None:
        # The operator chose it; say what the validators think instead of refusing.
        try:
            validate_password(password, user=user)
        except ValidationError as exc:
            self.stderr.write(self.style.WARNING("Weak password: " + " ".join(exc.messages)))
