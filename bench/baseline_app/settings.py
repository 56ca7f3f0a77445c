"""Minimal settings: no apps, no middleware, the product's database (with its pool)."""

from __future__ import annotations

import environ

env = environ.Env()

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
ROOT_URLCONF = "bench.baseline_app.urls"
WSGI_APPLICATION = "bench.baseline_app.wsgi.application"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
USE_TZ = True
DATA_UPLOAD_MAX_MEMORY_SIZE = 3 * 1024 * 1024

DATABASES = {"default": env.db_url("DATABASE_URL")}
# The same pool as icmp/settings.py, so the baseline pays no connection setup the product does not.
DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
    "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=1),
    "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=8),
    "timeout": env.int("DATABASE_POOL_TIMEOUT", default=10),
}
LOGGING_CONFIG = None
