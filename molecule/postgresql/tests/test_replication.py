"""Streaming replication: both replicas stream through their slots and refuse writes."""

import uuid

from conftest import REPLICAS, address_of, local_psql, wait_for


def test_primary_streams_to_both_replicas(primary):
    rows = local_psql(primary, "SELECT client_addr, state FROM pg_stat_replication ORDER BY client_addr")
    assert rows.rc == 0, rows.stderr
    streaming = {line.split("|")[0]: line.split("|")[1] for line in rows.stdout.split()}
    for name in REPLICAS:
        assert streaming.get(address_of(name)) == "streaming", f"{name} is not streaming: {streaming}"


def test_slots_are_named_after_replicas_and_active(primary):
    rows = local_psql(primary, "SELECT slot_name, slot_type, active FROM pg_replication_slots")
    assert rows.rc == 0, rows.stderr
    slots = {line.split("|")[0]: line.split("|")[1:] for line in rows.stdout.split()}
    for name in REPLICAS:
        assert slots.get(name) == ["physical", "t"], f"slot {name}: {slots.get(name)}"


def test_slot_wal_is_capped(primary):
    setting = local_psql(primary, "SHOW max_slot_wal_keep_size")
    assert setting.stdout.strip() == "10GB"


def test_row_on_primary_reaches_every_replica(primary, replicas):
    token = uuid.uuid4().hex
    written = local_psql(
        primary,
        "CREATE TABLE IF NOT EXISTS replication_probe (token text);"
        f" INSERT INTO replication_probe VALUES ('{token}')",
    )
    assert written.rc == 0, written.stderr
    for replica in replicas:
        def arrived(replica=replica):
            result = local_psql(replica, f"SELECT count(*) FROM replication_probe WHERE token = '{token}'")
            return result.rc == 0 and result.stdout.strip() == "1"

        assert wait_for(arrived, timeout=10), f"row {token} missing on {replica.backend.get_hostname()} after 10 s"


def test_replica_rejects_writes(replicas):
    for replica in replicas:
        result = local_psql(replica, "CREATE TABLE written_on_replica (id int)")
        assert result.rc != 0, f"{replica.backend.get_hostname()} accepted a write"
        assert "read-only transaction" in result.stderr


def test_replica_is_hot_standby(replicas):
    for replica in replicas:
        result = local_psql(replica, "SELECT pg_is_in_recovery(), current_setting('hot_standby')")
        assert result.stdout.strip() == "t|on", f"{replica.backend.get_hostname()}: {result.stdout}{result.stderr}"
