#!/usr/bin/python3
"""Prometheus exporter for PgBouncer's SHOW POOLS, STATS, DATABASES, LISTS and CONFIG.

Debian 12's prometheus-pgbouncer-exporter 1.7 cannot scrape PgBouncer 1.18:
it reads the SHOW STATS column total_requests, which PgBouncer 1.8 replaced
with total_query_count, and stops with a KeyError. So this role ships its
own exporter on top of python3-prometheus-client and python3-psycopg2.

Each scrape opens one connection to PgBouncer's admin console (database
"pgbouncer") as a stats user, reads the SHOW commands and closes it. The
connection settings come from libpq's environment (PGHOST, PGPORT, PGUSER,
PGPASSFILE, PGSSLMODE, PGCONNECT_TIMEOUT), so no password is ever in the
process arguments. A failed scrape sets pgbouncer_up to 0 instead of
failing the HTTP request, so Prometheus can distinguish "exporter down"
(up == 0) from "PgBouncer unreachable" (pgbouncer_up == 0).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric

LOG = logging.getLogger("bmms_pgbouncer_exporter")

Row = Mapping[str, Any]

# SHOW POOLS column -> (metric name, help, scale to base unit).
POOL_GAUGES = {
    "cl_active": ("pgbouncer_pools_client_active_connections", "Client connections linked to a server connection", 1),
    "cl_waiting": ("pgbouncer_pools_client_waiting_connections", "Client connections waiting for a server connection", 1),
    "sv_active": ("pgbouncer_pools_server_active_connections", "Server connections linked to a client", 1),
    "sv_idle": ("pgbouncer_pools_server_idle_connections", "Server connections idle and ready for a client", 1),
    "sv_used": ("pgbouncer_pools_server_used_connections", "Server connections idle longer than server_check_delay", 1),
    "maxwait": ("pgbouncer_pools_client_maxwait_seconds", "Wait time of the oldest waiting client", 1),
}

# SHOW STATS column -> (metric name, help, scale to base unit). PgBouncer
# reports times in microseconds, and Prometheus metrics use seconds.
STATS_COUNTERS = {
    "total_xact_count": ("pgbouncer_stats_transactions", "Transactions pooled", 1),
    "total_query_count": ("pgbouncer_stats_queries", "Queries pooled", 1),
    "total_received": ("pgbouncer_stats_received_bytes", "Bytes received from clients", 1),
    "total_sent": ("pgbouncer_stats_sent_bytes", "Bytes sent to clients", 1),
    "total_xact_time": ("pgbouncer_stats_transaction_duration_seconds", "Time spent in transactions", 1e-6),
    "total_query_time": ("pgbouncer_stats_query_duration_seconds", "Time spent in queries", 1e-6),
    "total_wait_time": ("pgbouncer_stats_client_wait_seconds", "Time clients waited for a server", 1e-6),
}

# SHOW DATABASES column -> (metric name, help, scale).
DATABASE_GAUGES = {
    "pool_size": ("pgbouncer_databases_pool_size", "Maximum server connections per user in the pool", 1),
    "reserve_pool": ("pgbouncer_databases_reserve_pool", "Extra server connections allowed when clients wait", 1),
    "max_connections": ("pgbouncer_databases_max_connections", "Maximum server connections for the database, 0 for no limit", 1),
    "current_connections": ("pgbouncer_databases_current_connections", "Server connections open for the database", 1),
}

# SHOW CONFIG keys exported as pgbouncer_config_<key>.
CONFIG_KEYS = ("max_client_conn", "default_pool_size", "reserve_pool_size", "min_pool_size")


def _number(value: Any) -> float | None:
    """Return value as a float, or None for NULL and non-numeric text."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _families(
    rows: Iterable[Row],
    columns: Mapping[str, tuple[str, str, float]],
    labels: Sequence[str],
    family: Callable[..., Metric],
) -> list[Metric]:
    """Turn SHOW rows into one metric family per column, labelled by `labels`.

    Columns that a PgBouncer version does not have are skipped, so an older
    or newer PgBouncer loses a series instead of failing the whole scrape.
    """
    families = {column: family(name, text, labels=list(labels)) for column, (name, text, _) in columns.items()}
    seen: set[str] = set()
    for row in rows:
        label_values = [str(row.get(label, "")) for label in labels]
        for column, (_, _, scale) in columns.items():
            value = _number(row.get(column))
            if value is None:
                continue
            families[column].add_metric(label_values, value * scale)
            seen.add(column)
    return [families[column] for column in columns if column in seen]


