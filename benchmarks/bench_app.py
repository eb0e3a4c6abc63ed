#!/usr/bin/env python3
"""Measure requests per second and latency of one web host's /ready/ and /moas/.

/ready/ checks the database (through PgBouncer, TLS) and the Redis cache;
/moas/ is a page that reads the database through the read-only alias.
For each path, a fixed number of client processes each hold one keep-alive
connection to Gunicorn and send GET requests back to back for a fixed
time. The script prints requests per second, p50 and p95 latency and the
count of failed requests, and asserts nothing.

Run it from the repository root against the app scenario's lab after
`molecule converge -s app`:

    .venv/bin/python benchmarks/bench_app.py
    .venv/bin/python benchmarks/bench_app.py --host 10.77.13.22 --concurrency 16 --duration 15

Only loopback and lab addresses (10.77.0.0/16) are accepted as targets.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import multiprocessing
import statistics
import sys
import time

LAB_NETWORK = ipaddress.ip_network("10.77.0.0/16")
MAX_DURATION = 60.0
PATHS = ("/ready/", "/moas/")


def lab_address(value: str) -> str:
    """Accept only a loopback or lab address, so the load stays on this machine."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IP address") from error
    if not (address.is_loopback or address in LAB_NETWORK):
        raise argparse.ArgumentTypeError(f"{value} is outside loopback and {LAB_NETWORK}: only lab hosts may be loaded")
    return value


def duration(value: str) -> float:
    seconds = float(value)
    if not 0 < seconds <= MAX_DURATION:
        raise argparse.ArgumentTypeError(f"duration must be above 0 and at most {MAX_DURATION:.0f} seconds, got {value}")
    return seconds


def client(host: str, port: int, path: str, seconds: float, results) -> None:
    """Send GET requests on one keep-alive connection until the time is up."""
    latencies = []
    failures = 0
    connection = http.client.HTTPConnection(host, port, timeout=10)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            failures += 1
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=10)
            continue
        if response.status == 200:
            latencies.append(time.perf_counter() - started)
        else:
            failures += 1
    connection.close()
    results.put((latencies, failures))


def measure(host: str, port: int, path: str, concurrency: int, seconds: float) -> tuple[list[float], int, float]:
    results = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(target=client, args=(host, port, path, seconds, results)) for _ in range(concurrency)
    ]
    started = time.monotonic()
    for process in processes:
        process.start()
    latencies: list[float] = []
    failures = 0
    for _ in processes:
        client_latencies, client_failures = results.get(timeout=seconds + 30)
        latencies.extend(client_latencies)
        failures += client_failures
    for process in processes:
        process.join()
    return latencies, failures, time.monotonic() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", type=lab_address, default="10.77.13.21", help="web host address (default app1 of the app scenario)")
    parser.add_argument("--port", type=int, default=8000, help="Gunicorn port (default 8000)")
    parser.add_argument("--concurrency", type=int, default=8, help="client processes, one connection each (default 8)")
    parser.add_argument("--duration", type=duration, default=15.0, help="seconds per path, at most 60 (default 15)")
    arguments = parser.parse_args(argv)

    print(f"{arguments.host}:{arguments.port}, {arguments.concurrency} connections, {arguments.duration:.0f} s per path")
    print(f"{'path':10} {'requests/s':>11} {'p50 ms':>8} {'p95 ms':>8} {'failed':>7}")
    for path in PATHS:
        latencies, failures, elapsed = measure(
            arguments.host, arguments.port, path, arguments.concurrency, arguments.duration
        )
        if not latencies:
            print(f"{path:10} {'-':>11} {'-':>8} {'-':>8} {failures:>7}  (no successful request)")
            continue
        print(
            f"{path:10} {len(latencies) / elapsed:11.1f} {statistics.median(latencies) * 1000:8.1f} "
            f"{percentile(latencies, 0.95) * 1000:8.1f} {failures:>7}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
