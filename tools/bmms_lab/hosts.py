"""Boot and remove lab hosts: bridge, namespaces, overlay roots, nspawn.

Everything a lab creates carries its name: the bridge `bm-<lab>`, namespaces
and machines `bmms-<lab>-<host>`, veth ends `bm<lab>-<index>` and the state
folder STATE_ROOT/<lab>. Removal looks only for those names and for processes
whose root is one of the lab's overlay mounts, so it never touches anything
else and can run again after a crash.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bmms_lab.base import REPOSITORY_MOUNT, WHEELHOUSE_MOUNT
from bmms_lab.spec import LAB_USER, SSH_KEY, STATE_ROOT, LabHost, LabSpec, check_address_clash
from bmms_lab.system import LabError, is_mounted, log, run, step, write_file

SSH_OPTIONS = (
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=3",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
)
BOOT_TIMEOUT = 180.0
STOP_TIMEOUT = 30.0


def ensure_ssh_key() -> Path:
    """Create the controller's lab SSH key once; every lab shares it.

    Labs that boot at the same time serialize on a lock file, so only one of
    them runs ssh-keygen and the others find its key.
    """
    SSH_KEY.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(SSH_KEY.parent, 0o700)
    with open(SSH_KEY.parent / ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not SSH_KEY.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bmms-lab", "-f", str(SSH_KEY)])
    return SSH_KEY


# Network -------------------------------------------------------------------


def _link_exists(name: str, netns: str | None = None) -> bool:
    command = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", "dev", name]
    return run(command, check=False).returncode == 0


def _namespaces() -> set[str]:
    output = run(["ip", "-j", "netns", "list"], check=False).stdout.strip()
    if not output:
        return set()
    return {entry["name"] for entry in json.loads(output)}


def ensure_bridge(spec: LabSpec) -> None:
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    check_address_clash(spec, routes)
    if not _link_exists(spec.bridge):
        run(["ip", "link", "add", spec.bridge, "type", "bridge"])
    addresses = json.loads(run(["ip", "-j", "-4", "addr", "show", "dev", spec.bridge]).stdout or "[]")
    expected = str(spec.bridge_address)
    present = {info["local"] for entry in addresses for info in entry.get("addr_info", [])}
    if expected not in present:
        run(["ip", "addr", "add", f"{expected}/{spec.subnet.prefixlen}", "dev", spec.bridge])
    run(["ip", "link", "set", spec.bridge, "up"])
    # Hosts get a default route to the bridge so their facts name an address,
    # but nothing that arrives on the bridge is forwarded beyond this machine.
    Path(f"/proc/sys/net/ipv4/conf/{spec.bridge}/forwarding").write_text("0\n", encoding="utf-8")


def ensure_host_network(spec: LabSpec, host: LabHost) -> None:
    if host.netns not in _namespaces():
        run(["ip", "netns", "add", host.netns])
    if not _link_exists(host.veth):
        run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
    run(["ip", "link", "set", host.veth, "master", spec.bridge, "up"])
    inside = ["ip", "-n", host.netns]
    run([*inside, "link", "set", "lo", "up"])
    addresses = run([*inside, "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
    if f" {host.address}/" not in addresses:
        run([*inside, "addr", "add", f"{host.address}/{spec.subnet.prefixlen}", "dev", "eth0"])
    run([*inside, "link", "set", "eth0", "up"])
    run([*inside, "route", "replace", "default", "via", str(spec.bridge_address)])


# Roots ---------------------------------------------------------------------


def _merged(host: LabHost) -> Path:
    return host.directory / "root"


def ensure_overlay(host: LabHost, base: Path) -> Path:
    merged = _merged(host)
    if is_mounted(merged):
        return merged
    for name in ("upper", "work", "root"):
        (host.directory / name).mkdir(parents=True, exist_ok=True)
    run(
        [
            "mount", "-t", "overlay", f"bmms-lab-{host.lab}", "-o",
            f"lowerdir={base},upperdir={host.directory / 'upper'},workdir={host.directory / 'work'}",
            str(merged),
        ]
    )
    return merged


def _lab_user_ids(root: Path) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if fields[0] == LAB_USER:
            return int(fields[2]), int(fields[3])
    raise LabError(f"user {LAB_USER} is missing from the base root {root}: remove it so the lab rebuilds it")


def write_host_files(spec: LabSpec, host: LabHost, root: Path, public_key: str) -> None:
    """Write the files a host needs before it boots: its names and access."""
    write_file(root / "etc/hostname", f"{host.name}\n")
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{other.address}\t{other.name}" for other in spec.hosts]
    write_file(root / "etc/hosts", "\n".join(lines) + "\n")
    machine_id = root / "etc/machine-id"
    if not machine_id.read_text(encoding="utf-8").strip():
        write_file(machine_id, uuid.uuid4().hex + "\n", mode=0o444)
    uid, gid = _lab_user_ids(root)
    ssh_directory = root / "home" / LAB_USER / ".ssh"
    ssh_directory.mkdir(mode=0o700, exist_ok=True)
    os.chown(ssh_directory, uid, gid)
    write_file(ssh_directory / "authorized_keys", public_key, mode=0o600, owner=(uid, gid))


# Machines ------------------------------------------------------------------


def _pid_file(host: LabHost) -> Path:
    return host.directory / "nspawn.pid"


def _read_pid(host: LabHost) -> int | None:
    try:
        return int(_pid_file(host).read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return raw.decode(errors="replace").split("\0")


def is_lab_nspawn(pid: int, machine: str) -> bool:
    """Tell whether `pid` is the systemd-nspawn of `machine`, not a reused pid."""
    arguments = _cmdline(pid)
    return bool(arguments) and arguments[0].endswith("systemd-nspawn") and f"--machine={machine}" in arguments


def nspawn_pid(host: LabHost) -> int | None:
    """Return the pid of the host's systemd-nspawn, if that process still runs."""
    pid = _read_pid(host)
    if pid is not None and is_lab_nspawn(pid, host.machine):
        return pid
    return None


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def container_pid_namespace(nspawn: int) -> str | None:
    """Return the PID namespace of the host that `nspawn` booted, once it exists."""
    own = os.readlink("/proc/self/ns/pid")
    for child in _children(nspawn):
        try:
            namespace = os.readlink(f"/proc/{child}/ns/pid")
        except OSError:
            continue
        if namespace != own:
            return namespace
    return None


