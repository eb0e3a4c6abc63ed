from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

import bmms_reference
from bmms_reference.core.models import Moa


def index(request):
    return JsonResponse({"service": "bmms-reference", "version": settings.APP_VERSION})


def version(request):
    """Return the deployed version: APP_VERSION and the version of the code itself."""
    return JsonResponse({"version": settings.APP_VERSION, "package_version": bmms_reference.__version__})


def moa_list(request):
    """List every MOA with its number of users (a page that reads the database)."""
    moas = Moa.objects.annotate(users=Count("members")).order_by("code").values("code", "name", "users")
    return JsonResponse({"moas": list(moas)})


def metrics(request):
    """Expose Prometheus metrics to a caller that sends ``Authorization: Bearer METRICS_TOKEN``."""
    token = settings.METRICS_TOKEN
    supplied = request.headers.get("Authorization", "")
    if not token or not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
        return HttpResponse("metrics need Authorization: Bearer <METRICS_TOKEN>\n", status=401, content_type="text/plain")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Gunicorn runs several worker processes: sum their samples.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
