"""A real failover: stop the masters, elect new ones, rejoin, converge again.

While a client on the application host writes to the cache and queues
tasks through the local endpoint, the test stops each Redis instance on
its master host. It measures how long the Sentinels take to name a new
master and how long until a write to it succeeds. With
down-after-milliseconds at 5000, well under 15 s is expected. Then it
starts the old master again and waits for it to rejoin as a replica,
restarts it once more on the file that Sentinel rewrote, and runs the
converge playbook again. conftest.py runs this module last.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (
    APP_HOST,
    INVENTORY,
    MASTER_NAMES,
    PORTS,
    REDIS_HOSTS,
    REMOTE_DIRECTORY,
    SENTINEL_HOSTS,
    RedisReplyError,
    address_of,
    app_call,
    call,
    config_get,
    current_master,
    host_named,
    info,
    lab_host,
    sentinel_call,
    wait_for,
)

CLIENT_LOG = f"{REMOTE_DIRECTORY}/failover-client.log"
STOP_FILE = f"{REMOTE_DIRECTORY}/failover-client.stop"
QUEUE_KEY = "bmms:test:failover:queue"
EXPECTED_FAILOVER_SECONDS = 15
REJOIN_TIMEOUT_SECONDS = 60
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def sentinels_agree_on_new_master(instance: str, old_master: str) -> str | None:
    """Return the new master's address once every Sentinel names the same one, which is not the old master."""
    named = set()
    for name in SENTINEL_HOSTS:
        try:
            named.add(sentinel_call(address_of(name), "GET-MASTER-ADDR-BY-NAME", MASTER_NAMES[instance])[0])
        except (OSError, RedisReplyError):
            return None
    if len(named) == 1 and old_master not in named:
        return named.pop()
    return None


def write_succeeds(instance: str, address: str) -> bool:
    command = ("SET", "bmms:test:failover:probe", "1") if instance == "cache" else ("LPUSH", "bmms:test:failover:probe", "1")
    try:
        app_call(address, PORTS[instance], *command)
    except (OSError, RedisReplyError):
        return False
    return True


def rejoined_as_replica(address: str, instance: str, master: str) -> bool:
    try:
        replication = info(address, PORTS[instance], "replication")
    except (OSError, RedisReplyError):
        return False
    return (
        replication.get("role") == "slave"
        and replication.get("master_host") == master
        and replication.get("master_link_status") == "up"
    )


def report(request, line: str) -> None:
    """Print a measured figure past pytest's capture, and append it to $BMMS_REDIS_FIGURES if set."""
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(line)
    if os.environ.get("BMMS_REDIS_FIGURES"):
        with open(os.environ["BMMS_REDIS_FIGURES"], "a", encoding="utf-8") as figures:
            figures.write(line + "\n")


def rounded(seconds: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 1) for name, value in seconds.items()}


def read_client_log(app) -> list[dict]:
    return [json.loads(line) for line in app.file(CLIENT_LOG).content_string.splitlines() if line.strip()]


def recovered_at(records: list[dict], instance: str, after: float) -> float | None:
    """Return when the client's first success after its first failure since ``after`` happened."""
    failed = False
    for record in records:
        if record["instance"] != instance or record["t"] < after:
            continue
        if not record["ok"]:
            failed = True
        elif failed:
            return record["t"]
    return None


@pytest.fixture(scope="module")
def failover(request, app_client):
    app = lab_host(APP_HOST)
    old_masters = {instance: current_master(instance) for instance in PORTS}
    old_hosts = {instance: lab_host(host_named(address)) for instance, address in old_masters.items()}

    app.run(f"rm -f {STOP_FILE} {CLIENT_LOG}")
    call(old_masters["broker"], PORTS["broker"], "DEL", QUEUE_KEY)
    app_client(f"run --log {CLIENT_LOG} --stop-file {STOP_FILE}", background=True)
    started = wait_for(lambda: app.file(CLIENT_LOG).exists and app.file(CLIENT_LOG).size > 0, timeout=10)
    assert started, f"the endpoint client wrote nothing to {CLIENT_LOG} within 10 s"
    time.sleep(2)

    stopped_at = time.time()
    for instance, host in old_hosts.items():
        assert host.run(f"systemctl stop redis-server@{instance}.service").rc == 0

    elected, writable, new_masters = {}, {}, {}
    deadline = time.monotonic() + 60
    while len(writable) < len(PORTS) and time.monotonic() < deadline:
        for instance in PORTS:
            if instance not in new_masters:
                new_master = sentinels_agree_on_new_master(instance, old_masters[instance])
                if new_master:
                    new_masters[instance] = new_master
                    elected[instance] = time.time() - stopped_at
            if instance in new_masters and instance not in writable and write_succeeds(instance, new_masters[instance]):
                writable[instance] = time.time() - stopped_at
        time.sleep(0.1)

    # Let the client run on through the new masters for a few seconds.
    wait_for(lambda: all(recovered_at(read_client_log(app), instance, stopped_at) for instance in PORTS), timeout=30, interval=1)
    time.sleep(3)
    app.run(f"touch {STOP_FILE}")
    time.sleep(1)
    records = read_client_log(app)

    started_at = time.time()
    for instance, host in old_hosts.items():
        assert host.run(f"systemctl start redis-server@{instance}.service").rc == 0
    rejoined = {}
    for instance in PORTS:
        if instance in new_masters and wait_for(
            lambda: rejoined_as_replica(old_masters[instance], instance, new_masters[instance]),
            timeout=REJOIN_TIMEOUT_SECONDS, interval=0.5,
        ):
            rejoined[instance] = time.time() - started_at

    # Sentinel rewrote the old master's configuration file when it made it
    # a replica, and a restart must read that file back.
    for instance, host in old_hosts.items():
        assert host.run(f"systemctl restart redis-server@{instance}.service").rc == 0
    restarted = {
        instance: wait_for(lambda: rejoined_as_replica(old_masters[instance], instance, new_masters[instance]),
                           timeout=REJOIN_TIMEOUT_SECONDS, interval=0.5)
        for instance in rejoined
    }

    result = {
        "old_masters": old_masters,
        "restarted": restarted,
        "new_masters": new_masters,
        "elected": elected,
        "writable": writable,
        "rejoined": rejoined,
        "stopped_at": stopped_at,
        "records": records,
    }
    endpoint = {instance: round(recovered_at(records, instance, stopped_at) - stopped_at, 1)
                for instance in PORTS if recovered_at(records, instance, stopped_at)}
    report(request, "failover, seconds after the masters stopped: "
                    f"elected {rounded(elected)}, new master writable {rounded(writable)}, "
                    f"endpoint recovered {endpoint}; old master rejoined {rounded(rejoined)} s after its start")
    return result


