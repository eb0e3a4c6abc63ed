"""Health, readiness, version and metrics endpoints."""

from unittest import mock

from django.db.utils import OperationalError
from django.test import TestCase

import bmms_reference
from bmms_reference.core.models import Moa


class ProbeTests(TestCase):
    def test_health_returns_healthy_json(self):
        response = self.client.get("/health/", HTTP_HOST="unlisted.example")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"status": "healthy", "service": "bmms-reference", "version": "1.0.0"})

    def test_health_touches_no_dependency(self):
        with mock.patch("bmms_reference.probes.check_database") as database, \
                mock.patch("bmms_reference.probes.check_cache") as cache:
            self.client.get("/health/")
        database.assert_not_called()
        cache.assert_not_called()

    def test_ready_reports_each_check(self):
        response = self.client.get("/ready/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["status"], "ready")
        self.assertEqual(response.json()["checks"], {"database": True, "cache": True})

    def test_ready_503_when_cache_fails(self):
        with mock.patch("bmms_reference.probes.cache.set", side_effect=ConnectionError("refused")):
            response = self.client.get("/ready/")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["checks"], {"database": True, "cache": False})
        self.assertEqual(response.json()["errors"]["cache"], "ConnectionError: refused")

    def test_ready_503_when_database_fails(self):
        with mock.patch("bmms_reference.probes.check_database", side_effect=OperationalError("no route")):
            response = self.client.get("/ready/")
        self.assertEqual(response.status_code, 503)
        self.assertFalse(response.json()["checks"]["database"])


class PageTests(TestCase):
    def test_version_reports_package_version(self):
        response = self.client.get("/version/")
        self.assertEqual(response.json()["package_version"], bmms_reference.__version__)

    def test_moa_list_counts_users(self):
        Moa.objects.create(code="mafar", name="Agriculture")
        response = self.client.get("/moas/")
        self.assertEqual(response.json(), {"moas": [{"code": "mafar", "name": "Agriculture", "users": 0}]})


class MetricsTests(TestCase):
    def test_metrics_rejects_missing_token(self):
        self.assertEqual(self.client.get("/metrics").status_code, 401)

    def test_metrics_rejects_wrong_token(self):
        response = self.client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
        self.assertEqual(response.status_code, 401)

    def test_metrics_counts_requests_and_errors(self):
        self.client.get("/version/")
        self.client.get("/no-such-page/")
        response = self.client.get("/metrics", HTTP_AUTHORIZATION="Bearer unit-test-metrics-token")
        body = response.content.decode()
        self.assertEqual(response.status_code, 200)
        self.assertIn('bmms_http_requests_total{method="GET",status="200"}', body)
        self.assertIn('bmms_http_requests_total{method="GET",status="404"}', body)
        self.assertIn("bmms_http_request_duration_seconds_bucket", body)
