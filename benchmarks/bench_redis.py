#!/usr/bin/env python3
"""Measure Redis throughput and failover time on the lab hosts of the redis scenario.

Boots the Molecule scenario ``redis`` (three Redis and Sentinel hosts and
one application host) and times its converge. Then:

1. redis-benchmark runs on a replica host against the cache master's lab
   address, as the application's ACL user: SET and GET, once without
   pipelining and once with 16 commands per pipeline, a bounded number of
   requests each (-n);
2. the script stops the cache master and measures how long until every
   Sentinel names a new master and until a write to it succeeds. Then it
   starts the old master and measures how long until it is a replica with
   its link up. This repeats for --failovers rounds.

The script prints the figures and asserts nothing; docs/benchmarks.md
records a run. It needs root (the lab) and connects only to the
scenario's lab hosts.

Run from the repository root:
    .venv/bin/python benchmarks/bench_redis.py            # create, converge, measure, destroy
    .venv/bin/python benchmarks/bench_redis.py --reuse    # measure a scenario that is already converged
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
# .collections/ansible_collections/bmms/platform links back to this checkout.
sys.path.insert(0, str(REPOSITORY / ".collections"))

from ansible_collections.bmms.platform.plugins.module_utils.redis_protocol import (  # noqa: E402
    RedisConnection,
    RedisReplyError,
)

SCENARIO = "redis"
SSH_KEY = "/var/lib/bmms-lab/ssh/id_ed25519"
SSH_USER = "ansible"
CACHE_PORT = 6379
SENTINEL_PORT = 26379
CACHE_MASTER_NAME = "bmms-cache"
BENCHMARK_KEYSPACE = 100_000


@dataclass(frozen=True)
class Lab:
    """Addresses and credentials the benchmark reads from the scenario's molecule.yml."""

    redis_addresses: list[str]
    admin_password: str
    app_user: str
    app_password: str


@dataclass(frozen=True)
class FailoverResult:
    """Seconds from stopping the master until each milestone."""

    elected: float
    writable: float
    rejoined: float


def load_lab() -> Lab:
    """Read the Redis hosts' addresses and the credentials from molecule.yml."""
    text = (REPOSITORY / "molecule" / SCENARIO / "molecule.yml").read_text(encoding="utf-8")
    # Molecule expands environment variables in this file and writes "$$" for "$".
    config = yaml.safe_load(string.Template(text).safe_substitute())
    settings = config["provisioner"]["inventory"]["group_vars"]["all"]
    return Lab(
        redis_addresses=[p["address"] for p in config["platforms"] if "redis" in p.get("groups", [])],
        admin_password=settings["bmms_redis_password"],
        app_user=settings.get("bmms_redis_app_user", "bmms"),
        app_password=settings["bmms_redis_app_password"],
    )


