"""Fixtures and helpers for the redis scenario.

The tests talk to Redis and Sentinel from the controller over the lab
network, with the collection's own small Redis client, so no password
appears in a process list. Commands on lab hosts go over plain SSH. The
failover module runs last, because it moves the masters.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

REPOSITORY = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
sys.path.insert(0, str(REPOSITORY / ".collections"))

from ansible_collections.bmms.platform.plugins.module_utils.redis_protocol import (  # noqa: E402
    RedisConnection,
    RedisReplyError,
    encode_command,
    pairs_to_dict,
)

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = AnsibleRunner(INVENTORY)

REDIS_HOSTS = sorted(RUNNER.get_hosts("redis"))
SENTINEL_HOSTS = sorted(RUNNER.get_hosts("redis_sentinel"))
APP_HOST = sorted(RUNNER.get_hosts("web"))[0]

PORTS = {"cache": 6379, "broker": 6380}
MASTER_NAMES = {"cache": "bmms-cache", "broker": "bmms-broker"}
SENTINEL_PORT = 26379
CLIENT_SCRIPT = Path(__file__).with_name("endpoint_client.py")
REMOTE_DIRECTORY = "/root/bmms-redis-tests"


def pytest_collection_modifyitems(items):
    """Run the failover tests last. The sort is stable, so the other tests keep their file order."""
    items.sort(key=lambda item: item.module.__name__ == "test_failover")


@dataclass(frozen=True)
class Secrets:
    """Lab user names and passwords from the scenario's group_vars."""

    admin_password: str
    app_user: str
    app_password: str
    monitoring_user: str
    monitoring_password: str


def load_secrets() -> Secrets:
    variables = RUNNER.get_variables(REDIS_HOSTS[0])
    return Secrets(
        admin_password=variables["bmms_redis_password"],
        app_user=variables.get("bmms_redis_app_user", "bmms"),
        app_password=variables["bmms_redis_app_password"],
        monitoring_user=variables.get("bmms_redis_monitoring_user", "bmms_monitor"),
        monitoring_password=variables["bmms_redis_monitoring_password"],
    )


SECRETS = load_secrets()


def address_of(name: str) -> str:
    return RUNNER.get_variables(name)["ansible_host"]


def host_named(address: str) -> str:
    """Return the inventory name of the Redis host with this address."""
    return next(name for name in REDIS_HOSTS if address_of(name) == address)


def lab_host(name: str):
    """Return a testinfra host that runs commands as root over SSH."""
    variables = RUNNER.get_variables(name)
    return testinfra.get_host(
        f"ssh://{variables['ansible_user']}@{variables['ansible_host']}",
        ssh_identity_file=variables["ansible_private_key_file"],
        ssh_extra_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        controlpersist=120,
        sudo=True,
    )


def connect(address: str, port: int, user: str | None = None, password: str | None = None) -> RedisConnection:
    """Open a connection, as the default user with the admin password unless a user or password is given."""
    if password is None:
        password = SECRETS.admin_password
    return RedisConnection(address, port, password, username=user, timeout=5)


def call(address: str, port: int, *command: object, user: str | None = None, password: str | None = None):
    """Run one command on a fresh connection and return its reply."""
    with connect(address, port, user, password) as connection:
        return connection.call(*command)


def app_call(address: str, port: int, *command: object):
    """Run one command as the application user."""
    return call(address, port, *command, user=SECRETS.app_user, password=SECRETS.app_password)


def pipeline(connection: RedisConnection, commands: list[tuple]) -> list:
    """Send several commands at once and return their replies in order.

    An error reply raises RedisReplyError, and the connection is unusable after that.
    """
    connection.socket.sendall(b"".join(encode_command(*command) for command in commands))
    return [connection.reader.read_reply() for _ in commands]


def info(address: str, port: int, section: str) -> dict[str, str]:
    """Return one INFO section as a dict."""
    text = call(address, port, "INFO", section)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def config_get(address: str, port: int, name: str) -> str:
    return call(address, port, "CONFIG", "GET", name)[1]


def sentinel_call(address: str, *command: object):
    return call(address, SENTINEL_PORT, "SENTINEL", *command)


def sentinel_master(address: str, instance: str) -> dict[str, str]:
    return pairs_to_dict(sentinel_call(address, "MASTER", MASTER_NAMES[instance]))


def current_master(instance: str) -> str:
    """Return the master's address named by the first Sentinel that replies."""
    for name in SENTINEL_HOSTS:
        try:
            return sentinel_call(address_of(name), "GET-MASTER-ADDR-BY-NAME", MASTER_NAMES[instance])[0]
        except (OSError, RedisReplyError):
            continue
    raise AssertionError(f"no Sentinel names a master for {MASTER_NAMES[instance]}")


def wait_for(check, timeout: float, interval: float = 0.2):
    """Call ``check`` until it returns a true value or ``timeout`` seconds pass, and return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def write_remote_file(name: str, path: str, content: str, mode: str = "0600") -> None:
    """Write ``content`` to ``path`` on a lab host as root, sent over SSH's stdin."""
    variables = RUNNER.get_variables(name)
    result = subprocess.run(
        ["ssh", "-i", variables["ansible_private_key_file"], "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
         f"{variables['ansible_user']}@{variables['ansible_host']}",
         f"sudo install -D -m {mode} /dev/stdin {shlex.quote(path)}"],
        input=content, text=True, capture_output=True, timeout=30, check=False,
    )
    assert result.returncode == 0, f"writing {path} on {name} failed: {result.stderr}"


@pytest.fixture(scope="session")
def app_client():
    """Install the endpoint client and its credentials on the application host.

    Returns a function that runs the client with the given arguments.
    """
    host = lab_host(APP_HOST)
    credentials = f"{REMOTE_DIRECTORY}/credentials"
    write_remote_file(APP_HOST, credentials, f"{SECRETS.app_user}\n{SECRETS.app_password}\n")
    write_remote_file(APP_HOST, f"{REMOTE_DIRECTORY}/endpoint_client.py", CLIENT_SCRIPT.read_text(), mode="0644")

    def run(arguments: str, background: bool = False):
        command = f"python3 {REMOTE_DIRECTORY}/endpoint_client.py --credentials {credentials} {arguments}"
        if background:
            command = f"nohup {command} >/dev/null 2>&1 &"
        return host.run(command)

    return run
