"""`manage.py seed_templates [--force]`: platform-default templates and default stages.

Safe to run on every deploy: it only fills what is missing unless --force.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from templates_app.defaults import SeedAction, business_default_stages_ensure, platform_templates_seed


class Command(BaseCommand):
    help = (
        "Create the platform-default prompt templates (one per kind) and a default stage for "
        "businesses that have none. --force resets the defaults' content to the shipped text."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Overwrite the content of existing platform defaults (new version when it changes).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for result in platform_templates_seed(force=options["force"]):
            template = result.template
            line = f'{result.action}: {template.kind} "{template.name}" v{template.version}'
            self.stdout.write(self.style.SUCCESS(line) if result.action != SeedAction.KEPT else line)
        fixed = business_default_stages_ensure()
        for business in fixed:
            self.stdout.write(f'created: default stage for "{business.name}" ({business.slug})')
        if not fixed:
            self.stdout.write("Every business has stages.")
