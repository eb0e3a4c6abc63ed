"""Lab specification: inventory parsing, naming and input validation."""

import ipaddress

import pytest

from bmms_lab.spec import LabSpec, check_address_clash, check_lab_name, spec_from_inventory_data
from bmms_lab.system import LabError


def inventory(hosts, name="main", subnet="10.77.1.0/24"):
    """Build the JSON shape that `ansible-inventory --list` prints."""
    all_vars = {}
    if name is not None:
        all_vars["bmms_lab_name"] = name
    if subnet is not None:
        all_vars["bmms_lab_subnet"] = subnet
    return {
        "_meta": {"hostvars": {host: ({"ansible_host": address} if address else {}) for host, address in hosts.items()}},
        "all": {"children": ["ungrouped"], "vars": all_vars},
        "ungrouped": {"hosts": list(hosts)},
    }


def test_spec_reads_hosts_in_name_order():
    spec = spec_from_inventory_data(inventory({"db2": "10.77.1.12", "db1": "10.77.1.11"}))
    assert [host.name for host in spec.hosts] == ["db1", "db2"]
    assert [str(host.address) for host in spec.hosts] == ["10.77.1.11", "10.77.1.12"]
    assert spec.bridge_address == ipaddress.IPv4Address("10.77.1.1")


def test_names_carry_the_lab_prefix():
    spec = spec_from_inventory_data(inventory({"db1": "10.77.1.11"}, name="ci2"))
    host = spec.hosts[0]
    assert spec.bridge == "bm-ci2"
    assert host.netns == "bmms-ci2-db1"
    assert host.machine == "bmms-ci2-db1"
    assert host.veth == "bmci2-1"
    assert str(spec.directory).endswith("/bmms-lab/ci2")


def test_interface_names_fit_the_kernel_limit():
    hosts = {f"h{i}": f"10.77.0.{i + 10}" for i in range(200)}
    spec = spec_from_inventory_data(inventory(hosts, name="abcdefgh", subnet="10.77.0.0/16"))
    assert max(len(host.veth) for host in spec.hosts) <= 15
    assert len(spec.bridge) <= 15


def test_host_level_lab_vars_accepted():
    data = inventory({"db1": "10.77.1.11"}, name=None, subnet=None)
    data["_meta"]["hostvars"]["db1"].update(bmms_lab_name="main", bmms_lab_subnet="10.77.1.0/24")
    assert spec_from_inventory_data(data).name == "main"


@pytest.mark.parametrize(
    "name",
    ["", "Main", "1lab", "lab-one", "toolongname", None, 7],
)
def test_invalid_lab_name_is_rejected(name):
    with pytest.raises(LabError, match="invalid lab name"):
        check_lab_name(name)


@pytest.mark.parametrize(
    ("hosts", "subnet", "message"),
    [
        ({}, "10.77.1.0/24", "no hosts"),
        ({"db1": None}, "10.77.1.0/24", "host db1 has no address"),
        ({"db1": "10.77.2.11"}, "10.77.1.0/24", "not a host address"),
        ({"db1": "10.77.1.255"}, "10.77.1.0/24", "not a host address"),
        ({"db1": "10.77.1.1"}, "10.77.1.0/24", "bridge's address"),
        ({"db1": "db1.example"}, "10.77.1.0/24", "invalid ansible_host"),
        ({"db1": "10.77.1.11", "db2": "10.77.1.11"}, "10.77.1.0/24", "both use address 10.77.1.11"),
        ({"DB_1": "10.77.1.11"}, "10.77.1.0/24", "invalid lab host name 'DB_1'"),
        ({"db1": "10.77.1.11"}, None, "bmms_lab_subnet is missing"),
        ({"db1": "10.77.1.11"}, "10.77.1.5/24", "invalid bmms_lab_subnet"),
        ({"db1": "10.77.1.11"}, "10.77.1.0/30", "prefix length"),
        ({"db1": "10.0.0.11"}, "10.0.0.0/8", "prefix length"),
        ({"db1": "8.8.4.11"}, "8.8.4.0/24", "not a private network"),
    ],
)
def test_bad_inventory_is_rejected(hosts, subnet, message):
    with pytest.raises(LabError, match=message):
        spec_from_inventory_data(inventory(hosts, subnet=subnet))


def make_spec():
    return spec_from_inventory_data(inventory({"db1": "10.77.1.11"}))


def test_subnet_overlapping_another_interface_is_rejected():
    routes = [{"dst": "10.77.0.0/16", "dev": "eth1", "protocol": "kernel"}]
    with pytest.raises(LabError, match="overlaps 10.77.0.0/16 on interface eth1"):
        check_address_clash(make_spec(), routes)


def test_own_routes_are_no_clash():
    spec = make_spec()
    routes = [
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
        {"dst": "10.77.1.0/24", "dev": spec.bridge},
        {"dst": "127.0.0.0/8", "dev": "lo", "type": "local"},
        {"dst": "192.0.2.0/24", "dev": "eth0"},
    ]
    check_address_clash(spec, routes)


def test_another_lab_bridge_is_a_clash():
    routes = [{"dst": "10.77.1.0/24", "dev": "bm-other"}]
    with pytest.raises(LabError, match="on interface bm-other"):
        check_address_clash(make_spec(), routes)


def test_spec_is_immutable():
    spec = make_spec()
    assert isinstance(spec, LabSpec)
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]


def test_load_spec_reads_a_yaml_inventory(tmp_path):
    from bmms_lab.spec import load_spec

    path = tmp_path / "hosts.yml"
    path.write_text(
        "all:\n  vars:\n    bmms_lab_name: t1\n    bmms_lab_subnet: 10.77.50.0/24\n"
        "  children:\n    web:\n      hosts:\n        web1:\n          ansible_host: 10.77.50.11\n",
        encoding="utf-8",
    )
    spec = load_spec(path)
    assert spec.name == "t1"
    assert [(host.name, str(host.address)) for host in spec.hosts] == [("web1", "10.77.50.11")]
