"""Each Redis instance runs with the role's settings, passwords and ACL users."""

import pytest

from conftest import (
    PORTS,
    REDIS_HOSTS,
    SECRETS,
    RedisReplyError,
    address_of,
    app_call,
    call,
    config_get,
    connect,
    current_master,
    lab_host,
)

NODES = [(name, instance) for name in REDIS_HOSTS for instance in PORTS]
NODE_IDS = [f"{name}-{instance}" for name, instance in NODES]

# Values the scenario sets (molecule.yml) or the role fixes, as CONFIG GET
# prints them.
COMMON_SETTINGS = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "save": "3600 1 300 100 60 10000",
    "slowlog-log-slower-than": "10000",
    "latency-monitor-threshold": "100",
    "lazyfree-lazy-eviction": "yes",
    "lazyfree-lazy-expire": "yes",
    "lazyfree-lazy-server-del": "yes",
    "protected-mode": "yes",
    "min-replicas-to-write": "1",
}
INSTANCE_SETTINGS = {
    "cache": {"maxmemory": str(64 * 1024 * 1024), "maxmemory-policy": "allkeys-lru"},
    "broker": {"maxmemory": str(32 * 1024 * 1024), "maxmemory-policy": "noeviction"},
}
DANGEROUS_COMMANDS = [
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("KEYS", "*"),
    ("CONFIG", "GET", "maxmemory"),
    ("SHUTDOWN", "ABORT"),
]
# Redis refuses DEBUG and MODULE to everyone unless enabled in the
# configuration, so ACL DRYRUN shows that the ACL denies them as well.
DRYRUN_COMMANDS = DANGEROUS_COMMANDS + [
    ("DEBUG", "SLEEP", "0"),
    ("MONITOR",),
    ("REPLICAOF", "NO", "ONE"),
    ("ACL", "LIST"),
    ("MODULE", "LIST"),
    ("BGSAVE",),
]


@pytest.mark.parametrize(("name", "instance"), NODES, ids=NODE_IDS)
def test_instance_has_role_settings(name, instance):
    address = address_of(name)
    wanted = COMMON_SETTINGS | INSTANCE_SETTINGS[instance]
    actual = {setting: config_get(address, PORTS[instance], setting) for setting in wanted}
    assert actual == wanted


@pytest.mark.parametrize(("name", "instance"), NODES, ids=NODE_IDS)
def test_instance_binds_only_host_address(name, instance):
    assert config_get(address_of(name), PORTS[instance], "bind") == address_of(name)


def test_activedefrag_follows_build_support():
    """Debian 12 builds Redis against the system jemalloc, which lacks active defragmentation."""
    name = REDIS_HOSTS[0]
    probe = lab_host(name).run(
        "/usr/local/libexec/bmms/redis-check-config /usr/local/libexec/bmms/redis-activedefrag-probe.conf"
    )
    expected = "yes" if probe.rc == 0 else "no"
    assert config_get(address_of(name), PORTS["cache"], "activedefrag") == expected


@pytest.mark.parametrize("instance", PORTS)
def test_client_without_password_rejected(instance):
    with connect(address_of(REDIS_HOSTS[0]), PORTS[instance], password="") as connection:
        with pytest.raises(RedisReplyError, match="NOAUTH"):
            connection.call("PING")


@pytest.mark.parametrize("instance", PORTS)
def test_wrong_password_rejected(instance):
    with pytest.raises(RedisReplyError, match="WRONGPASS"):
        connect(address_of(REDIS_HOSTS[0]), PORTS[instance], password="not-the-password")


@pytest.mark.parametrize("command", DANGEROUS_COMMANDS, ids=[" ".join(command) for command in DANGEROUS_COMMANDS])
@pytest.mark.parametrize("instance", PORTS)
def test_app_user_denied_dangerous_command(instance, command):
    with pytest.raises(RedisReplyError, match="NOPERM"):
        app_call(current_master(instance), PORTS[instance], *command)


@pytest.mark.parametrize("command", DRYRUN_COMMANDS, ids=[" ".join(command) for command in DRYRUN_COMMANDS])
def test_acl_denies_app_user(command):
    reply = call(current_master("cache"), PORTS["cache"], "ACL", "DRYRUN", SECRETS.app_user, *command)
    assert reply.startswith("This user has no permissions"), reply


def test_app_user_reads_and_writes_cache():
    master = current_master("cache")
    assert app_call(master, PORTS["cache"], "SET", "bmms:test:acl", "value", "EX", "60") == "OK"
    assert app_call(master, PORTS["cache"], "GET", "bmms:test:acl") == "value"


def test_app_user_queues_and_takes_tasks():
    master = current_master("broker")
    app_call(master, PORTS["broker"], "DEL", "bmms:test:acl-queue")
    assert app_call(master, PORTS["broker"], "LPUSH", "bmms:test:acl-queue", "task") == 1
    assert app_call(master, PORTS["broker"], "BRPOP", "bmms:test:acl-queue", "1") == ["bmms:test:acl-queue", "task"]


@pytest.mark.parametrize("instance", PORTS)
def test_monitoring_user_reads_info(instance):
    reply = call(current_master(instance), PORTS[instance], "INFO", "replication",
                 user=SECRETS.monitoring_user, password=SECRETS.monitoring_password)
    assert "role:master" in reply


@pytest.mark.parametrize("instance", PORTS)
def test_monitoring_user_denied_keys(instance):
    with pytest.raises(RedisReplyError, match="NOPERM"):
        call(current_master(instance), PORTS[instance], "GET", "bmms:test:acl",
             user=SECRETS.monitoring_user, password=SECRETS.monitoring_password)


def test_replica_rejects_writes():
    master = current_master("cache")
    replica = next(address_of(name) for name in REDIS_HOSTS if address_of(name) != master)
    with pytest.raises(RedisReplyError, match="READONLY"):
        app_call(replica, PORTS["cache"], "SET", "bmms:test:replica", "value")
