"""Settings of the reference application, read only from environment variables.

The variables and their rules are those of the real BMMS application, so a
deployment that satisfies this module satisfies BMMS. Invalid values raise
ImproperlyConfigured at start-up with the variable's name, before the
application serves a request.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from bmms_reference import __version__

BASE_DIR = Path(__file__).resolve().parent
MIN_SECRET_KEY_LENGTH = 50

env = environ.Env()


def origins(name: str) -> list[str]:
    """Read a list of origins and reject one without an http or https scheme."""
    values = env.list(name, default=[])
    for value in values:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ImproperlyConfigured(
                f"{name} contains {value!r}, which has no scheme: write it as https://{value}"
            )
    return values


DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY is missing: set it to a random string of at least 50 characters")
if len(SECRET_KEY) < MIN_SECRET_KEY_LENGTH or SECRET_KEY.startswith("django-insecure"):
    raise ImproperlyConfigured(
        f"SECRET_KEY is too weak: use at least {MIN_SECRET_KEY_LENGTH} random characters "
        "that do not start with 'django-insecure'"
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = origins("CSRF_TRUSTED_ORIGINS")
CORS_ALLOWED_ORIGINS = origins("CORS_ALLOWED_ORIGINS")
BASE_URL = env.str("BASE_URL", default="http://localhost:8000")
SITE_URL = env.str("SITE_URL", default=BASE_URL)
APP_VERSION = env.str("APP_VERSION", default=__version__)
# Addresses allowed to reach /admin/; an empty list allows every address.
ADMIN_IP_WHITELIST = env.list("ADMIN_IP_WHITELIST", default=[])
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Interval of the periodic heartbeat task that celery beat schedules.
HEARTBEAT_SECONDS = env.float("HEARTBEAT_SECONDS", default=60.0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "bmms_reference.core",
]

# Probes come first: they must respond to whatever Host header or scheme the
# load balancer's health check uses, and they must not count as traffic
# that SecurityMiddleware redirects to HTTPS.
MIDDLEWARE = [
    "bmms_reference.middleware.MetricsMiddleware",
    "bmms_reference.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "bmms_reference.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "bmms_reference.middleware.AdminIpWhitelistMiddleware",
]

ROOT_URLCONF = "bmms_reference.urls"
WSGI_APPLICATION = "bmms_reference.wsgi.application"
AUTH_USER_MODEL = "core.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# Database: PgBouncer in transaction pooling mode. A server connection
# serves another client after each transaction, so server-side cursors
# (which live across transactions) and any other session state are unsafe.
DB_SSLMODE = env.str("DB_SSLMODE", default="require")
DB_SSL_CERT = env.str("DB_SSL_CERT", default="")
if DB_SSLMODE in ("verify-ca", "verify-full") and not DB_SSL_CERT:
    raise ImproperlyConfigured(f"DB_SSLMODE={DB_SSLMODE} needs DB_SSL_CERT, the path of the CA certificate")


def database(url_variable: str) -> dict:
    settings = env.db_url(url_variable)
    if settings["ENGINE"] == "django.db.backends.postgresql":
        options = settings.setdefault("OPTIONS", {})
        options.setdefault("sslmode", DB_SSLMODE)
        if DB_SSL_CERT:
            options.setdefault("sslrootcert", DB_SSL_CERT)
        settings["DISABLE_SERVER_SIDE_CURSORS"] = True
        settings["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
        settings["CONN_HEALTH_CHECKS"] = True
    return settings


if "DATABASE_URL" not in os.environ:
    raise ImproperlyConfigured("DATABASE_URL is missing: set it to postgres://USER:PASSWORD@HOST:PORT/NAME")
DATABASES = {"default": database("DATABASE_URL")}
# Optional read-only alias (PgBouncer routes it to the replicas). The real
# BMMS has no such variable and reads from the primary.
if os.environ.get("DATABASE_READONLY_URL"):
    DATABASES["readonly"] = database("DATABASE_READONLY_URL")
    DATABASES["readonly"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["bmms_reference.db_router.ReadReplicaRouter"]

# Cache: plain Redis through the host's local endpoint, which follows the
# current master, so the application needs no Sentinel support.
USE_REDIS_CACHE = env.bool("USE_REDIS_CACHE", default=False)
if USE_REDIS_CACHE:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env.str("REDIS_URL"),
            "TIMEOUT": 300,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: broker and results on the broker instance of Redis.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="cache+memory://")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A Redis failover leaves the local endpoint without a master for a few
# seconds, so connecting and publishing retry for up to 15 s before a
# task is reported as failed to queue. Kombu stops its connection retries
# after CELERY_BROKER_CONNECTION_TIMEOUT seconds.
BROKER_RETRY = {"max_retries": 20, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_BROKER_CONNECTION_TIMEOUT = 15
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 5, "socket_timeout": 10, **BROKER_RETRY}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"socket_connect_timeout": 5, "socket_timeout": 10}
CELERY_TASK_PUBLISH_RETRY_POLICY = BROKER_RETRY
# One message at a time per process, so a broker failover strands few
# messages in a worker's prefetch buffer.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {"task": "bmms_reference.core.tasks.heartbeat", "schedule": HEARTBEAT_SECONDS},
}

# Email: SMTP in production; the lab writes messages to files.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
if EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend" and not DEBUG:
    raise ImproperlyConfigured(
        "EMAIL_BACKEND is the console backend, which loses every message outside DEBUG: "
        "use django.core.mail.backends.smtp.EmailBackend"
    )
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default="")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="no-reply@localhost")

# HTTPS is terminated at the load balancer, which sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR.parent / "static-root"))

LANGUAGE_CODE = "en-us"
TIME_ZONE = "Asia/Manila"
USE_I18N = True
USE_TZ = True

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
