"""`manage.py create_business <name> --owner-email E [--slug S] [--config-file path.json]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_slug

from businesses.management import application_errors, clean_email
from businesses.models import Business
from businesses.services import business_create

SLUG_MAX_LENGTH = Business._meta.get_field("slug").max_length


def _read_config(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"Cannot read the config file {path!r}: {exc.__class__.__name__}.")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"The config file {path!r} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        )
    if not isinstance(config, dict):
        raise CommandError(f"The config file {path!r} must hold a JSON object.")
    return config


class Command(BaseCommand):
    help = "Create a business with its owner, default agent and stage, and print its first API key once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Display name of the business.")
        parser.add_argument("--owner-email", required=True, help="The owner's email (created when new).")
        parser.add_argument("--slug", help="URL-safe identifier; derived from the name when omitted.")
        parser.add_argument("--config-file", help="A JSON file with the business config.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError("The business name must not be empty.")
        owner_email = clean_email(options["owner_email"], option="--owner-email")
        slug = options["slug"]
        if slug is not None:
            try:
                validate_slug(slug)
            except ValidationError:
                raise CommandError(
                    f"--slug {slug!r} may contain only letters, digits, hyphens and underscores."
                )
            if len(slug) > SLUG_MAX_LENGTH:
                raise CommandError(f"--slug must be at most {SLUG_MAX_LENGTH} characters.")
        config = _read_config(options["config_file"]) if options["config_file"] else None

        with application_errors():
            business, raw_key = business_create(name=name, owner_email=owner_email, config=config, slug=slug)

        self.stdout.write(self.style.SUCCESS(f'Created business "{business.name}" (slug: {business.slug}).'))
        self.stdout.write(f"Business id: {business.pk}")
        owner = business.owner
        self.stdout.write(f"Owner: {owner.email}")
        if not owner.has_usable_password():
            self.stdout.write(
                "The owner has no password yet; give them a login with: "
                f"manage.py add_member {business.slug} {owner.email} --role owner"
            )
        self.stdout.write("Store this API key now; it is shown only once:")
        self.stdout.write(f"API key: {raw_key}")