def processes_in_namespace(namespace: str) -> list[int]:
    """List the processes of one PID namespace: all processes of one host."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns/pid") == namespace:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _record_namespace(host: LabHost) -> None:
    pid = nspawn_pid(host)
    namespace_file = host.directory / "pid-namespace"
    if pid is None or namespace_file.exists():
        return
    namespace = container_pid_namespace(pid)
    if namespace is not None:
        namespace_file.write_text(namespace + "\n", encoding="utf-8")


def cgroup_folders(machine: str) -> list[Path]:
    """Return the host's own cgroup folders, one per hierarchy that tracks processes.

    systemd-nspawn without a systemd on the controller puts the booted host
    under the caller's cgroup. Hosts started from one cgroup would then share
    their unit cgroups (two hosts' redis-server.service in one folder), so
    each host starts from a cgroup of its own.
    """
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        hierarchies = [root]
    else:
        hierarchies = [root / name for name in ("systemd", "unified") if (root / name / "cgroup.procs").exists()]
    return [hierarchy / "bmms-lab" / machine for hierarchy in hierarchies]


def processes_in_cgroups(machine: str) -> list[int]:
    pids: set[int] = set()
    for folder in cgroup_folders(machine):
        if not folder.exists():
            continue
        for procs in folder.rglob("cgroup.procs"):
            try:
                pids.update(int(line) for line in procs.read_text().split())
            except OSError:
                continue
    return sorted(pids)


def remove_cgroups(machine: str) -> None:
    for folder in cgroup_folders(machine):
        if not folder.exists():
            continue
        nested = sorted((path for path in folder.rglob("*") if path.is_dir()), key=lambda path: len(path.parts))
        for path in [*reversed(nested), folder]:
            try:
                path.rmdir()
            except OSError as error:
                log(f"cannot remove cgroup {path}: {error}")
        try:
            folder.parent.rmdir()  # the shared bmms-lab folder, once no lab uses it
        except OSError:
            pass


def start_machine(host: LabHost, root: Path, repository: Path, wheelhouse: Path) -> None:
    command = [
        "systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
        f"--machine={host.machine}", f"--hostname={host.name}",
        f"--directory={root}",
        f"--network-namespace-path=/run/netns/{host.netns}",
        f"--bind-ro={repository}:{REPOSITORY_MOUNT}",
        f"--bind-ro={wheelhouse}:{WHEELHOUSE_MOUNT}",
        "--resolv-conf=off", "--timezone=off", "--link-journal=no",
    ]
    folders = cgroup_folders(host.machine)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)

    def enter_own_cgroup() -> None:
        for folder in folders:
            (folder / "cgroup.procs").write_text(f"{os.getpid()}\n")

    console = open(host.directory / "console.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=console,
            start_new_session=True,
            preexec_fn=enter_own_cgroup,  # noqa: PLW1509 - the lab starts no threads before this
        )
    finally:
        console.close()
    _pid_file(host).write_text(f"{process.pid}\n", encoding="utf-8")


def wait_for_ssh(host: LabHost, deadline: float) -> None:
    """Wait until the host accepts an SSH login as the lab user."""
    while True:
        _record_namespace(host)
        if nspawn_pid(host) is None:
            console = host.directory / "console.log"
            tail = "\n".join(console.read_text(errors="replace").splitlines()[-15:]) if console.exists() else ""
            raise LabError(f"host {host.name} stopped while booting; last console lines:\n{tail}")
        if _port_open(str(host.address), 22):
            result = run(
                ["ssh", *SSH_OPTIONS, "-i", str(SSH_KEY), f"{LAB_USER}@{host.address}", "true"],
                check=False,
                timeout=20,
            )
            if result.returncode == 0:
                return
        if time.monotonic() > deadline:
            raise LabError(
                f"host {host.name} ({host.address}) did not accept SSH within {BOOT_TIMEOUT:.0f}s; "
                f"see {host.directory / 'console.log'}"
            )
        time.sleep(0.5)


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def stop_machine(host_directory: Path, machine: str) -> None:
    """Stop one host: a clean poweroff first, then SIGKILL to what remains.

    The host's processes are found by the PID namespace recorded at boot, so
    a host whose nspawn was killed (and whose processes now have another
    parent) is still stopped, and no other process is touched.
    """
    pid_file = host_directory / "nspawn.pid"
    namespace_file = host_directory / "pid-namespace"
    pid = None
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        pass
    namespace = None
    if namespace_file.exists():
        namespace = namespace_file.read_text(encoding="utf-8").strip()
    if pid and is_lab_nspawn(pid, machine):
        namespace = namespace or container_pid_namespace(pid)
        # systemd-nspawn turns SIGTERM into a clean poweroff of the booted host.
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while is_lab_nspawn(pid, machine) and time.monotonic() < deadline:
            time.sleep(0.2)
        if is_lab_nspawn(pid, machine):
            log(f"{machine} did not power off within {STOP_TIMEOUT:.0f}s; killing it")
            os.kill(pid, signal.SIGKILL)
    if namespace and namespace != os.readlink("/proc/self/ns/pid"):
        deadline = time.monotonic() + 10
        while (leftovers := processes_in_namespace(namespace)) and time.monotonic() < deadline:
            for leftover in leftovers:
                try:
                    os.kill(leftover, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        if processes_in_namespace(namespace):
            raise LabError(f"processes of {machine} survived SIGKILL: {processes_in_namespace(namespace)}")
    deadline = time.monotonic() + 10
    while (leftovers := processes_in_cgroups(machine)) and time.monotonic() < deadline:
        for leftover in leftovers:
            try:
                os.kill(leftover, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    remove_cgroups(machine)
    pid_file.unlink(missing_ok=True)
    namespace_file.unlink(missing_ok=True)


# Lab -----------------------------------------------------------------------


def _state_file(spec_name: str) -> Path:
    return STATE_ROOT / spec_name / "state.json"


def _write_state(spec: LabSpec, caches: tuple[Path, ...]) -> None:
    state: dict[str, Any] = {
        "name": spec.name,
        # Cache pruning keeps what a lab's hosts still bind-mount.
        "caches": [str(path) for path in caches],
        "subnet": str(spec.subnet),
        "bridge": spec.bridge,
        "hosts": [
            {"name": h.name, "address": str(h.address), "netns": h.netns, "veth": h.veth, "machine": h.machine}
            for h in spec.hosts
        ],
    }
    write_file(_state_file(spec.name), json.dumps(state, indent=2) + "\n")


def up(spec: LabSpec, base: Path, repository: Path, wheelhouse: Path) -> None:
    """Bring every host of the lab up; hosts that already run are left alone."""
    key = ensure_ssh_key()
    public_key = key.with_suffix(".pub").read_text(encoding="utf-8")
    previous = _read_state(spec.name)
    wanted = {host.name for host in spec.hosts}
    for old in previous.get("hosts", []):
        if old["name"] not in wanted:
            log(f"removing host {old['name']}, which the inventory no longer lists")
            _remove_host(spec.name, old)
    _write_state(spec, (base, repository, wheelhouse))
    ensure_bridge(spec)

    started = []
    for host in spec.hosts:
        ensure_host_network(spec, host)
        if nspawn_pid(host) is not None:
            log(f"host {host.name} ({host.address}) already runs")
            continue
        # A host that died leaves processes behind; clear them before a new boot.
        stop_machine(host.directory, host.machine)
        root = ensure_overlay(host, base)
        write_host_files(spec, host, root, public_key)
        start_machine(host, root, repository, wheelhouse)
        started.append(host)

    if started:
        with step(f"boot {len(started)} host(s) and wait for SSH"):
            deadline = time.monotonic() + BOOT_TIMEOUT
            with ThreadPoolExecutor(max_workers=len(started)) as pool:
                for future in [pool.submit(wait_for_ssh, host, deadline) for host in started]:
                    future.result()
    for host in spec.hosts:
        log(f"host {host.name} is up at {host.address}")


def _read_state(lab: str) -> dict[str, Any]:
    try:
        return json.loads(_state_file(lab).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def _remove_host(lab: str, host: dict[str, str]) -> None:
    directory = STATE_ROOT / lab / "hosts" / host["name"]
    stop_machine(directory, host["machine"])
    root = directory / "root"
    if is_mounted(root):
        if run(["umount", str(root)], check=False).returncode != 0:
            run(["umount", "--lazy", str(root)])
    if host.get("veth") and _link_exists(host["veth"]):
        run(["ip", "link", "del", host["veth"]], check=False)
    if host["netns"] in _namespaces():
        run(["ip", "netns", "del", host["netns"]])
    if directory.exists():
        run(["rm", "-rf", "--one-file-system", str(directory)])


def down(lab: str) -> None:
    """Remove everything the named lab created; safe to run again."""
    state = _read_state(lab)
    hosts = {entry["name"]: entry for entry in state.get("hosts", [])}
    # Hosts of a crashed run may be missing from the state file: find them
    # by the lab's own names as well.
    prefix = f"bmms-{lab}-"
    for netns in _namespaces():
        if netns.startswith(prefix):
            name = netns[len(prefix):]
            hosts.setdefault(name, {"name": name, "netns": netns, "machine": netns})
    host_folder = STATE_ROOT / lab / "hosts"
    if host_folder.exists():
        for directory in host_folder.iterdir():
            hosts.setdefault(
                directory.name,
                {"name": directory.name, "netns": prefix + directory.name, "machine": prefix + directory.name},
            )
    with step(f"remove lab {lab} ({len(hosts)} host(s))"):
        for host in hosts.values():
            _remove_host(lab, host)
        bridge = f"bm-{lab}"
        if _link_exists(bridge):
            run(["ip", "link", "del", bridge])
        lab_folder = STATE_ROOT / lab
        if lab_folder.exists():
            run(["rm", "-rf", "--one-file-system", str(lab_folder)])


def status(lab: str) -> list[tuple[str, str, str]]:
    """List each host of the lab with its address and whether it runs."""
    rows = []
    for entry in _read_state(lab).get("hosts", []):
        directory = STATE_ROOT / lab / "hosts" / entry["name"]
        pid = None
        try:
            pid = int((directory / "nspawn.pid").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            pass
        alive = bool(pid and is_lab_nspawn(pid, entry["machine"]))
        rows.append((entry["name"], entry["address"], "running" if alive else "stopped"))
    return rows
