"""The PgBouncer exporter turns SHOW rows into metric families."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry

SCRIPT = Path(__file__).resolve().parents[3] / "roles/pgbouncer_exporter/files/bmms_pgbouncer_exporter.py"


@pytest.fixture(scope="module")
def exporter():
    spec = importlib.util.spec_from_file_location("bmms_pgbouncer_exporter", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeCursor:
    """Cursor of a fake admin console that answers SHOW commands from a table."""

    def __init__(self, answers):
        self.answers = answers
        self.description = None
        self.rows = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, statement):
        columns, self.rows = self.answers[statement]
        self.description = [type("Column", (), {"name": name}) for name in columns]

    def fetchall(self):
        return self.rows


class FakeConnection:
    def __init__(self, answers):
        self.answers = answers
        self.closed = False

    def cursor(self):
        return FakeCursor(self.answers)

    def close(self):
        self.closed = True


# Columns as PgBouncer 1.18 returns them, trimmed to the ones that matter.
ANSWERS = {
    "SHOW POOLS": (
        ["database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "maxwait", "maxwait_us"],
        [("bmms", "bmms", 5, 2, 3, 1, 0, 1, 500000)],
    ),
    "SHOW STATS": (
        ["database", "total_xact_count", "total_query_count", "total_received", "total_sent", "total_xact_time", "total_query_time", "total_wait_time"],
        [("bmms", 10, 40, 1000, 2000, 3_000_000, 1_500_000, 250_000)],
    ),
    "SHOW DATABASES": (
        ["name", "database", "pool_size", "reserve_pool", "max_connections", "current_connections"],
        [("bmms", "bmms", 50, 10, 0, 4)],
    ),
    "SHOW LISTS": (["list", "items"], [("used_clients", 7), ("free_clients", 43)]),
    "SHOW CONFIG": (["key", "value", "default", "changeable"], [("max_client_conn", "1000", "100", "yes"), ("listen_addr", "*", "", "no")]),
}


def scrape(exporter, connect) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter.PgBouncerCollector(connect))
    return generate_latest(registry).decode()


def sample(text: str, prefix: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, f"expected one sample starting {prefix!r}, found {lines}"
    return float(lines[0].rsplit(" ", 1)[1])


def test_scrape_reports_up(exporter):
    text = scrape(exporter, lambda: FakeConnection(ANSWERS))
    assert sample(text, "pgbouncer_up ") == 1


def test_pool_waiting_clients_labelled(exporter):
    text = scrape(exporter, lambda: FakeConnection(ANSWERS))
    assert sample(text, 'pgbouncer_pools_client_waiting_connections{database="bmms",user="bmms"}') == 2


def test_pool_maxwait_adds_microseconds(exporter):
    text = scrape(exporter, lambda: FakeConnection(ANSWERS))
    assert sample(text, "pgbouncer_pools_client_maxwait_seconds{") == 1.5


def test_stats_times_in_seconds(exporter):
    text = scrape(exporter, lambda: FakeConnection(ANSWERS))
    assert sample(text, 'pgbouncer_stats_query_duration_seconds_total{database="bmms"}') == 1.5
    assert sample(text, 'pgbouncer_stats_queries_total{database="bmms"}') == 40


def test_lists_and_config_become_gauges(exporter):
    text = scrape(exporter, lambda: FakeConnection(ANSWERS))
    assert sample(text, "pgbouncer_lists_used_clients ") == 7
    assert sample(text, "pgbouncer_config_max_client_conn ") == 1000
    assert "pgbouncer_config_listen_addr" not in text


def test_missing_column_drops_only_its_series(exporter):
    """A PgBouncer without a column loses that series, not the scrape."""
    answers = dict(ANSWERS)
    columns, rows = ANSWERS["SHOW STATS"]
    answers["SHOW STATS"] = (columns[:3], [row[:3] for row in rows])
    text = scrape(exporter, lambda: FakeConnection(answers))
    assert sample(text, 'pgbouncer_stats_queries_total{database="bmms"}') == 40
    assert "pgbouncer_stats_sent_bytes_total" not in text
    assert sample(text, "pgbouncer_up ") == 1


def test_connection_failure_reports_down(exporter):
    def refuse():
        raise OSError("connection refused")

    text = scrape(exporter, refuse)
    assert sample(text, "pgbouncer_up ") == 0
    assert "pgbouncer_pools" not in text


def test_connection_closed_after_scrape(exporter):
    connection = FakeConnection(ANSWERS)
    scrape(exporter, lambda: connection)
    assert connection.closed


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.0.0.1:9127", ("10.0.0.1", 9127)), ("[::1]:9127", ("::1", 9127))],
)
def test_listen_address_parsed(exporter, text, expected):
    assert exporter.parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["10.0.0.1", "10.0.0.1:http", "10.0.0.1:70000"])
def test_listen_address_rejected(exporter, text):
    with pytest.raises(Exception, match="invalid listen address"):
        exporter.parse_listen_address(text)
