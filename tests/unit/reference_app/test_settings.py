"""Settings read from the environment reject unsafe values at start-up.

Each case imports the settings in a fresh interpreter, because Django reads
them once per process.
"""

import json
import subprocess
import sys

import pytest

PRINT_SETTINGS = (
    "import json; from django.conf import settings as s; "
    "db = s.DATABASES['default']; "
    "print(json.dumps({'options': db.get('OPTIONS', {}), "
    "'server_side_cursors_disabled': db.get('DISABLE_SERVER_SIDE_CURSORS', False), "
    "'aliases': sorted(s.DATABASES), 'routers': s.DATABASE_ROUTERS, "
    "'cache': s.CACHES['default']['BACKEND'], 'broker': s.CELERY_BROKER_URL}))"
)


@pytest.fixture
def load_settings(reference_environment):
    """Return a function that imports the settings with some variables changed (None removes one)."""

    def load(**overrides):
        return run_with(dict(reference_environment), overrides)

    return load


def run_with(environment, overrides):
    for name, value in overrides.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], env=environment, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SECRET_KEY": None}, "SECRET_KEY is missing"),
        ({"SECRET_KEY": "short-key"}, "SECRET_KEY is too weak"),
        ({"SECRET_KEY": "django-insecure-" + "a" * 60}, "SECRET_KEY is too weak"),
        ({"CSRF_TRUSTED_ORIGINS": "bmms.example.gov.ph"}, "CSRF_TRUSTED_ORIGINS contains 'bmms.example.gov.ph'"),
        ({"CORS_ALLOWED_ORIGINS": "bmms.example.gov.ph"}, "CORS_ALLOWED_ORIGINS contains 'bmms.example.gov.ph'"),
        ({"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}, "EMAIL_BACKEND is the console backend"),
        ({"DATABASE_URL": None}, "DATABASE_URL is missing"),
        ({"DB_SSLMODE": "verify-full"}, "DB_SSLMODE=verify-full needs DB_SSL_CERT"),
    ],
)
def test_settings_reject_unsafe_value(load_settings, overrides, message):
    result = load_settings(**overrides)
    assert result.returncode != 0, result.stdout
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_console_email_allowed_with_debug(load_settings):
    result = load_settings(EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend", DEBUG="true")
    assert result.returncode == 0, result.stderr


def test_postgres_url_gets_pooling_safe_options(load_settings):
    result = load_settings(DATABASE_URL="postgres://bmms:secret@10.0.0.5:6432/bmms")
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["options"] == {"sslmode": "require"}
    assert loaded["server_side_cursors_disabled"] is True


def test_ssl_certificate_passed_as_root_cert(load_settings):
    result = load_settings(
        DATABASE_URL="postgres://bmms:secret@10.0.0.5:6432/bmms", DB_SSLMODE="verify-ca", DB_SSL_CERT="/etc/bmms/tls/ca.crt"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["options"] == {"sslmode": "verify-ca", "sslrootcert": "/etc/bmms/tls/ca.crt"}


def test_readonly_url_adds_alias_and_router(load_settings):
    result = load_settings(
        DATABASE_URL="postgres://bmms:secret@10.0.0.5:6432/bmms",
        DATABASE_READONLY_URL="postgres://bmms_ro:secret@10.0.0.5:6432/bmms_readonly",
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["aliases"] == ["default", "readonly"]
    assert loaded["routers"] == ["bmms_reference.db_router.ReadReplicaRouter"]


def test_redis_cache_and_broker_from_urls(load_settings):
    result = load_settings(
        USE_REDIS_CACHE="true",
        REDIS_URL="redis://bmms:secret@127.0.0.1:6379/0",
        CELERY_BROKER_URL="redis://bmms:secret@127.0.0.1:6380/0",
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert loaded["broker"] == "redis://bmms:secret@127.0.0.1:6380/0"
