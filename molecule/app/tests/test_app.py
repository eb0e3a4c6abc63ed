"""The web and Celery services on every application host."""

import json

import pytest

from conftest import (
    BEAT_HOST,
    WEB_HOSTS,
    WORKER_HOSTS,
    http_get,
    http_json,
    lab_host,
    python_in_app,
)


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_ready_reports_database_and_cache(name):
    status, body = http_json(name, "/ready/")
    assert status == 200, body
    assert body["status"] == "ready"
    assert body["checks"]["database"] is True
    assert body["checks"]["cache"] is True
    assert body["checks"]["database_readonly"] is True


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_health_returns_service_json(name):
    status, body = http_json(name, "/health/")
    assert status == 200
    assert body["status"] == "healthy"
    assert body["service"] == "bmms-reference"
    assert body["version"] in ("1.0.0", "1.1.0")


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_database_connection_uses_tls(name):
    result = python_in_app(
        name,
        "from django.db import connection; connection.ensure_connection(); print(connection.connection.pgconn.ssl_in_use)",
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "True"


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_metrics_rejects_missing_token(name):
    status, _ = http_get(name, "/metrics")
    assert status == 401


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_metrics_token_file_opens_metrics(name):
    token_file = lab_host(name).file("/etc/bmms/metrics-token")
    assert token_file.mode == 0o600
    assert token_file.user == "bmms"
    http_get(name, "/health/")
    status, body = http_get(name, "/metrics", {"Authorization": f"Bearer {token_file.content_string.strip()}"})
    assert status == 200
    assert b'bmms_http_requests_total{method="GET",status="200"}' in body


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_environment_file_private_to_app_user(name):
    env_file = lab_host(name).file("/etc/bmms/app.env")
    assert env_file.mode == 0o600
    assert env_file.user == "bmms"
    assert "sslmode=require" in env_file.content_string


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_gunicorn_workers_follow_cores(name):
    host = lab_host(name)
    cores = int(host.run("nproc").stdout)
    main_pid = host.run("systemctl show -p MainPID --value bmms-web").stdout.strip()
    workers = host.run(f"pgrep -c -P {main_pid}").stdout.strip()
    assert int(workers) == 2 * cores + 1


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_gunicorn_unit_hardened(name):
    shown = lab_host(name).run("systemctl show -p NoNewPrivileges,ProtectSystem,PrivateTmp,User bmms-web").stdout
    assert "NoNewPrivileges=yes" in shown
    assert "ProtectSystem=strict" in shown
    assert "PrivateTmp=yes" in shown
    assert "User=bmms" in shown


@pytest.mark.parametrize("name", WORKER_HOSTS)
def test_worker_runs_with_limits(name):
    host = lab_host(name)
    assert host.service("bmms-celery-worker").is_running
    command = host.run("systemctl show -p ExecStart --value bmms-celery-worker").stdout
    for argument in ("--concurrency 4", "--max-tasks-per-child 1000", "--time-limit 300", "--soft-time-limit 240"):
        assert argument in command
    assert "--beat" not in command
    assert host.run("systemctl show -p TimeoutStopUSec --value bmms-celery-worker").stdout.strip() == "1min"


@pytest.mark.parametrize("name", WORKER_HOSTS)
def test_beat_runs_only_on_beat_host(name):
    running = lab_host(name).run("systemctl is-active bmms-celery-beat").stdout.strip()
    assert running == ("active" if name == BEAT_HOST else "inactive")


def test_every_worker_answers_ping():
    result = python_in_app(
        WEB_HOSTS[0], "import json; from bmms_reference import celery_app; print(json.dumps(celery_app.control.ping(timeout=5)))"
    )
    assert result.rc == 0, result.stderr
    replies = {name for reply in json.loads(result.stdout) for name in reply}
    assert replies == {f"worker@{name}" for name in WORKER_HOSTS}
