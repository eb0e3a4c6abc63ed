#!/usr/bin/env python3
"""Time the collection's filters and print the figures.

Measures the capacity_plan filter over a grid of 1..44 MOAs x 50..5000 users
(in steps of 50), one SCRAM-SHA-256 verifier at 4096 iterations, and a
1000-user PgBouncer userlist with SCRAM verifiers. The process is pinned to
one CPU where the platform allows it. Each figure is the best of several
rounds. Nothing is asserted: docs/benchmarks.md records measured figures
and the targets.

Run from the repository root:  .venv/bin/python benchmarks/bench_filters.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

# .collections/ansible_collections/bmms/platform links back to this checkout,
# so the plugins import under the names Ansible gives them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".collections"))

from ansible_collections.bmms.platform.plugins.filter.capacity import (
    capacity_plan,
)
from ansible_collections.bmms.platform.plugins.filter.passwords import (
    pgbouncer_userlist,
    scram_sha_256,
)

SALT_SEED = "benchmark-seed-not-a-real-secret"


def best_of(rounds: int, work: Callable[[], object]) -> float:
    """Return the shortest wall-clock time in seconds of ``rounds`` runs of ``work``."""
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return min(timings)


def cpu_model() -> str:
    """Return the CPU model from /proc/cpuinfo, or what the platform module reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pin_to_one_cpu() -> str:
    """Restrict this process to its first allowed CPU; return a description."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this platform)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def plan_grid() -> int:
    count = 0
    for moas in range(1, 45):
        for users in range(50, 5001, 50):
            capacity_plan(moas, users)
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs per figure, of which the fastest is printed (default 3)",
    )
    parser.add_argument(
        "--verifiers",
        type=int,
        default=200,
        help="number of SCRAM verifiers to time (default 200)",
    )
    arguments = parser.parse_args()

    print(f"Python {platform.python_version()}, {cpu_model()}, {pin_to_one_cpu()}")
    print(f"Best of {arguments.rounds} rounds")

    plans = plan_grid()  # also a warm-up run
    seconds = best_of(arguments.rounds, plan_grid)
    print(
        f"capacity_plan grid, {plans} plans (1..44 MOAs x 50..5000 users):"
        f" {seconds:.3f} s, {seconds / plans * 1e6:.1f} us per plan"
    )

    def verifiers() -> None:
        for index in range(arguments.verifiers):
            scram_sha_256(f"password{index}", user=f"user{index}", salt_seed=SALT_SEED)

    seconds = best_of(arguments.rounds, verifiers)
    milliseconds = seconds / arguments.verifiers * 1e3
    print(f"scram_sha_256 at 4096 iterations: {milliseconds:.2f} ms per verifier")

    users = [
        {"name": f"user{index:04d}", "password": f"pass-{index}"}
        for index in range(1000)
    ]
    seconds = best_of(
        arguments.rounds, lambda: pgbouncer_userlist(users, salt_seed=SALT_SEED)
    )
    print(f"pgbouncer_userlist, 1000 users, scram-sha-256: {seconds:.2f} s")
    seconds = best_of(arguments.rounds, lambda: pgbouncer_userlist(users, scheme="md5"))
    print(f"pgbouncer_userlist, 1000 users, md5: {seconds * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
