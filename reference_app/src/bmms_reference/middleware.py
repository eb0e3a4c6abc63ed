"""Request metrics, probes, CORS and the admin address whitelist."""

from __future__ import annotations

import ipaddress
import time

from django.conf import settings
from django.http import HttpResponseForbidden
from prometheus_client import Counter, Histogram

from bmms_reference import probes

REQUESTS = Counter(
    "bmms_http_requests_total", "HTTP requests answered, by method and status code", ["method", "status"]
)
LATENCY = Histogram(
    "bmms_http_request_duration_seconds",
    "Time from the request reaching Django to the response leaving it",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EXCEPTIONS = Counter(
    "bmms_http_exceptions_total", "Requests whose view raised an unhandled exception, by exception class", ["type"]
)

PROBES = {"/health/": probes.health, "/ready/": probes.ready}


class MetricsMiddleware:
    """Count requests, errors and latency for the Prometheus endpoint."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        LATENCY.labels(request.method).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response

    def process_exception(self, request, exception):
        EXCEPTIONS.labels(type(exception).__name__).inc()


class ProbeMiddleware:
    """Answer /health/ and /ready/ before host validation and HTTPS redirects."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        probe = PROBES.get(request.path_info)
        if probe is not None:
            return probe(request)
        return self.get_response(request)


class CorsMiddleware:
    """Allow cross-origin requests from the origins in CORS_ALLOWED_ORIGINS."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.allowed = set(settings.CORS_ALLOWED_ORIGINS)

    def __call__(self, request):
        response = self.get_response(request)
        origin = request.headers.get("Origin")
        if origin and origin in self.allowed:
            response["Access-Control-Allow-Origin"] = origin
            response["Vary"] = "Origin"
        return response


class AdminIpWhitelistMiddleware:
    """Reject /admin/ requests from addresses outside ADMIN_IP_WHITELIST.

    Entries are addresses or networks (``10.0.0.0/8``). The client address
    is REMOTE_ADDR, so behind a load balancer the list names the load
    balancer's address unless the proxy rewrites REMOTE_ADDR.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.networks = [ipaddress.ip_network(entry, strict=False) for entry in settings.ADMIN_IP_WHITELIST]

    def __call__(self, request):
        if self.networks and request.path_info.startswith("/admin/"):
            try:
                client = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
            except ValueError:
                return HttpResponseForbidden("admin access is limited to whitelisted addresses")
            if not any(client in network for network in self.networks):
                return HttpResponseForbidden("admin access is limited to whitelisted addresses")
        return self.get_response(request)