def pool_metrics(rows: Iterable[Row]) -> list[Metric]:
    """Build the per-pool gauges from SHOW POOLS rows.

    PgBouncer splits the oldest client's wait into whole seconds (maxwait)
    and the microseconds beyond them (maxwait_us). The gauge adds the two.
    """
    merged = []
    for row in rows:
        row = dict(row)
        seconds, micros = _number(row.get("maxwait")), _number(row.get("maxwait_us"))
        if seconds is not None and micros is not None:
            row["maxwait"] = seconds + micros * 1e-6
        merged.append(row)
    return _families(merged, POOL_GAUGES, ("database", "user"), GaugeMetricFamily)


def stats_metrics(rows: Iterable[Row]) -> list[Metric]:
    """Build the per-database counters from SHOW STATS rows."""
    return _families(rows, STATS_COUNTERS, ("database",), CounterMetricFamily)


def database_metrics(rows: Iterable[Row]) -> list[Metric]:
    """Build the per-database gauges from SHOW DATABASES rows."""
    return _families(rows, DATABASE_GAUGES, ("database",), GaugeMetricFamily)


def lists_metrics(rows: Iterable[Row]) -> list[Metric]:
    """Build one gauge per SHOW LISTS row (free_clients, used_servers, ...)."""
    families = []
    for row in rows:
        value = _number(row.get("items"))
        name = str(row.get("list", ""))
        if value is None or not name.isidentifier():
            continue
        families.append(GaugeMetricFamily(f"pgbouncer_lists_{name}", f"SHOW LISTS entry {name}", value=value))
    return families


def config_metrics(rows: Iterable[Row]) -> list[Metric]:
    """Build gauges for the sizing settings in CONFIG_KEYS from SHOW CONFIG rows."""
    families = []
    for row in rows:
        key = row.get("key")
        value = _number(row.get("value"))
        if key in CONFIG_KEYS and value is not None:
            families.append(GaugeMetricFamily(f"pgbouncer_config_{key}", f"PgBouncer setting {key}", value=value))
    return families


def fetch_rows(connection: Any, command: str) -> list[dict[str, Any]]:
    """Run one SHOW command and return its rows as dicts keyed by column name."""
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {command}")
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


class PgBouncerCollector:
    """Collector that reads PgBouncer's admin console on every scrape."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._failures = 0

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("pgbouncer_up", "1 when the last scrape of PgBouncer's admin console succeeded")
        try:
            families = self._scrape()
        except Exception as error:  # noqa: BLE001 - any driver error means PgBouncer is unreachable
            self._failures += 1
            # Log the first failure and then every 100th, so a long outage
            # does not fill the journal at one line per scrape.
            if self._failures == 1 or self._failures % 100 == 0:
                LOG.error("scrape of PgBouncer failed (%d in a row): %s", self._failures, error)
            up.add_metric([], 0)
            yield up
            return
        if self._failures:
            LOG.info("scrape of PgBouncer succeeded again after %d failures", self._failures)
            self._failures = 0
        up.add_metric([], 1)
        yield up
        yield from families

    def _scrape(self) -> list[Metric]:
        connection = self._connect()
        try:
            return (
                pool_metrics(fetch_rows(connection, "POOLS"))
                + stats_metrics(fetch_rows(connection, "STATS"))
                + database_metrics(fetch_rows(connection, "DATABASES"))
                + lists_metrics(fetch_rows(connection, "LISTS"))
                + config_metrics(fetch_rows(connection, "CONFIG"))
            )
        finally:
            connection.close()


def connect_admin_console() -> Any:
    """Open an autocommit connection to the admin console with libpq's environment."""
    import psycopg2  # imported here so unit tests need no driver

    connection = psycopg2.connect(dbname="pgbouncer")
    # The admin console rejects BEGIN, which psycopg2 sends unless autocommit is on.
    connection.autocommit = True
    return connection


def parse_listen_address(text: str) -> tuple[str, int]:
    """Split HOST:PORT (or [IPv6]:PORT) into its host and port."""
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"invalid listen address {text!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--listen-address",
        type=parse_listen_address,
        required=True,
        help="HOST:PORT on which to serve /metrics",
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PgBouncerCollector(connect_admin_console))
    host, port = options.listen_address
    start_http_server(port, addr=host, registry=registry)
    LOG.info("serving PgBouncer metrics on %s:%d/metrics", host, port)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    LOG.info("stopped")


if __name__ == "__main__":
    main()
