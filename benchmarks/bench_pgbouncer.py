#!/usr/bin/env python3
"""Compare pgbench through PgBouncer with pgbench direct to PostgreSQL on lab hosts.

Boots the Molecule scenario ``postgresql`` (three lab hosts), times its
converge, then runs pgbench on the primary (which also runs PgBouncer):

1. through PgBouncer on port 6432 with 1000 clients in transaction mode,
   while a sampler counts the application's server connections on
   PostgreSQL twice a second;
2. direct to PostgreSQL on port 5432 with as many clients as
   max_connections still allows at that moment.

Both runs use the same built-in script, duration and TLS (sslmode=require),
and log in as the application role. The script prints the figures and
asserts nothing; docs/benchmarks.md records a run. It needs root (the lab)
and touches only the scenario's lab hosts.

Run from the repository root:
    .venv/bin/python benchmarks/bench_pgbouncer.py            # create, converge, measure, destroy
    .venv/bin/python benchmarks/bench_pgbouncer.py --reuse    # measure a scenario that is already converged
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
SCENARIO = "postgresql"
SSH_KEY = "/var/lib/bmms-lab/ssh/id_ed25519"
SSH_USER = "ansible"
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
PSQL = "/usr/lib/postgresql/15/bin/psql -X -A -t"
# pgbench needs one file descriptor per client, above the default soft
# limit of 1024.
CLIENT_FILE_LIMIT = 4096
# Connections left free in the direct run: pgbench's setup connection, the
# sampler and an operator's session.
DIRECT_MARGIN = 5


@dataclass(frozen=True)
class Lab:
    """Primary address, credentials and pool sizes of the scenario, from its molecule.yml."""

    primary_address: str
    database: str
    user: str
    password: str
    pool_size: int
    reserve_pool_size: int


@dataclass(frozen=True)
class RunResult:
    """Figures from one pgbench run."""

    clients: int
    tps: float
    transactions: int
    failed: int
    exit_code: int
    max_server_connections: int
    connection_seconds: float


def load_lab() -> Lab:
    """Read the primary's address and the application's credentials from molecule.yml."""
    text = (REPOSITORY / "molecule" / SCENARIO / "molecule.yml").read_text(encoding="utf-8")
    # Molecule expands environment variables in this file and writes "$$" for "$".
    config = yaml.safe_load(string.Template(text).safe_substitute())
    settings = config["provisioner"]["inventory"]["group_vars"]["all"]
    primary = next(p for p in config["platforms"] if "postgres_primary" in p.get("groups", []))
    return Lab(
        primary_address=primary["address"],
        database=settings.get("bmms_db_name", "bmms"),
        user=settings.get("bmms_db_user", "bmms"),
        password=settings["bmms_db_password"],
        pool_size=int(settings.get("pgbouncer_default_pool_size", 50)),
        reserve_pool_size=int(settings.get("pgbouncer_reserve_pool_size", 10)),
    )


def ssh_command(address: str, command: str) -> list[str]:
    return [
        "ssh", "-i", SSH_KEY, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{SSH_USER}@{address}", command,
    ]


def remote(address: str, command: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a shell command on a lab host over SSH."""
    result = subprocess.run(ssh_command(address, command), input=stdin, capture_output=True, text=True, check=False)
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


def pgpass_line(lab: Lab, port: int) -> str:
    """Return a .pgpass line, with backslashes and colons escaped as libpq expects."""
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    return f"{lab.primary_address}:{port}:{lab.database}:{escape(lab.user)}:{escape(lab.password)}\n"


def server_connections_query(lab: Lab) -> str:
    return (
        "SELECT count(*) FROM pg_stat_activity"
        f" WHERE usename = '{lab.user}' AND backend_type = 'client backend'"
    )


