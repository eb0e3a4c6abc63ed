"""The local endpoint on the application host reaches the current masters."""

import json

import pytest

from conftest import APP_HOST, PORTS, call, current_master, lab_host


@pytest.mark.parametrize("instance", PORTS)
def test_endpoint_writes_reach_master(app_client, instance):
    key = f"bmms:test:endpoint:{instance}"
    result = app_client(f"once {PORTS[instance]} SET {key} through-endpoint")
    assert json.loads(result.stdout) == {"ok": True, "reply": "OK"}, result.stdout + result.stderr
    assert call(current_master(instance), PORTS[instance], "GET", key) == "through-endpoint"


@pytest.mark.parametrize("instance", PORTS)
def test_endpoint_refuses_dangerous_command(app_client, instance):
    """The endpoint forwards as the application user, so its ACL still applies."""
    result = app_client(f"once {PORTS[instance]} FLUSHALL")
    reply = json.loads(result.stdout)
    assert reply["ok"] is False
    assert reply["error"].startswith("NOPERM"), reply


def test_endpoint_listens_only_on_loopback():
    listeners = lab_host(APP_HOST).run("ss -Hltn").stdout.split("\n")
    addresses = {line.split()[3] for line in listeners if line.strip()}
    for port in PORTS.values():
        bound = {address for address in addresses if address.endswith(f":{port}")}
        assert bound == {f"127.0.0.1:{port}"}, addresses


def test_endpoint_config_readable_only_by_haproxy():
    """haproxy.cfg contains the check user's password."""
    config = lab_host(APP_HOST).file("/etc/haproxy/haproxy.cfg")
    assert (config.user, config.group, config.mode) == ("root", "haproxy", 0o640)
