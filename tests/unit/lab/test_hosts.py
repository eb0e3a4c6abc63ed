"""Process identification: the lab stops only processes it started."""

import os
import subprocess
import sys

import pytest

from bmms_lab import hosts


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield process
    process.kill()
    process.wait()


def test_unrelated_process_not_lab_host(sleeper):
    assert not hosts.is_lab_nspawn(sleeper.pid, "bmms-t1-db1")


def test_missing_process_not_lab_host():
    assert not hosts.is_lab_nspawn(2**22 + 1, "bmms-t1-db1")


def test_processes_of_own_namespace_include_this_process():
    namespace = os.readlink("/proc/self/ns/pid")
    assert os.getpid() in hosts.processes_in_namespace(namespace)


def test_process_without_container_child_has_no_host_namespace(sleeper):
    assert hosts.container_pid_namespace(sleeper.pid) is None


def test_stop_leaves_an_unrelated_pid_alone(tmp_path, sleeper):
    """A pid file naming a process that is not our nspawn is ignored."""
    (tmp_path / "nspawn.pid").write_text(f"{sleeper.pid}\n", encoding="utf-8")
    hosts.stop_machine(tmp_path, "bmms-t1-db1")
    assert sleeper.poll() is None, "stop_machine killed a process that is not a lab host"
    assert not (tmp_path / "nspawn.pid").exists()


def test_stop_ignores_this_process_namespace(tmp_path):
    """A namespace file naming the controller's own namespace never kills it."""
    (tmp_path / "pid-namespace").write_text(os.readlink("/proc/self/ns/pid") + "\n", encoding="utf-8")
    hosts.stop_machine(tmp_path, "bmms-t1-db1")


def test_concurrent_labs_share_one_ssh_key(tmp_path, monkeypatch):
    """Labs booting at once all get the key that the first of them created."""
    import threading

    key = tmp_path / "ssh" / "id_ed25519"
    monkeypatch.setattr(hosts, "SSH_KEY", key)
    errors = []

    def boot():
        try:
            hosts.ensure_ssh_key()
        except Exception as error:  # noqa: BLE001 - collected for the assert below
            errors.append(error)

    threads = [threading.Thread(target=boot) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert key.read_text(encoding="utf-8").startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert (tmp_path / "ssh" / "id_ed25519.pub").read_text(encoding="utf-8").startswith("ssh-ed25519 ")
