"""Replication and Sentinel in the steady state after the converge."""

import ipaddress

import pytest

from conftest import (
    MASTER_NAMES,
    PORTS,
    REDIS_HOSTS,
    SECRETS,
    SENTINEL_HOSTS,
    SENTINEL_PORT,
    RedisReplyError,
    address_of,
    call,
    connect,
    current_master,
    info,
    lab_host,
    pairs_to_dict,
    sentinel_call,
    sentinel_master,
)

LAB_SUBNET = ipaddress.ip_network("10.77.12.0/24")
SENTINEL_VIEWS = [(name, instance) for name in SENTINEL_HOSTS for instance in PORTS]
SENTINEL_VIEW_IDS = [f"{name}-{instance}" for name, instance in SENTINEL_VIEWS]


@pytest.mark.parametrize("instance", PORTS)
def test_instance_has_one_master(instance):
    roles = {name: info(address_of(name), PORTS[instance], "replication")["role"] for name in REDIS_HOSTS}
    masters = [name for name, role in roles.items() if role == "master"]
    assert len(masters) == 1, roles
    assert address_of(masters[0]) == current_master(instance), "Sentinel names another master than the nodes"


@pytest.mark.parametrize("instance", PORTS)
def test_replicas_link_up(instance):
    master = current_master(instance)
    for name in REDIS_HOSTS:
        if address_of(name) == master:
            continue
        replication = info(address_of(name), PORTS[instance], "replication")
        assert replication["master_host"] == master, f"{name} follows {replication['master_host']}"
        assert replication["master_link_status"] == "up", f"{name}: {replication}"


@pytest.mark.parametrize(("name", "instance"), SENTINEL_VIEWS, ids=SENTINEL_VIEW_IDS)
def test_sentinel_sees_two_sentinels(name, instance):
    sentinels = sentinel_call(address_of(name), "SENTINELS", MASTER_NAMES[instance])
    assert len(sentinels) == 2, sentinels


@pytest.mark.parametrize(("name", "instance"), SENTINEL_VIEWS, ids=SENTINEL_VIEW_IDS)
def test_sentinel_sees_two_live_replicas(name, instance):
    replicas = [pairs_to_dict(entry) for entry in sentinel_call(address_of(name), "REPLICAS", MASTER_NAMES[instance])]
    assert len(replicas) == 2, replicas
    for replica in replicas:
        assert "s_down" not in replica["flags"], replica
        assert replica["master-link-status"] == "ok", replica


@pytest.mark.parametrize(("name", "instance"), SENTINEL_VIEWS, ids=SENTINEL_VIEW_IDS)
def test_sentinel_has_failover_settings(name, instance):
    master = sentinel_master(address_of(name), instance)
    settings = {key: master[key] for key in ("quorum", "down-after-milliseconds", "failover-timeout", "parallel-syncs")}
    assert settings == {"quorum": "2", "down-after-milliseconds": "5000", "failover-timeout": "180000", "parallel-syncs": "1"}


@pytest.mark.parametrize("name", SENTINEL_HOSTS)
def test_sentinel_announces_ip_addresses(name):
    """Sentinels gossip their bound IP address, never a hostname."""
    for instance in PORTS:
        for peer in sentinel_call(address_of(name), "SENTINELS", MASTER_NAMES[instance]):
            address = pairs_to_dict(peer)["ip"]
            assert ipaddress.ip_address(address) in LAB_SUBNET, address


def test_sentinels_have_distinct_myids():
    myids = {name: sentinel_call(address_of(name), "MYID") for name in SENTINEL_HOSTS}
    assert len(set(myids.values())) == len(SENTINEL_HOSTS), myids


@pytest.mark.parametrize("name", SENTINEL_HOSTS)
def test_sentinel_myid_matches_its_file(name):
    """Sentinel keeps its own myid in the file Ansible wrote once."""
    myid = sentinel_call(address_of(name), "MYID")
    config = lab_host(name).file("/etc/redis/sentinel-bmms.conf").content_string
    assert f"sentinel myid {myid}" in config


@pytest.mark.parametrize("name", SENTINEL_HOSTS)
def test_packaged_sentinel_never_started(name):
    """The packaged unit stays masked, and its file lacks the myid that a first start writes."""
    host = lab_host(name)
    assert host.run("systemctl is-enabled redis-sentinel.service").stdout.strip() == "masked"
    assert "sentinel myid" not in host.file("/etc/redis/sentinel.conf").content_string


def test_sentinel_requires_password():
    with connect(address_of(SENTINEL_HOSTS[0]), SENTINEL_PORT, password="") as connection:
        with pytest.raises(RedisReplyError, match="NOAUTH"):
            connection.call("SENTINEL", "MASTERS")


def test_sentinel_rejects_app_password():
    with pytest.raises(RedisReplyError, match="WRONGPASS"):
        call(address_of(SENTINEL_HOSTS[0]), SENTINEL_PORT, "PING", password=SECRETS.app_password)
