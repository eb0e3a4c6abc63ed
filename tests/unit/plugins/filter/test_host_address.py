"""The host_address filter and its ansible-doc file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.filter.addresses import FilterModule, host_address

REPOSITORY = Path(__file__).resolve().parents[4]


def test_ip_ansible_host_wins_over_facts():
    host = {"inventory_hostname": "r1", "ansible_host": "10.0.0.11", "ansible_default_ipv4": {"address": "10.9.9.9"}}
    assert host_address(host) == "10.0.0.11"


def test_ipv6_ansible_host_accepted():
    assert host_address({"ansible_host": "fd00::11"}) == "fd00::11"


def test_facts_used_when_ansible_host_is_a_name():
    host = {"inventory_hostname": "r1", "ansible_host": "r1.example", "ansible_default_ipv4": {"address": "10.0.0.11"}}
    assert host_address(host) == "10.0.0.11"


def test_override_wins():
    host = {"ansible_host": "10.0.0.11", "redis_bind_address": "10.1.0.11"}
    assert host_address(host, "redis_bind_address") == "10.1.0.11"


def test_override_must_be_ip():
    with pytest.raises(AnsibleFilterError, match="redis_bind_address of host r1 must be an IP address"):
        host_address({"inventory_hostname": "r1", "redis_bind_address": "r1.example"}, "redis_bind_address")


def test_missing_address_names_host_and_fix():
    with pytest.raises(AnsibleFilterError, match="IP address of host r1 not found.*Set ansible_host"):
        host_address({"inventory_hostname": "r1", "ansible_host": "r1.example"})


def test_non_mapping_rejected():
    with pytest.raises(AnsibleFilterError, match="expects a host's variables"):
        host_address("10.0.0.11")


def test_doc_file_matches_filter():
    doc = yaml.safe_load((REPOSITORY / "plugins" / "filter" / "host_address.yml").read_text())
    assert set(doc) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    assert doc["DOCUMENTATION"]["name"] == "host_address"
    assert set(doc["DOCUMENTATION"]["options"]) == {"_input", "override"}
    assert set(FilterModule().filters()) == {"host_address"}


def test_ansible_doc_shows_filter():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "-t", "filter", "--json", "bmms.platform.host_address"],
        cwd=REPOSITORY, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bmms.platform.host_address"]["doc"]["name"] == "host_address"
