"""
ASGI config for icmp project.

It exposes the ASGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/asgi/
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "icmp.settings")

application = get_asgi_application()

from icmp.startup import require_settings  # noqa: E402 (after Django is set up)

require_settings()
