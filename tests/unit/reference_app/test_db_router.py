"""The read-replica router sends reads to the read-only alias only."""

from bmms_reference.core.models import Moa
from bmms_reference.db_router import ReadReplicaRouter

ROUTER = ReadReplicaRouter()


def test_reads_go_to_readonly_alias():
    assert ROUTER.db_for_read(Moa) == "readonly"


def test_writes_go_to_primary():
    assert ROUTER.db_for_write(Moa) == "default"


def test_migrations_run_on_primary_only():
    assert ROUTER.allow_migrate("default", "core") is True
    assert ROUTER.allow_migrate("readonly", "core") is False
