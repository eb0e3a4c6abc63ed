"""A Redis failover while the application serves /ready/ and Celery runs tasks.

Sentinel promotes a replica of both the cache and the broker instance. The
local endpoint on each application host follows the new masters, so
/ready/ reports the cache again within seconds, and every task queued
before, during and after the failover runs.
"""

import json
import shlex
import threading
import time
import uuid

import pytest

from conftest import SENTINEL_HOSTS, WEB_HOSTS, address_of, http_json, lab_host, lab_variable, manage, wait_until

MASTERS = ("bmms-cache", "bmms-broker")
TASKS_PER_BATCH = 20
READY_AGAIN_SECONDS = 30


def sentinel(command: str):
    name = SENTINEL_HOSTS[0]
    password = shlex.quote(lab_variable("bmms_redis_password"))
    result = lab_host(name).run(
        f"redis-cli --no-auth-warning -h {address_of(name)} -p 26379 -a {password} {command}"
    )
    assert result.rc == 0, result.stderr
    return result.stdout.split()


def master_addresses():
    return {master: sentinel(f"SENTINEL get-master-addr-by-name {master}")[0] for master in MASTERS}


class ReadyWatcher(threading.Thread):
    """Poll /ready/ on every web host and record (time, host, cache ok)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            for name in WEB_HOSTS:
                try:
                    _, body = http_json(name, "/ready/")
                    cache = body["checks"]["cache"]
                except (OSError, ValueError, KeyError):
                    cache = False
                self.samples.append((time.monotonic(), name, cache))
            time.sleep(0.5)


def probe_keys(prefix):
    result = manage(WEB_HOSTS[0], f"task_runs probe --key-prefix {prefix} --seconds 900")
    assert result.rc == 0, result.stderr
    return {run["key"] for run in json.loads(result.stdout)}


@pytest.fixture(scope="module")
def failover():
    """Fail over both masters under load; return what happened."""
    prefix = f"failover{uuid.uuid4().hex[:8]}"
    before = master_addresses()
    watcher = ReadyWatcher()
    watcher.start()
    queued = manage(WEB_HOSTS[-1], f"queue_probes {prefix}a --count {TASKS_PER_BATCH}")
    started = time.monotonic()
    for master in MASTERS:
        sentinel(f"SENTINEL FAILOVER {master}")

    def both_moved():
        return all(address != before[master] for master, address in master_addresses().items())

    switched = wait_until(both_moved, timeout=60)
    switched_after = time.monotonic() - started
    queued_after = manage(WEB_HOSTS[0], f"queue_probes {prefix}b --count {TASKS_PER_BATCH}")
    expected = {f"{prefix}{batch}-{number}" for batch in "ab" for number in range(TASKS_PER_BATCH)}

    def all_ran():
        keys = probe_keys(prefix)
        return keys if expected <= keys else None

    ran = wait_until(all_ran, timeout=120, interval=3)
    time.sleep(2)
    watcher.stopped.set()
    watcher.join()
    return {
        "before": before, "after": master_addresses(), "switched": switched, "switched_after": switched_after,
        "queued": (queued, queued_after), "expected": expected, "ran": ran or probe_keys(prefix),
        "samples": watcher.samples, "started": started,
    }


def test_failover_moves_both_masters(failover):
    assert failover["switched"], f"masters still {failover['after']} after 60 s"
    for master in MASTERS:
        assert failover["after"][master] != failover["before"][master], master


def test_tasks_queued_around_failover(failover):
    for result in failover["queued"]:
        assert result.rc == 0, result.stderr


def test_no_queued_task_lost(failover):
    missing = failover["expected"] - failover["ran"]
    assert not missing, f"{len(missing)} of {len(failover['expected'])} tasks never ran: {sorted(missing)[:5]}"


@pytest.mark.parametrize("name", WEB_HOSTS)
def test_ready_reports_cache_again(failover, name):
    """After the failover started, /ready/ reports the cache within READY_AGAIN_SECONDS."""
    samples = [(at, cache) for at, host, cache in failover["samples"] if host == name and at >= failover["started"]]
    last_failure = max((at for at, cache in samples if not cache), default=failover["started"])
    assert samples and samples[-1][1], f"/ready/ on {name} still reports no cache"
    assert last_failure - failover["started"] <= READY_AGAIN_SECONDS, (
        f"/ready/ on {name} reported no cache until {last_failure - failover['started']:.1f} s after the failover"
    )
