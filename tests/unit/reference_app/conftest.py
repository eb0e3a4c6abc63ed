"""Run the reference application's Django tests under pytest on SQLite.

Django is configured when pytest imports this file, before it collects the
test modules (they import models). A session fixture creates the test
database once, as Django's own test runner does.
"""

import os
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[3] / "reference_app" / "src"
if str(SOURCE) not in sys.path:
    sys.path.insert(0, str(SOURCE))

TEST_ENVIRONMENT = {
    "DJANGO_SETTINGS_MODULE": "bmms_reference.settings",
    "SECRET_KEY": "unit-tests-only-" + "k7" * 25,
    "DEBUG": "false",
    "ALLOWED_HOSTS": "testserver,localhost",
    "DATABASE_URL": "sqlite:///unit-tests.sqlite3",
    "METRICS_TOKEN": "unit-test-metrics-token",
    "SECURE_SSL_REDIRECT": "false",
}
for name, value in TEST_ENVIRONMENT.items():
    os.environ[name] = value

import django  # noqa: E402  (configured by the environment above)

django.setup()

from bmms_reference import celery_app  # noqa: E402

# Tasks run in the calling process, so a test sees their effects at once.
celery_app.conf.task_always_eager = True


@pytest.fixture
def reference_environment():
    """Environment of a fresh interpreter that loads the reference settings."""
    environment = {key: value for key, value in os.environ.items() if key not in TEST_ENVIRONMENT}
    environment.update(TEST_ENVIRONMENT)
    environment["PYTHONPATH"] = str(SOURCE)
    return environment


@pytest.fixture(scope="session", autouse=True)
def django_test_database():
    from django.test.utils import setup_test_environment, teardown_test_environment
    from django.test.runner import DiscoverRunner

    setup_test_environment()
    runner = DiscoverRunner(verbosity=0, interactive=False)
    old_config = runner.setup_databases()
    yield
    runner.teardown_databases(old_config)
    teardown_test_environment()
