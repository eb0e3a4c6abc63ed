#!/usr/bin/env python3
"""Measure requests per second through nginx and directly to one Gunicorn.

Both runs use the same number of client processes, each holding one
keep-alive connection and sending GET requests back to back for a fixed
time. The script prints both rates and their ratio and asserts nothing.

Run it from the repository root against a lab, for example the Molecule
scenario's after `molecule converge -s nginx`:

    .venv/bin/python benchmarks/bench_nginx.py
    .venv/bin/python benchmarks/bench_nginx.py --lb 10.77.14.11 --backend 10.77.14.21 --concurrency 16

Only loopback and lab addresses (10.77.0.0/16) are accepted as targets.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import multiprocessing
import ssl
import statistics
import sys
import time

LAB_NETWORK = ipaddress.ip_network("10.77.0.0/16")
MAX_DURATION = 60.0


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
        raise argparse.ArgumentTypeError(f"duration must be above 0 and at most {MAX_DURATION:.0f} s, got {value}")
    return seconds


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lb", type=lab_address, default="10.77.14.11", help="nginx address (HTTPS on 443)")
    parser.add_argument("--backend", type=lab_address, default="10.77.14.21", help="one Gunicorn address")
    parser.add_argument("--backend-port", type=int, default=8000, help="Gunicorn port (default 8000)")
    parser.add_argument("--path", default="/health/", help="path to request (default /health/, which skips the database)")
    parser.add_argument("--concurrency", type=int, default=8, help="client processes, one connection each (default 8)")
    parser.add_argument("--duration", type=duration, default=10.0, help="seconds per run, at most 60 (default 10)")
    return parser.parse_args(argv)


def client_loop(scheme: str, host: str, port: int, path: str, seconds: float, results) -> None:
    """Send GETs over one keep-alive connection until time runs out, then report counts and latencies."""
    if scheme == "https":
        context = ssl.create_default_context()
        # The lab CA is not in the controller's trust store. The benchmark
        # measures throughput, and the Molecule tests check the certificate.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=10)
    done = errors = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            connection.close()
            continue
        latencies.append(time.perf_counter() - started)
        if response.status == 200:
            done += 1
        else:
            errors += 1
    connection.close()
    results.put((done, errors, latencies))


def measure(scheme: str, host: str, port: int, path: str, concurrency: int, seconds: float) -> dict[str, float]:
    """Run concurrency client processes against one target and return rate, errors and latency percentiles."""
    results: multiprocessing.Queue = multiprocessing.Queue()
    clients = [
        multiprocessing.Process(target=client_loop, args=(scheme, host, port, path, seconds, results))
        for _ in range(concurrency)
    ]
    started = time.monotonic()
    for client in clients:
        client.start()
    outcomes = [results.get(timeout=seconds + 30) for _ in clients]
    for client in clients:
        client.join()
    elapsed = time.monotonic() - started
    done = sum(outcome[0] for outcome in outcomes)
    errors = sum(outcome[1] for outcome in outcomes)
    latencies = sorted(latency for outcome in outcomes for latency in outcome[2])
    if len(latencies) >= 2:
        p50 = statistics.median(latencies)
        p99 = statistics.quantiles(latencies, n=100)[98]
    else:
        p50 = p99 = float("nan")
    return {"rate": done / elapsed, "requests": done, "errors": errors, "p50_ms": p50 * 1000, "p99_ms": p99 * 1000}


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    runs = {
        f"nginx https://{arguments.lb}{arguments.path}": ("https", arguments.lb, 443),
        f"gunicorn http://{arguments.backend}:{arguments.backend_port}{arguments.path}": (
            "http",
            arguments.backend,
            arguments.backend_port,
        ),
    }
    print(f"concurrency {arguments.concurrency}, {arguments.duration:.0f} s per run, keep-alive connections")
    rates = []
    for label, (scheme, host, port) in runs.items():
        figures = measure(scheme, host, port, arguments.path, arguments.concurrency, arguments.duration)
        rates.append(figures["rate"])
        print(
            f"{label}: {figures['rate']:.0f} requests/s ({figures['requests']} ok, {figures['errors']} errors), "
            f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms"
        )
    if rates[1] > 0:
        print(f"ratio nginx / one gunicorn: {rates[0] / rates[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
