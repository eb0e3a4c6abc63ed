"""Deploying release 2 (a source archive) under load switches current without a failed request.

This runs last: it deploys playbooks/app.yml again with vars/release2.yml while
threads on the controller request /version/ from every web host, each
request on a new connection as a load balancer without keep-alive sends.
A request may wait while Gunicorn restarts, up to nginx's default
proxy_read_timeout of 60 s; a refused, reset or timed-out request fails.
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import INVENTORY, REPOSITORY, SCENARIO, WEB_HOSTS, WORKER_HOSTS, http_get, http_json, lab_host

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
REQUEST_TIMEOUT = 60.0


class VersionPoller(threading.Thread):
    """Request /version/ from one host until stopped; count versions and failures."""

    def __init__(self, name):
        super().__init__(daemon=True)
        self.name_of_host = name
        self.versions = {}
        self.failures = []
        self.slowest = 0.0
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            started = time.monotonic()
            try:
                status, body = http_get(self.name_of_host, "/version/", timeout=REQUEST_TIMEOUT)
            except OSError as error:
                self.failures.append(repr(error))
                continue
            self.slowest = max(self.slowest, time.monotonic() - started)
            if status == 200:
                version = json.loads(body)["package_version"]
                self.versions[version] = self.versions.get(version, 0) + 1
            else:
                self.failures.append(f"HTTP {status}")
            time.sleep(0.05)


def main_pid(name, unit):
    return lab_host(name).run(f"systemctl show -p MainPID --value {unit}").stdout.strip()


@pytest.fixture(scope="module")
def second_release():
    pids = {name: main_pid(name, "bmms-web") for name in WEB_HOSTS}
    worker_pids = {name: main_pid(name, "bmms-celery-worker") for name in WORKER_HOSTS}
    pollers = [VersionPoller(name) for name in WEB_HOSTS]
    for poller in pollers:
        poller.start()
    deploy = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", os.path.dirname(INVENTORY), "-e", f"@{SCENARIO / 'vars' / 'release2.yml'}",
         "playbooks/app.yml"],
        cwd=REPOSITORY, capture_output=True, text=True, check=False, timeout=600,
    )
    time.sleep(2)
    for poller in pollers:
        poller.stopped.set()
        poller.join()
    return {"deploy": deploy, "pollers": pollers, "pids": pids, "worker_pids": worker_pids}


def test_second_release_deploys(second_release):
    deploy = second_release["deploy"]
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-2000:]


@pytest.mark.parametrize("index", range(len(WEB_HOSTS)), ids=WEB_HOSTS)
def test_no_request_failed_during_deploy(second_release, index):
    poller = second_release["pollers"][index]
    print(f"{poller.name_of_host}: versions {poller.versions}, slowest request {poller.slowest:.1f} s")
    assert poller.failures == [], f"{len(poller.failures)} failed requests: {poller.failures[:5]}"
    assert poller.versions.get("1.0.0", 0) > 0
    assert poller.versions.get("1.1.0", 0) > 0


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_new_version_served(second_release, name):
    status, body = http_json(name, "/version/")
    assert status == 200
    assert body == {"version": "1.1.0", "package_version": "1.1.0"}


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_current_points_at_release_two(second_release, name):
    target = lab_host(name).run("readlink /opt/bmms/current").stdout.strip()
    assert target == "/opt/bmms/releases/1.1.0"


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_gunicorn_restarted_for_release(second_release, name):
    assert main_pid(name, "bmms-web") != second_release["pids"][name]


@pytest.mark.parametrize("name", WORKER_HOSTS)
def test_worker_restarted_for_release(second_release, name):
    assert main_pid(name, "bmms-celery-worker") != second_release["worker_pids"][name]


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_ready_after_release(second_release, name):
    status, body = http_json(name, "/ready/")
    assert status == 200, body


@pytest.mark.parametrize("name", WEB_HOSTS)
@pytest.mark.parametrize("path", ["logs", "media/uploads"])
def test_writable_dir_shared_and_writable(second_release, name, path):
    host = lab_host(name)
    link = f"/opt/bmms/releases/1.1.0/app/src/{path}"
    assert host.file(link).is_symlink
    assert host.file(link).linked_to == f"/var/lib/bmms/shared/{path}"
    # Written the way the services run: as bmms, through the link.
    probe = f"{link}/probe-{name}"
    sandbox = "--property=ProtectSystem=strict --property=ReadWritePaths=/var/lib/bmms"
    write = host.run(f"systemd-run --quiet --pipe --wait --uid=bmms {sandbox} sh -c 'echo ok > {probe}'")
    assert write.rc == 0, write.stderr
    assert host.file(f"/var/lib/bmms/shared/{path}/probe-{name}").user == "bmms"
