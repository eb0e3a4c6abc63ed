"""Lab hosts boot systemd and reach each other by name."""

import os

import testinfra

PEERS = {"alpha": "beta", "beta": "alpha"}


def test_systemd_is_running(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    failed = host.run("systemctl --failed --no-legend --plain").stdout.strip()
    assert state in ("running", "degraded"), f"systemd state is {state!r}"
    assert state == "running" or failed, "degraded without a failed unit to explain it"
    assert host.run("ps -o comm= -p 1").stdout.strip() == "systemd"


def test_hostname_matches_inventory(host):
    name = host.backend.get_hostname()
    assert host.run("hostname").stdout.strip() == name


def test_peer_resolves_to_its_lab_address(host):
    peer = PEERS[host.backend.get_hostname()]
    entry = host.run(f"getent hosts {peer}")
    assert entry.rc == 0, f"{peer} does not resolve: {entry.stderr}"
    assert entry.stdout.split()[0].startswith("10.77.10.")


def test_peer_answers_over_the_network(host):
    peer = PEERS[host.backend.get_hostname()]
    assert host.run(f"ping -c 1 -W 2 {peer}").rc == 0, f"{peer} does not answer ping"
    ssh_banner = host.run(
        "python3 -c \"import socket; s=socket.create_connection(('%s', 22), 3); print(s.recv(64).decode())\"" % peer
    )
    assert ssh_banner.stdout.startswith("SSH-2.0-"), f"no SSH banner from {peer}: {ssh_banner.stderr}"


def test_ssh_host_key_differs_from_peer(host):
    """Each host generates its own host key instead of sharing the base root's."""
    peer = PEERS[host.backend.get_hostname()]
    own = host.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1]
    scan = host.run(f"ssh-keyscan -t ed25519 {peer}")
    assert scan.rc == 0, f"ssh-keyscan {peer} failed: {scan.stderr}"
    peer_key = scan.stdout.split()[2]
    assert own != peer_key, f"{peer} has the same SSH host key"


def test_machine_id_is_set(host):
    machine_id = host.file("/etc/machine-id").content_string.strip()
    assert len(machine_id) == 32, f"machine-id is {machine_id!r}"


def test_apt_uses_only_the_local_repository(host):
    sources = host.file("/etc/apt/sources.list").content_string
    assert sources.strip() == "deb [trusted=yes] file:/srv/bmms-lab/apt ./"
    assert host.file("/srv/bmms-lab/apt/Packages.gz").exists


def test_host_has_a_cgroup_of_its_own(host):
    """Hosts started from one shared cgroup would create their units' cgroups
    in one folder and race each other (seen as status=219/CGROUP at boot).
    Inside a host the cgroup namespace hides the path, so read it from the
    controller."""
    name = host.backend.get_hostname()
    controller = testinfra.get_host("local://")
    folder = f"/var/lib/bmms-lab/mlab/hosts/{name}"
    nspawn = controller.file(f"{folder}/nspawn.pid").content_string.strip()
    init = controller.run(f"ps --ppid {nspawn} -o pid=").stdout.split()
    assert init, f"no host init process under nspawn pid {nspawn}"
    cgroups = controller.file(f"/proc/{init[0]}/cgroup").content_string
    assert f":/bmms-lab/bmms-mlab-{name}/" in cgroups, f"PID 1 of {name} runs in {cgroups!r}"
