"""`manage.py bootstrap_demo`: the admin login and demo business `make run` starts with.

Idempotent: a later run creates nothing and says how to get new credentials.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from businesses.demo import DEMO_SLUG, demo_admin_ensure, demo_business_ensure


class Command(BaseCommand):
    help = "Create an admin login and a demo business when they do not exist; print credentials once."

    def handle(self, *args: Any, **options: Any) -> None:
        login = demo_admin_ensure()
        if login.password:
            self.stdout.write(self.style.SUCCESS("Created the admin login (shown only once):"))
            self.stdout.write(f"Admin username: {login.username}")
            self.stdout.write(f"Admin password: {login.password}")
        else:
            self.stdout.write(
                f'A superuser exists ("{login.username}"). '
                f"New password: manage.py changepassword {login.username}"
            )

        demo = demo_business_ensure()
        business = demo.business
        if demo.api_key:
            self.stdout.write(
                self.style.SUCCESS(f'Created "{business.name}" (slug: {business.slug}, id: {business.pk}).')
            )
            self.stdout.write("Store this API key now; it is shown only once:")
            self.stdout.write(f"API key: {demo.api_key}")
        else:
            self.stdout.write(
                f'The demo business exists ("{business.name}", id: {business.pk}). '
                f"New API key: manage.py create_api_key {DEMO_SLUG}"
            )
