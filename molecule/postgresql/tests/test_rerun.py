"""A rerun of the converge playbook repairs drift without a base backup or a restart.

Before the rerun, one replica is stopped and a line is removed from the
primary's pg_hba.conf. The rerun must start the replica from its existing
data directory and reload, not restart, the primary. It is limited to those
two hosts, as an operator repairing them would run it, which keeps the
scenario's run time down.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA_DIR, INVENTORY, PRIMARY, REPLICAS, address_of, lab_host, local_psql, wait_for

STOPPED = REPLICAS[-1]
MARKER = f"{DATA_DIR}/rerun-marker"
REMOVED_RULE = "::1/128"


def postmaster_start(host) -> str:
    return local_psql(host, "SELECT pg_postmaster_start_time()").stdout.strip()


def conf_load_time(host) -> str:
    return local_psql(host, "SELECT pg_conf_load_time()").stdout.strip()


@pytest.fixture(scope="module")
def rerun(converge_playbook):
    primary = lab_host(PRIMARY)
    stopped = lab_host(STOPPED)
    before = {"start": postmaster_start(primary), "loaded": conf_load_time(primary)}

    # A base backup would replace the data directory and lose this file.
    assert stopped.run(f"runuser -u postgres -- touch {MARKER}").rc == 0
    assert stopped.run("systemctl stop postgresql@15-main").rc == 0
    hba = "/etc/postgresql/15/main/pg_hba.conf"
    assert primary.run(f"sed -i '\\#{REMOVED_RULE}#d' {hba}").rc == 0

    playbook = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i", str(Path(INVENTORY).parent),
            "--limit", f"{PRIMARY},{STOPPED}",
            str(converge_playbook),
        ],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=600,
    )
    yield {"primary": primary, "stopped": stopped, "before": before, "playbook": playbook, "hba": hba}
    stopped.run(f"rm -f {MARKER}")


def test_rerun_succeeds(rerun):
    playbook = rerun["playbook"]
    assert playbook.returncode == 0, playbook.stdout[-3000:] + playbook.stderr[-2000:]


def test_stopped_replica_streams_again(rerun):
    def streaming():
        rows = local_psql(rerun["primary"], f"SELECT state FROM pg_stat_replication WHERE client_addr = '{address_of(STOPPED)}'")
        return rows.stdout.strip() == "streaming"

    assert wait_for(streaming, timeout=30), f"{STOPPED} does not stream after the rerun"


def test_stopped_replica_kept_its_data_directory(rerun):
    assert rerun["stopped"].file(MARKER).exists, f"{STOPPED} was rebuilt with a new base backup"


def test_hba_repair_reloads_without_restart(rerun):
    primary = rerun["primary"]
    assert REMOVED_RULE in primary.file(rerun["hba"]).content_string
    assert conf_load_time(primary) != rerun["before"]["loaded"], "the primary did not reload"
    assert postmaster_start(primary) == rerun["before"]["start"], "the primary restarted for a pg_hba change"
