"""Django settings for ICMP, read from the environment (and `.env` when present).

Every variable is documented in `.env.example`. Defaults are the safe production
ones; `make run` sets development values explicitly.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if not env.bool("ICMP_SKIP_DOTENV", default=False):
    env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core ------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY and DEBUG:
    SECRET_KEY = "django-insecure-dev-only-key-do-not-use-in-production-0123456789"
# With DEBUG off and no SECRET_KEY, the WSGI/ASGI/Celery entry points refuse to
# start and `check --deploy` fails (icmp.startup); tooling such as
# `makemigrations` still works.

# Fernet keys for secrets at rest (channel access tokens, app secrets, verify
# tokens), comma-separated, newest first: new values use the first, every one
# still decrypts. Rotation: put a new key in front, run `manage.py
# reencrypt_secrets`, then drop the old one. No default, not even with DEBUG on
# (`make run` passes a development-only key): without one, the processes and
# `check --deploy` refuse to start when DEBUG is off or secrets are stored
# (icmp.startup).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if not DEBUG else ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "axes",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "icmp",
    "businesses",
    "templates_app",
    "stages",
    "channels_app",
    "conversations",
]

MIDDLEWARE = [
    "icmp.observability.RequestIdMiddleware",
    "icmp.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Answers /webhooks/ itself: Meta's POSTs skip everything below (sessions, CSRF, auth …).
    "conversations.inbound.door.WebhookDoorMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "icmp.urls"
WSGI_APPLICATION = "icmp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "icmp" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------
# SQLite file by default (embedded mode); PostgreSQL through psycopg 3 with
# Django's native pool. `?sslmode=require` etc. in the URL is passed to libpq.

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
    _db["ENGINE"] = "django.db.backends.postgresql"
    # The native pool needs CONN_MAX_AGE=0; pools are per process, so
    # (web workers + Celery children) x max_size must stay under max_connections.
    _db["CONN_MAX_AGE"] = 0
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=1),
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=8),
        "timeout": env.int("DATABASE_POOL_TIMEOUT", default=10),
    }
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # Embedded mode is single-process; WAL keeps the dev server and a shell friendly.
    _db.setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
IS_POSTGRES = _db["ENGINE"] == "django.db.backends.postgresql"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, Celery -----------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
CACHE_KEY_PREFIX = env.str("CACHE_KEY_PREFIX", default="icmp")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
# kombu's Redis transport with one reusable client per channel (icmp/broker.py).
CELERY_BROKER_TRANSPORT = "icmp.broker:Transport" if REDIS_URL.startswith(("redis://", "rediss://")) else None
CELERY_RESULT_BACKEND = None
# Without a broker, tasks run in-process (after commit, via delay_on_commit).
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
# A killed worker child makes the task go back to the queue; the attempts
# counter on the row caps poison tasks (Redis keeps no redelivery count).
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A killed worker's unacknowledged tasks return to the queue once delivered longer ago than
# the visibility timeout; each worker looks every 5 s (kombu >= 5.7). Safe: every task claims
# its work, and conversations.task_queue caps countdowns at BROKER_MAX_COUNTDOWN_SECONDS, leaving a task
# the rest of the timeout to run before a copy of it is made (README, "The worker").
BROKER_MAX_COUNTDOWN_SECONDS = 60
BROKER_VISIBILITY_TIMEOUT_SECONDS = env.int("BROKER_VISIBILITY_TIMEOUT_SECONDS", default=120)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": BROKER_VISIBILITY_TIMEOUT_SECONDS,
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
    "unacked_mutex_expire": 30,  # how long a worker killed mid-restore holds the restore lock
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Without REDIS_URL: run tasks on a pool of threads in the web process, after the
# request (conversations/embedded.py), instead of inside the request that enqueued them.
EMBEDDED_RUNNER = env.bool("EMBEDDED_RUNNER", default=False)
EMBEDDED_RUNNER_THREADS = env.int("EMBEDDED_RUNNER_THREADS", default=16)
# The worker: threads, since a turn mostly waits on the network (LLM, Graph) and
# holds no database connection while it waits; the pool serves the short database
# phases. In-flight turns are bounded by the concurrency, not by processes.
CELERY_WORKER_POOL = env("CELERY_WORKER_POOL", default="threads")
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=64)
# Turns of one business running at once in a worker process: below the concurrency, so
# one business's broadcast always leaves threads for the others (conversations/turn_slots.py).
TURNS_MAX_PER_BUSINESS = env.int("TURNS_MAX_PER_BUSINESS", default=48)
# LLM requests in flight to the provider from one worker process (conversations/llm/gate.py);
# a request waits at most LLM_SLOT_WAIT_SECONDS for a slot.
LLM_MAX_CONCURRENCY = env.int("LLM_MAX_CONCURRENCY", default=128)
LLM_SLOT_WAIT_SECONDS = env.float("LLM_SLOT_WAIT_SECONDS", default=60.0)
# A turn's lease on its conversation, renewed by a heartbeat while the turn runs
# (conversations/turns.py): a killed worker's conversation is free again after at
# most this long, however slow the LLM. The renewal interval must stay well below it.
TURN_LEASE_SECONDS = env.int("TURN_LEASE_SECONDS", default=30)
TURN_LEASE_RENEW_SECONDS = env.float("TURN_LEASE_RENEW_SECONDS", default=TURN_LEASE_SECONDS / 3)
# A webhook event stored this long ago and not applied has lost its task: re-enqueued.
SWEEPER_EVENT_AFTER_SECONDS = env.int("SWEEPER_EVENT_AFTER_SECONDS", default=10)
# A business's stages, templates, AI settings and agents, as a turn reads them, are cached
# (the default cache) under its config version, which every edit bumps; the entries also
# expire after this long, for edits made behind the ORM's back. 0 turns the cache off.
TURN_CONFIG_CACHE_SECONDS = env.int("TURN_CONFIG_CACHE_SECONDS", default=600)
# A customer message this old with no turn running has lost its task: re-enqueued.
SWEEPER_STUCK_AFTER_SECONDS = env.int("SWEEPER_STUCK_AFTER_SECONDS", default=30)
# A reply queued this long ago without a send has lost its task (longer than the
# send retries' backoff, so a scheduled retry is not run early).
SWEEPER_QUEUED_AFTER_SECONDS = env.int("SWEEPER_QUEUED_AFTER_SECONDS", default=120)
# A send claimed this long ago with no outcome is marked failed, never re-sent blindly.
SWEEPER_SENDING_UNKNOWN_AFTER_SECONDS = env.int("SWEEPER_SENDING_UNKNOWN_AFTER_SECONDS", default=900)
# The sweeper re-enqueues work a lost task left behind (see conversations/sweeper.py).
SWEEPER_INTERVAL_SECONDS = env.float("SWEEPER_INTERVAL_SECONDS", default=15.0)
# A sweep queued while no worker ran expires instead of running after newer ones.
_sweep = {"task": "conversations.sweep", "options": {"expires": SWEEPER_INTERVAL_SECONDS}}
CELERY_BEAT_SCHEDULE = {"sweep-stuck-messages": {**_sweep, "schedule": SWEEPER_INTERVAL_SECONDS}}

# --- Auth, i18n, static --------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security (production-safe unless DEBUG) ----------------------------------

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Reverse proxies in front of the app whose X-Forwarded-For entries are believed
# (icmp.client_address): 0 = the TCP peer is the client and the header is ignored;
# N = the Nth address from the right of X-Forwarded-For is the client (the one the
# first trusted proxy saw; the same rule as DRF's NUM_PROXIES).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^ping$", r"^health$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Admin login brute-force limit (django-axes, attempts in the database; icmp/login_limit.py):
# a (username, address) pair is locked after LOGIN_FAILURE_LIMIT failures, a username
# from any address after LOGIN_FAILURE_LIMIT_PER_USERNAME, for LOGIN_LOCKOUT_MINUTES
# after the last failure. `manage.py axes_reset_username <login>` lifts a lock.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_FAILURE_LIMIT_PER_USERNAME = env.int("LOGIN_FAILURE_LIMIT_PER_USERNAME", default=20)
LOGIN_LOCKOUT_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
AUTHENTICATION_BACKENDS = [
    "icmp.login_limit.LoginLimitBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "icmp.login_limit.LoginLimitHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
# Failures during a lockout are not counted, so it ends LOGIN_LOCKOUT_MINUTES after it began.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "icmp.login_limit.client_ip"
AXES_LOCKOUT_CALLABLE = "icmp.login_limit.lockout_response"
# No table of every successful login (nothing would prune it) and no admin pages for
# axes' tables: operators use its management commands.
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ADMIN = False

# Request bodies: Meta sends up to 3 MB per webhook; the API needs far less.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=256 * 1024)
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=3 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES

# --- CORS ------------------------------------------------------------------------

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-csrftoken",
    "x-requested-with",
    "x-request-id",
    "x-business-id",
)
CORS_EXPOSE_HEADERS = ("x-request-id", "retry-after")

# --- REST framework -----------------------------------------------------------

API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="600/min")
API_ANON_THROTTLE_RATE = env.str("API_ANON_THROTTLE_RATE", default="60/min")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "icmp.api.authentication.ApiKeyAuthentication",
        "icmp.api.authentication.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["icmp.api.permissions.IsBusinessPrincipal"],
    "DEFAULT_THROTTLE_CLASSES": ["icmp.api.throttling.PrincipalRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"principal": API_THROTTLE_RATE, "anon": API_ANON_THROTTLE_RATE},
    "DEFAULT_PAGINATION_CLASS": "icmp.api.pagination.CreatedCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["icmp.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "icmp.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "icmp.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ICMP API",
    "DESCRIPTION": "Intelligent Conversation Management Platform: businesses, stages, "
    "prompt templates, channels, conversations and the LLM call ledger.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from our own static files (drf-spectacular-sidecar), not a CDN:
    # a pinned version that works offline and runs no third-party script.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "PrincipalKindEnum": ["business", "master", "internal"],
        "ChannelKindEnum": "channels_app.models.ChannelKind",
        "TemplateKindEnum": "templates_app.models.TemplateKind",
        "MessageStatusEnum": "conversations.models.MessageStatus",
        "RoleEnum": "businesses.models.Role",
        "EffectiveTemplateSourceEnum": ["stage", "business_default", "platform_default"],
        "TemplateChangeTypeEnum": ["+", "~", "-"],
    },
}

# --- Platform keys, LLM, Meta ---------------------------------------------------

ICMP_MASTER_API_KEY = env.str("ICMP_MASTER_API_KEY", default="")
ICMP_INTERNAL_API_KEY = env.str("ICMP_INTERNAL_API_KEY", default="")

OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
LLM_MODEL = env.str("LLM_MODEL", default="gpt-4o-mini")
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=30.0)
# The openai SDK is the one retry layer for LLM calls (backoff, Retry-After).
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=2)
# USD per 1M tokens: (prompt, cached prompt, completion). Unknown model -> cost null.
LLM_PRICES = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.075"), Decimal("0.60")),
    "gpt-4o": (Decimal("2.50"), Decimal("1.25"), Decimal("10.00")),
    "gpt-4.1": (Decimal("2.00"), Decimal("0.50"), Decimal("8.00")),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("0.10"), Decimal("1.60")),
    "gpt-4.1-nano": (Decimal("0.10"), Decimal("0.025"), Decimal("0.40")),
}

META_APP_SECRET = env.str("META_APP_SECRET", default="")
# Our Meta app id: Messenger/Instagram echoes carrying it are our own sends.
META_APP_ID = env.str("META_APP_ID", default="")
META_VERIFY_TOKEN = env.str("META_VERIFY_TOKEN", default="")
META_GRAPH_URL = env.str("META_GRAPH_URL", default="https://graph.facebook.com")
META_GRAPH_VERSION = env.str("META_GRAPH_VERSION", default="v25.0")
# Instagram accounts connected through Instagram Login talk to graph.instagram.com;
# empty uses META_GRAPH_URL (Instagram through a Facebook Page).
META_INSTAGRAM_GRAPH_URL = env.str("META_INSTAGRAM_GRAPH_URL", default="")

# --- Logging: JSON lines, a request id on each, secrets scrubbed -----------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "icmp.observability.RequestIdFilter"},
        "redact": {"()": "icmp.observability.RedactSecretsFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "redact"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Drop Django's own plain-text handlers: every line goes through ours.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "httpcore2": {"level": "WARNING"},
        "openai": {"level": "WARNING"},
        # Failed logins and lockouts are warnings; its per-login chatter is not needed.
        "axes": {"level": "WARNING"},
    },
}
