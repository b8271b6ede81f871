"""Settings for drg-settlement, read from the environment (see config/env.py and docs/configuration.md).

Embedded default (no variables set): SQLite under var/, Celery tasks executed eagerly in-process,
DEBUG on, a development secret key. Production sets DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY and
DEBUG=0; with DEBUG off a SECRET_KEY is required.
"""
from __future__ import annotations

from pathlib import Path

import dj_database_url

from config.env import env, env_bool, env_list

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env("DRG_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env("SECRET_KEY", "dev-only-insecure-key" if DEBUG else env("SECRET_KEY"))
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # thousands separators (intcomma) on counts in templates
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served from our own static files, no CDN
    "django_celery_beat",
    "simple_history",
    "drg",
    "budget",
    "settlement",
    "incentives",
    "planning",  # rate-setting, scenarios, forecast (PLANNING.md)
    "monitoring",  # indicators, screening findings, evaluation scores (MONITORING.md)
    "benefits",  # special-outpatient claims in three layers (BENEFITS.md)
    "exchange",  # the bulk file door (EXCHANGE.md): load_bundle, export_clearing, pay_incentives, generate_bundle
    "demo",  # make demo and make bench
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the admin's language switch and the API's Accept-Language
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env("DB_CONN_MAX_AGE", 0, int),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the demo's readers and the single writer overlap; a generous timeout covers bulk loads.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 60,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Chinese is the language of the bureau: the default for every screen, statement and API error.
# English is offered by the admin's language switch (set_language) and by Accept-Language on the API.
# The project's own catalogs (Chinese msgids, English translations) live in locale/, committed compiled.
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", CELERY_BROKER_URL or None)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env("CELERY_TASK_TIME_LIMIT", 3600, int)
CELERY_TASK_SOFT_TIME_LIMIT = env("CELERY_TASK_SOFT_TIME_LIMIT", 3300, int)
CELERY_TIMEZONE = TIME_ZONE
# An unreachable broker is an error within seconds, not a hang: who queues a task (the admin's Start
# form, `clear --async`, beat) connects with this timeout and retries a publish at most this often;
# the run is then failed in the same request (settlement.dispatch) and blocks no pool.
CELERY_BROKER_CONNECTION_TIMEOUT = env("CELERY_BROKER_CONNECTION_TIMEOUT", 2.0, float)
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": env("CELERY_PUBLISH_MAX_RETRIES", 1, int), "interval_start": 0, "interval_step": 0.5, "interval_max": 1,
}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
    # a broker that accepts the connection but never answers (hung, paused): reads give up too
    "socket_timeout": env("CELERY_BROKER_SOCKET_TIMEOUT", 3.0, float),
    # An unacknowledged task (its worker was killed) is handed to another worker after this long;
    # it must exceed the longest task, since a task still running would be delivered twice.
    "visibility_timeout": env("CELERY_VISIBILITY_TIMEOUT", 3600, int),
}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = CELERY_BROKER_CONNECTION_TIMEOUT  # the Redis result backend, the same way
CELERY_REDIS_SOCKET_TIMEOUT = CELERY_BROKER_TRANSPORT_OPTIONS["socket_timeout"]
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": {**CELERY_TASK_PUBLISH_RETRY_POLICY, "max_retries": 0}}
# A running clearing run shows it is alive: its worker refreshes heartbeat_at every
# DRG_RUN_HEARTBEAT_SECONDS; one silent for DRG_RUN_STALL_SECONDS (its worker was killed or lost) is
# failed by the beat task fail_stalled_runs (every minute) and before a new run of its pool starts.
DRG_RUN_HEARTBEAT_SECONDS = env("DRG_RUN_HEARTBEAT_SECONDS", 30, float)
DRG_RUN_STALL_SECONDS = env("DRG_RUN_STALL_SECONDS", 600, float)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Scale-out (docs/scaleout.md): a pool of this many cases or more is valued in chunks of about
# DRG_SCALEOUT_CHUNK_CASES cases (whole institutions) on the Celery workers, then reduced.
DRG_SCALEOUT_MIN_CASES = env("DRG_SCALEOUT_MIN_CASES", 2_000_000, int)
DRG_SCALEOUT_CHUNK_CASES = env("DRG_SCALEOUT_CHUNK_CASES", 500_000, int)

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_RATES": {"institution": env("API_THROTTLE_RATE", "600/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "drg-settlement hospital API",
    "DESCRIPTION": "Case submission, corrections, statements and explanations for designated institutions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One component name per choice set (else drf-spectacular warns, and `check --deploy` with it).
    "ENUM_NAME_OVERRIDES": {
        "CorrectionRequestKindEnum": "drg.models.CorrectionRequest.Kind",
        "CaseCategoryEnum": "drg.choices.CaseCategory",
        "HospiceKindEnum": "incentives.models.HospiceKind",
        "ReviewStatusEnum": "common.models.ReviewStatus",
    },
}
# The API's per-institution throttle counts in the cache: with several web processes it must be a
# shared one (Redis), else each process counts on its own. Unset: local memory (one process, tests).
CACHE_URL = env("CACHE_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# Behind a TLS-terminating proxy: trust its X-Forwarded-Proto and name the public origins for CSRF.
# Then browsers are told to use HTTPS only (Strict-Transport-Security, a year by default) and a plain
# HTTP request that reaches Django is redirected; `manage.py check --deploy` passes with it.
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env("SECURE_HSTS_SECONDS", 31_536_000, int)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Review queues flag a record overdue after this many days waiting (⚙, docs/admin.md).
REVIEW_OVERDUE_DAYS = env("REVIEW_OVERDUE_DAYS", 10, int)

# How long a stored Idempotency-Key answer is replayed (purged daily by beat).
API_IDEMPOTENCY_DAYS = env("API_IDEMPOTENCY_DAYS", 7, int)

DATA_UPLOAD_MAX_MEMORY_SIZE = env("DATA_UPLOAD_MAX_MEMORY_SIZE", 20 * 1024 * 1024, int)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}