def remote(address: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a shell command on a lab host over SSH."""
    result = subprocess.run(
        ["ssh", "-i", SSH_KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{SSH_USER}@{address}", command],
        capture_output=True, text=True, check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"command failed on {address} (exit {result.returncode}): {command}\n{result.stderr}")
    return result


def molecule(action: str) -> float:
    """Run one Molecule action on the scenario and return its wall-clock seconds."""
    environment = dict(os.environ, PATH=f"{REPOSITORY / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
    started = time.monotonic()
    result = subprocess.run(
        ["molecule", action, "-s", SCENARIO], cwd=REPOSITORY, env=environment, capture_output=True, text=True, check=False
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"molecule {action} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return elapsed


def redis_call(address: str, port: int, password: str, *command: object, user: str | None = None):
    with RedisConnection(address, port, password, username=user, timeout=2) as connection:
        return connection.call(*command)


def sentinel_masters(lab: Lab) -> set[str]:
    """Return the cache master addresses the Sentinels name, with '' for each unreachable Sentinel."""
    named = set()
    for address in lab.redis_addresses:
        try:
            named.add(redis_call(address, SENTINEL_PORT, lab.admin_password, "SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                 CACHE_MASTER_NAME)[0])
        except (OSError, RedisReplyError):
            named.add("")
    return named


def sentinels_agree_on_new_master(lab: Lab, old_master: str) -> bool:
    named = sentinel_masters(lab)
    return len(named) == 1 and not named & {old_master, ""}


def current_master(lab: Lab) -> str:
    named = sentinel_masters(lab) - {""}
    if len(named) != 1:
        raise RuntimeError(f"the Sentinels do not agree on the cache master: {sorted(named)}")
    return named.pop()


def is_linked_replica(lab: Lab, address: str, master: str) -> bool:
    try:
        replication = redis_call(address, CACHE_PORT, lab.admin_password, "INFO", "replication")
    except (OSError, RedisReplyError):
        return False
    return f"master_host:{master}" in replication and "master_link_status:up" in replication


def wait_until(check, timeout: float, interval: float = 0.1) -> float | None:
    """Return the seconds until ``check`` returned true, or None after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(interval)
    return None


def run_redis_benchmark(lab: Lab, client: str, master: str, requests: int, clients: int, pipeline: int) -> dict[str, str]:
    """Run redis-benchmark for SET and GET on ``client`` against ``master``, and return the figures by test."""
    # The lab-only password is an argument here, because redis-benchmark 7.0
    # reads it from -a only. No production secret is involved.
    command = (
        f"redis-benchmark -h {master} -p {CACHE_PORT} --user {shlex.quote(lab.app_user)} -a {shlex.quote(lab.app_password)}"
        f" -t set,get -n {requests} -c {clients} -P {pipeline} -d 256 -r {BENCHMARK_KEYSPACE} --csv"
    )
    output = remote(client, command).stdout
    # Columns: test, rps, avg, min, p50, p95, p99 and max latency in ms.
    figures = {}
    for line in output.splitlines():
        fields = [field.strip('"') for field in line.split(",")]
        if fields and fields[0] in ("SET", "GET"):
            figures[fields[0]] = f"{float(fields[1]):,.0f} req/s, p50 {fields[4]} ms, p99 {fields[6]} ms"
    return figures


def measure_failover(lab: Lab) -> FailoverResult:
    """Stop the cache master; time the election, the first write and the old master's return."""
    old_master = current_master(lab)
    started = time.monotonic()
    remote(old_master, "sudo systemctl stop redis-server@cache.service")
    elected = wait_until(lambda: sentinels_agree_on_new_master(lab, old_master), timeout=60)
    if elected is None:
        raise RuntimeError("no new cache master within 60 s")
    new_master = current_master(lab)

    def write_succeeds() -> bool:
        try:
            redis_call(new_master, CACHE_PORT, lab.app_password, "SET", "bmms:bench:failover", "1", user=lab.app_user)
        except (OSError, RedisReplyError):
            return False
        return True

    wait_until(write_succeeds, timeout=60)
    writable = time.monotonic() - started

    restarted = time.monotonic()
    remote(old_master, "sudo systemctl start redis-server@cache.service")
    rejoined = wait_until(lambda: is_linked_replica(lab, old_master, new_master), timeout=120, interval=0.5)
    if rejoined is None:
        raise RuntimeError(f"{old_master} did not rejoin {new_master} within 120 s")
    return FailoverResult(elected=elected, writable=writable, rejoined=time.monotonic() - restarted)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", action="store_true", help="measure the already converged scenario without create, converge or destroy")
    parser.add_argument("--keep", action="store_true", help="leave the lab hosts running afterwards")
    parser.add_argument("--requests", type=int, default=100_000, help="redis-benchmark requests per test (-n, default 100000)")
    parser.add_argument("--clients", type=int, default=50, help="redis-benchmark parallel connections (-c, default 50)")
    parser.add_argument("--pipeline", type=int, default=16, help="commands per pipeline in the pipelined run (-P, default 16)")
    parser.add_argument("--failovers", type=int, default=3, help="failover rounds (default 3)")
    return parser.parse_args()


def main() -> int:
    arguments = parse_arguments()
    lab = load_lab()
    if not arguments.reuse:
        molecule("destroy")
        print(f"create: {molecule('create'):.1f} s")
        print(f"converge: {molecule('converge'):.1f} s")
    try:
        master = current_master(lab)
        client = next(address for address in lab.redis_addresses if address != master)
        print(f"redis-benchmark on {client} against the cache master {master}, {arguments.requests} requests,"
              f" {arguments.clients} connections, 256-byte values, as user {lab.app_user}")
        for pipeline in (1, arguments.pipeline):
            figures = run_redis_benchmark(lab, client, master, arguments.requests, arguments.clients, pipeline)
            for test, figure in figures.items():
                print(f"  {test:3} -P {pipeline:<3} {figure}")
        results = []
        for number in range(1, arguments.failovers + 1):
            result = measure_failover(lab)
            results.append(result)
            print(f"failover {number}: new master named after {result.elected:.1f} s, writable after"
                  f" {result.writable:.1f} s; old master a linked replica {result.rejoined:.1f} s after its start")
        if len(results) > 1:
            for label, values in (("named", [r.elected for r in results]), ("writable", [r.writable for r in results])):
                print(f"failover {label}: median {statistics.median(values):.1f} s,"
                      f" min {min(values):.1f} s, max {max(values):.1f} s")
    finally:
        if not arguments.reuse and not arguments.keep:
            molecule("destroy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