@pytest.fixture(scope="module")
def converge_after_failover(request, failover):
    """Run the converge playbook once more, as an operator would after a failover."""
    playbook = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"
    started = time.monotonic()
    environment = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(Path(INVENTORY).parent), str(playbook)],
        capture_output=True, text=True, env=environment, timeout=600, check=False,
    )
    report(request, f"converge after the failover took {time.monotonic() - started:.1f} s")
    return result


@pytest.mark.parametrize("instance", PORTS)
def test_sentinels_elect_new_master(failover, instance):
    assert instance in failover["new_masters"], f"no new {instance} master within 60 s"
    assert failover["new_masters"][instance] != failover["old_masters"][instance]


@pytest.mark.parametrize("instance", PORTS)
def test_new_master_writable_quickly(failover, instance):
    assert instance in failover["writable"], f"no write to the new {instance} master succeeded"
    assert failover["writable"][instance] < EXPECTED_FAILOVER_SECONDS, failover["writable"]


@pytest.mark.parametrize("instance", PORTS)
def test_old_master_rejoins_as_replica(failover, instance):
    assert instance in failover["rejoined"], (
        f"{failover['old_masters'][instance]} did not follow {failover['new_masters'].get(instance)}"
        f" with its link up within {REJOIN_TIMEOUT_SECONDS} s"
    )


@pytest.mark.parametrize("instance", PORTS)
def test_rewritten_replica_restarts_as_replica(failover, instance):
    assert failover["restarted"].get(instance), (
        f"{failover['old_masters'][instance]} did not come back as a replica after a restart"
    )


@pytest.mark.parametrize("instance", PORTS)
def test_rewritten_replica_keeps_settings_after_restart(failover, instance):
    """Settings that CONFIG REWRITE wrote into the file must not add up on a restart."""
    address = failover["old_masters"][instance]
    assert config_get(address, PORTS[instance], "save") == "3600 1 300 100 60 10000"
    assert config_get(address, PORTS[instance], "maxmemory-policy") == ("allkeys-lru" if instance == "cache" else "noeviction")


@pytest.mark.parametrize("instance", PORTS)
def test_endpoint_recovers_quickly(failover, instance):
    recovered = recovered_at(failover["records"], instance, failover["stopped_at"])
    assert recovered is not None, f"the {instance} endpoint never failed or never recovered"
    assert recovered - failover["stopped_at"] < EXPECTED_FAILOVER_SECONDS


@pytest.mark.parametrize("instance", PORTS)
def test_endpoint_stable_after_recovery(failover, instance):
    recovered = recovered_at(failover["records"], instance, failover["stopped_at"])
    later = [record for record in failover["records"] if record["instance"] == instance and record["t"] > recovered + 1]
    assert later, f"the client made no {instance} request after recovering"
    assert all(record["ok"] for record in later), [record for record in later if not record["ok"]][:3]


def test_endpoint_reads_back_cache_writes(failover):
    values = {}
    for record in failover["records"]:
        if record["instance"] == "cache" and record["ok"]:
            values.setdefault(record["i"], {})[record["op"]] = record["reply"]
    mismatches = [i for i, ops in values.items() if "get" in ops and ops["get"] != str(i)]
    assert values and not mismatches, mismatches[:5]


def test_acknowledged_tasks_survive_failover(failover):
    acknowledged = {f"task-{record['i']}" for record in failover["records"]
                    if record["instance"] == "broker" and record["ok"]}
    queued = set(call(failover["new_masters"]["broker"], PORTS["broker"], "LRANGE", QUEUE_KEY, "0", "-1"))
    before = {f"task-{record['i']}" for record in failover["records"]
              if record["instance"] == "broker" and record["ok"] and record["t"] < failover["stopped_at"]}
    assert before, "no task was queued before the failover"
    assert acknowledged - queued == set()


def test_converge_after_failover_succeeds(converge_after_failover):
    assert converge_after_failover.returncode == 0, converge_after_failover.stdout[-3000:] + converge_after_failover.stderr[-2000:]


def test_converge_after_failover_changes_nothing(converge_after_failover):
    recap = {host: int(changed) for host, changed, _, _ in RECAP.findall(converge_after_failover.stdout)}
    assert set(recap) == set(REDIS_HOSTS) | {APP_HOST}, converge_after_failover.stdout[-2000:]
    assert recap == dict.fromkeys(recap, 0)


@pytest.mark.parametrize("instance", PORTS)
def test_new_master_stays_master_after_converge(failover, converge_after_failover, instance):
    new_master = failover["new_masters"][instance]
    assert current_master(instance) == new_master
    assert info(new_master, PORTS[instance], "replication")["role"] == "master"
    assert rejoined_as_replica(failover["old_masters"][instance], instance, new_master)
