"""Fixtures for the app scenario: lab hosts by group, HTTP from the controller.

Most checks involve several hosts (a CSV imported on one host, emails sent
by the worker on another), so tests address hosts by name and run once
instead of through testinfra's per-host ``host`` fixture. HTTP requests go
from the controller to the lab addresses only.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import time
from pathlib import Path

import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = AnsibleRunner(INVENTORY)
REPOSITORY = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
SCENARIO = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])

WEB_HOSTS = sorted(RUNNER.get_hosts("web"))
WORKER_HOSTS = sorted(RUNNER.get_hosts("celery_worker"))
BEAT_HOST = RUNNER.get_hosts("celery_beat")[0]
SENTINEL_HOSTS = sorted(RUNNER.get_hosts("redis_sentinel"))
PORT = 8000
MANAGE = "/usr/local/bin/bmms-manage"
MAIL_DIR = "/var/lib/bmms/mail"
HEARTBEAT_SECONDS = 10


def lab_host(name: str):
    """Return a testinfra host that runs commands as root on a lab host."""
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


def address_of(name: str) -> str:
    return RUNNER.get_variables(name)["ansible_host"]


def lab_variable(name: str):
    return RUNNER.get_variables(WEB_HOSTS[0])[name]


def http_get(name: str, path: str, headers: dict | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET a path from a web host on a new connection; return status and body."""
    connection = http.client.HTTPConnection(address_of(name), PORT, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def http_json(name: str, path: str) -> tuple[int, dict]:
    status, body = http_get(name, path)
    return status, json.loads(body)


def manage(name: str, command: str, stdin: str | None = None):
    """Run a Django management command on a host through the role's manage wrapper."""
    host = lab_host(name)
    if stdin is None:
        return host.run(f"{MANAGE} {command}")
    return host.run(f"printf %s {shlex.quote(stdin)} | {MANAGE} {command}")


def python_in_app(name: str, code: str):
    """Run Python code in the application's Django shell on a host; return the command result."""
    return manage(name, f"shell --no-imports --command {shlex.quote(code)}")


def wait_until(check, timeout: float, interval: float = 1.0):
    """Call check until it returns a truthy value or timeout seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
