"""PostgreSQL server settings, pg_hba and roles, checked on the running servers."""

from conftest import PRIMARY, REPLICAS, address_of, lab_host, local_psql, psql


def test_shared_buffers_is_a_quarter_of_memory():
    for name in [PRIMARY, *REPLICAS]:
        host = lab_host(name)
        memtotal_kb = int(host.run("awk '/^MemTotal:/ {print $2}' /proc/meminfo").stdout)
        expected_mb = int(memtotal_kb // 1024 * 0.25)
        result = local_psql(host, "SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'")
        assert int(result.stdout) == expected_mb, f"{name}: shared_buffers {result.stdout.strip()} MB"


def test_capacity_settings_on_primary(primary):
    result = local_psql(
        primary,
        "SELECT current_setting('max_connections'), current_setting('work_mem'),"
        " current_setting('maintenance_work_mem'), current_setting('password_encryption'),"
        " current_setting('ssl'), current_setting('wal_level')",
    )
    assert result.stdout.strip() == "500|16MB|512MB|scram-sha-256|on|replica"


def test_roles_store_scram_verifiers(primary, secrets):
    users = [secrets.app_user, secrets.readonly_user, secrets.monitoring_user, "replicator"]
    listed = ", ".join(f"'{user}'" for user in users)
    result = local_psql(primary, f"SELECT rolname, left(rolpassword, 14) FROM pg_authid WHERE rolname IN ({listed})")
    verifiers = dict(line.split("|") for line in result.stdout.split())
    assert verifiers == {user: "SCRAM-SHA-256$" for user in users}


def test_server_listens_on_lab_address(primary):
    sockets = primary.run("ss -Hltn").stdout
    assert f"{address_of(PRIMARY)}:5432 " in sockets
    assert "0.0.0.0:5432 " not in sockets


def test_hba_rejects_host_outside_client_groups(client, secrets):
    # The replica is in no client group, so pg_hba has no line for it.
    result = psql(
        client,
        f"host={address_of(PRIMARY)} port=5432 dbname=bmms user={secrets.app_user} sslmode=require",
        "SELECT 1",
        password=secrets.app_password,
    )
    assert result.rc != 0
    assert "no pg_hba.conf entry" in result.stderr


def test_hba_rejects_connection_without_tls(primary, secrets):
    result = psql(
        primary,
        f"host={address_of(PRIMARY)} port=5432 dbname=bmms user={secrets.app_user} sslmode=disable",
        "SELECT 1",
        password=secrets.app_password,
    )
    assert result.rc != 0
    assert "no encryption" in result.stderr


def test_pooler_host_logs_in_directly_with_tls(primary, secrets):
    result = psql(
        primary,
        f"host={address_of(PRIMARY)} port=5432 dbname=bmms user={secrets.app_user} sslmode=verify-full"
        " sslrootcert=/etc/bmms/tls/ca.crt",
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        password=secrets.app_password,
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "t"


def test_monitoring_role_reads_replication_state(primary, secrets):
    result = psql(
        primary,
        f"host=127.0.0.1 port=5432 dbname=postgres user={secrets.monitoring_user} sslmode=require",
        "SELECT state FROM pg_stat_replication",
        password=secrets.monitoring_password,
    )
    assert result.rc == 0, result.stderr
    # Without pg_monitor the state column reads as NULL.
    assert result.stdout.split() == ["streaming"] * len(REPLICAS)


def test_application_database_is_owned_by_app_role(primary, secrets):
    result = local_psql(primary, "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'bmms'")
    assert result.stdout.strip() == f"{secrets.app_user}|UTF8"