def start_sampler(lab: Lab, seconds: int) -> subprocess.Popen:
    """Count the application's server connections on the primary twice a second, printing each count."""
    query = shlex.quote(server_connections_query(lab))
    loop = (
        f"end=$(( $(date +%s) + {seconds} )); while [ $(date +%s) -lt $end ]; do"
        f" sudo -u postgres {PSQL} -d postgres -c {query}; sleep 0.5; done"
    )
    return subprocess.Popen(ssh_command(lab.primary_address, loop), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def run_pgbench(lab: Lab, port: int, clients: int, arguments: argparse.Namespace, passfile: str) -> RunResult:
    """Run pgbench on the primary against ``port`` and sample server connections meanwhile."""
    sampler = start_sampler(lab, arguments.duration + 15)
    command = (
        f"ulimit -n {CLIENT_FILE_LIMIT} && PGPASSFILE={passfile} PGSSLMODE=require"
        f" {PGBENCH} -h {lab.primary_address} -p {port} -U {shlex.quote(lab.user)} -n"
        f" -b {arguments.builtin} -c {clients} -j {arguments.threads} -T {arguments.duration} {lab.database}"
    )
    result = remote(lab.primary_address, command, check=False)
    sampler.terminate()
    samples = [int(line) for line in sampler.communicate()[0].split() if line.isdigit()]
    output = result.stdout + result.stderr
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
    processed = re.search(r"number of transactions actually processed: ([0-9]+)", output)
    failed = re.search(r"number of failed transactions: ([0-9]+)", output)
    connecting = re.search(r"initial connection time = ([0-9.]+) ms", output)
    if result.returncode != 0:
        print(f"pgbench on port {port} exited with {result.returncode}:\n{output[-1500:]}", file=sys.stderr)
    return RunResult(
        clients=clients,
        tps=float(tps.group(1)) if tps else 0.0,
        transactions=int(processed.group(1)) if processed else 0,
        failed=int(failed.group(1)) if failed else 0,
        exit_code=result.returncode,
        max_server_connections=max(samples, default=0),
        connection_seconds=float(connecting.group(1)) / 1000 if connecting else 0.0,
    )


def direct_capacity(lab: Lab) -> int:
    """Return how many more client connections the primary accepts now, minus a margin."""
    query = (
        "SELECT current_setting('max_connections')::int"
        " - current_setting('superuser_reserved_connections')::int"
        " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
    )
    free = remote(lab.primary_address, f"sudo -u postgres {PSQL} -d postgres -c {shlex.quote(query)}").stdout
    return int(free) - DIRECT_MARGIN


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", action="store_true", help="measure the already converged scenario without create, converge or destroy")
    parser.add_argument("--keep", action="store_true", help="leave the lab hosts running afterwards")
    parser.add_argument("--clients", type=int, default=1000, help="pgbench clients through PgBouncer (default 1000)")
    parser.add_argument(
        "--duration", type=int, default=30,
        help="seconds per pgbench run, including the time clients take to connect (default 30)",
    )
    parser.add_argument("--threads", type=int, default=2, help="pgbench worker threads (default 2)")
    parser.add_argument("--scale", type=int, default=10, help="pgbench scale factor, 100000 accounts each (default 10)")
    parser.add_argument(
        "--builtin", default="select-only", choices=["select-only", "simple-update", "tpcb-like"],
        help="pgbench built-in script (default select-only)",
    )
    return parser.parse_args()


def main() -> int:
    arguments = parse_arguments()
    lab = load_lab()
    converge_seconds = None
    passfile = "/tmp/bench-pgbouncer.pgpass"
    try:
        if not arguments.reuse:
            molecule("create")
            converge_seconds = molecule("converge")
        remote(
            lab.primary_address,
            f"umask 077 && cat > {passfile}",
            stdin=pgpass_line(lab, 5432) + pgpass_line(lab, 6432),
        )
        # The tables are created directly, as the application role, so that
        # both runs read the same data.
        remote(
            lab.primary_address,
            f"PGPASSFILE={passfile} PGSSLMODE=require {PGBENCH} -i -q -s {arguments.scale}"
            f" -h {lab.primary_address} -p 5432 -U {shlex.quote(lab.user)} {lab.database}",
        )
        pooled = run_pgbench(lab, 6432, arguments.clients, arguments, passfile)
        direct = run_pgbench(lab, 5432, direct_capacity(lab), arguments, passfile)
    finally:
        # Also after a failed create or converge: the lab is removed unless
        # --keep or --reuse asks to leave it.
        remote(
            lab.primary_address,
            f"PGPASSFILE={passfile} PGSSLMODE=require {PGBENCH} -i -I d -h {lab.primary_address} -p 5432"
            f" -U {shlex.quote(lab.user)} {lab.database}; rm -f {passfile}",
            check=False,
        )
        if not arguments.reuse and not arguments.keep:
            molecule("destroy")

    cap = lab.pool_size + lab.reserve_pool_size
    print(f"pgbench {arguments.builtin}, scale {arguments.scale}, {arguments.duration} s per run, "
          f"{arguments.threads} threads, sslmode=require, on the primary {lab.primary_address}")
    if converge_seconds is not None:
        print(f"molecule converge -s {SCENARIO}:        {converge_seconds:8.1f} s")
    for label, run in (("through PgBouncer (6432)", pooled), ("direct to PostgreSQL (5432)", direct)):
        print(f"{label:28} clients {run.clients:5}  tps {run.tps:9.1f}  transactions {run.transactions:8}"
              f"  failed {run.failed}  exit {run.exit_code}  connecting {run.connection_seconds:.1f} s"
              f"  max server connections {run.max_server_connections}")
        if run.transactions == 0:
            print(f"  {label}: no transaction completed, because connecting took the whole run; raise --duration")
    print(f"PgBouncer server connections: at most {pooled.max_server_connections} seen, "
          f"pool cap {cap} (default_pool_size {lab.pool_size} + reserve_pool_size {lab.reserve_pool_size})")
    if direct.tps > 0 and pooled.tps > 0:
        print(f"TPS ratio PgBouncer / direct: {pooled.tps / direct.tps:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
