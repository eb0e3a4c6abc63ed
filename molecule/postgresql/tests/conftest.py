"""Fixtures for the postgresql scenario: lab hosts by role and their secrets.

Tests address hosts by name instead of through testinfra's per-host
``host`` fixture, because most checks involve two hosts (a client and a
server) and should run once.
"""

import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = AnsibleRunner(INVENTORY)

PRIMARY = RUNNER.get_hosts("postgres_primary")[0]
REPLICAS = sorted(RUNNER.get_hosts("postgres_replicas"))
POOLER = RUNNER.get_hosts("pgbouncer")[0]
PSQL = "psql -X -A -t -v ON_ERROR_STOP=1"
CA_FILE = "/etc/bmms/tls/ca.crt"
DATA_DIR = "/var/lib/postgresql/15/main"


@dataclass(frozen=True)
class Secrets:
    """Lab passwords and user names from the scenario's group_vars."""

    app_user: str
    app_password: str
    readonly_user: str
    readonly_password: str
    monitoring_user: str
    monitoring_password: str
    admin_user: str
    admin_password: str


def lab_host(name: str):
    """Return a testinfra host that runs commands as root on a lab host.

    Plain SSH with a persistent master connection: the ansible backend
    starts a module per command, which made the suite several times slower.
    """
    variables = RUNNER.get_variables(name)
    return testinfra.get_host(
        f"ssh://{variables['ansible_user']}@{variables['ansible_host']}",
        ssh_identity_file=variables["ansible_private_key_file"],
        ssh_extra_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        controlpersist=120,
        sudo=True,
    )


def address_of(name: str) -> str:
    return RUNNER.get_variables(name)["ansible_host"]


def psql(host, conninfo: str, sql: str, password: str | None = None):
    """Run one SQL statement with psql on ``host`` and return the command result.

    The password travels in PGPASSWORD, quoted for the shell, so that
    quotes, backslashes and dollar signs reach libpq unchanged.
    """
    environment = f"PGPASSWORD={shlex.quote(password)} " if password is not None else ""
    return host.run(f"{environment}{PSQL} -d {shlex.quote(conninfo)} -c {shlex.quote(sql)}")


def local_psql(host, sql: str, database: str = "postgres"):
    """Run SQL as the postgres superuser over the host's Unix socket."""
    return host.run(f"runuser -u postgres -- {PSQL} -d {database} -c {shlex.quote(sql)}")


def pooler_conninfo(database: str, user: str, sslmode: str = "require", host: str | None = None) -> str:
    target = host or POOLER
    extra = f" sslrootcert={CA_FILE}" if sslmode.startswith("verify") else ""
    return f"host={target} port=6432 dbname={database} user={user} sslmode={sslmode}{extra} connect_timeout=10"


def wait_for(check, timeout: float, interval: float = 0.5):
    """Call ``check`` until it returns a true value or ``timeout`` seconds pass, and return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture(scope="session")
def secrets() -> Secrets:
    variables = RUNNER.get_variables(PRIMARY)
    return Secrets(
        app_user=variables.get("bmms_db_user", "bmms"),
        app_password=variables["bmms_db_password"],
        readonly_user=variables.get("bmms_db_readonly_user", "bmms_ro"),
        readonly_password=variables["bmms_db_readonly_password"],
        monitoring_user=variables.get("bmms_db_monitoring_user", "bmms_monitor"),
        monitoring_password=variables["bmms_db_monitoring_password"],
        admin_user=variables.get("bmms_pgbouncer_admin_user", "pgbouncer_admin"),
        admin_password=variables["bmms_pgbouncer_admin_password"],
    )


@pytest.fixture(scope="session")
def primary():
    return lab_host(PRIMARY)


@pytest.fixture(scope="session")
def replicas():
    return [lab_host(name) for name in REPLICAS]


@pytest.fixture(scope="session")
def client():
    """A lab host that is not the pooler, to connect over the network as an application would."""
    return lab_host(REPLICAS[0])


@pytest.fixture(scope="session")
def converge_playbook() -> Path:
    return Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"
