"""Liveness and readiness probes with the JSON bodies BMMS returns."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.http import JsonResponse

SERVICE_NAME = "bmms-reference"

logger = logging.getLogger(__name__)


def health(request) -> JsonResponse:
    """Return 200 while the process serves requests; touches no dependency."""
    return JsonResponse({"status": "healthy", "service": SERVICE_NAME, "version": settings.APP_VERSION})


def check_database(alias: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_cache() -> None:
    key = f"ready-probe-{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("a value written to the cache did not read back")
    cache.delete(key)


def ready(request) -> JsonResponse:
    """Check every database alias and the cache; 503 when one check fails.

    ``errors`` names the exception class and message of each failed check,
    so an operator sees why without reading the logs. Connection strings
    never appear in these messages.
    """
    checks: dict[str, bool] = {}
    errors: dict[str, str] = {}
    probes = {"database": lambda: check_database("default"), "cache": check_cache}
    if "readonly" in settings.DATABASES:
        probes["database_readonly"] = lambda: check_database("readonly")
    for name, probe in probes.items():
        try:
            probe()
        except Exception as error:  # noqa: BLE001  (any failure means not ready)
            checks[name] = False
            errors[name] = f"{type(error).__name__}: {error}"[:300]
            logger.warning("readiness check %s failed: %s", name, errors[name])
        else:
            checks[name] = True
    ready_now = all(checks.values())
    body = {
        "status": "ready" if ready_now else "not ready",
        "checks": checks,
        "service": SERVICE_NAME,
        "version": settings.APP_VERSION,
    }
    if errors:
        body["errors"] = errors
    return JsonResponse(body, status=200 if ready_now else 503)
