"""The cache evicts keys under memory pressure, but queued Celery tasks stay.

The scenario gives the cache 64 MB and the broker 32 MB. The tests queue
tasks on the broker, write twice the cache's maxmemory into the cache as
the application user, then fill the broker itself until it refuses writes.
"""

import pytest

from conftest import (
    PORTS,
    SECRETS,
    RedisReplyError,
    call,
    config_get,
    connect,
    current_master,
    info,
    pipeline,
)

QUEUE_KEY = "bmms:test:memory:queue"
TASKS = [f"task-{number}" for number in range(500)]
VALUE = "x" * 64 * 1024
BATCH = 64


def app_connection(address: str, instance: str):
    return connect(address, PORTS[instance], user=SECRETS.app_user, password=SECRETS.app_password)


@pytest.fixture(scope="module")
def queued_tasks():
    """Queue the tasks on the broker master, and remove them afterwards."""
    master = current_master("broker")
    with app_connection(master, "broker") as connection:
        connection.call("DEL", QUEUE_KEY)
        connection.call("LPUSH", QUEUE_KEY, *TASKS)
    yield master
    call(current_master("broker"), PORTS["broker"], "DEL", QUEUE_KEY)


@pytest.fixture(scope="module")
def filled_cache(queued_tasks):
    """Write twice the cache's maxmemory while the tasks wait, and return the eviction figures."""
    master = current_master("cache")
    maxmemory = int(config_get(master, PORTS["cache"], "maxmemory"))
    evicted_before = int(info(master, PORTS["cache"], "stats")["evicted_keys"])
    written_keys = 0
    with app_connection(master, "cache") as connection:
        while written_keys * len(VALUE) < 2 * maxmemory:
            pipeline(connection, [("SET", f"bmms:test:fill:{written_keys + offset}", VALUE) for offset in range(BATCH)])
            written_keys += BATCH
    yield {
        "master": master,
        "maxmemory": maxmemory,
        "written_keys": written_keys,
        "evicted": int(info(master, PORTS["cache"], "stats")["evicted_keys"]) - evicted_before,
        "keys_left": call(master, PORTS["cache"], "DBSIZE"),
    }
    call(current_master("cache"), PORTS["cache"], "FLUSHALL")


def test_cache_evicts_past_maxmemory(filled_cache):
    assert filled_cache["evicted"] > 0
    assert filled_cache["keys_left"] < filled_cache["written_keys"]


def test_broker_keeps_tasks_while_cache_evicts(filled_cache, queued_tasks):
    assert call(queued_tasks, PORTS["broker"], "LRANGE", QUEUE_KEY, "0", "-1") == list(reversed(TASKS))


def test_broker_evicts_nothing_while_cache_evicts(filled_cache, queued_tasks):
    assert info(queued_tasks, PORTS["broker"], "stats")["evicted_keys"] == "0"


@pytest.fixture(scope="module")
def full_broker(queued_tasks):
    """Push filler onto the broker until it rejects a write, and return the error message."""
    rejection = None
    filler_lists = 0
    with app_connection(queued_tasks, "broker") as connection:
        try:
            while filler_lists < 10_000:
                pipeline(connection, [("RPUSH", f"bmms:test:filler:{filler_lists + offset}", VALUE) for offset in range(BATCH)])
                filler_lists += BATCH
        except RedisReplyError as error:
            rejection = str(error)
    yield rejection
    with connect(current_master("broker"), PORTS["broker"]) as connection:
        pipeline(connection, [("DEL", f"bmms:test:filler:{number}") for number in range(filler_lists + BATCH)])


def test_full_broker_rejects_writes(full_broker):
    assert full_broker is not None, "the broker accepted more than 10000 x 64 KB"
    assert full_broker.startswith("OOM"), full_broker


def test_full_broker_keeps_tasks(full_broker, queued_tasks):
    assert call(queued_tasks, PORTS["broker"], "LLEN", QUEUE_KEY) == len(TASKS)
    assert info(queued_tasks, PORTS["broker"], "stats")["evicted_keys"] == "0"
