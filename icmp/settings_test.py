"""Settings for the test suite: production settings with test-friendly values.

DATABASE_URL and REDIS_URL come from the environment (CI points them at the
machine's PostgreSQL and Redis); without them the suite runs on SQLite and
local memory. A developer's `.env` is never read.
"""

import os

os.environ["ICMP_SKIP_DOTENV"] = "1"
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-4f8c2a9d7e1b")
os.environ.setdefault("DEBUG", "0")
# In os.environ so child processes (the Celery worker tests) read the rows this one wrote.
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "dGVzdC1vbmx5LWZpZWxkLWVuY3J5cHRpb24ta2V5ISE=")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
os.environ.setdefault("CSRF_COOKIE_SECURE", "0")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("CACHE_KEY_PREFIX", "icmp-test")
for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ICMP_MASTER_API_KEY", "ICMP_INTERNAL_API_KEY"):
    os.environ.pop(name, None)

from icmp.settings import *
from icmp.settings import REST_FRAMEWORK, STORAGES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"principal": "100000/min", "anon": "100000/min"},
}
ICMP_MASTER_API_KEY = "test-master-key-0123456789abcdef"
ICMP_INTERNAL_API_KEY = "test-internal-key-0123456789abcdef"
OPENAI_API_KEY = ""
OPENAI_BASE_URL = ""
# Serve admin assets from the app folders; the suite never runs collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
