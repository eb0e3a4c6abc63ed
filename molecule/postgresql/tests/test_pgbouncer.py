"""PgBouncer: SCRAM logins over TLS, the admin console, the read-only alias and reloads."""

import shlex
import uuid

from conftest import PSQL, POOLER, PRIMARY, REPLICAS, address_of, lab_host, local_psql, pooler_conninfo, psql, wait_for


def test_app_login_with_special_password(client, secrets):
    for character in ['"', "'", "\\", " ", "$", "%", "Ñ", "Ω"]:
        assert character in secrets.app_password, f"the lab password lacks {character!r}"
    result = psql(client, pooler_conninfo("bmms", secrets.app_user), "SELECT current_user", password=secrets.app_password)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == secrets.app_user


def test_app_login_lands_on_primary(client, secrets):
    result = psql(
        client,
        pooler_conninfo("bmms", secrets.app_user),
        "SELECT pg_is_in_recovery(), host(inet_server_addr())",
        password=secrets.app_password,
    )
    assert result.stdout.strip() == f"f|{address_of(PRIMARY)}"


def test_wrong_password_is_rejected(client, secrets):
    result = psql(client, pooler_conninfo("bmms", secrets.app_user), "SELECT 1", password=secrets.app_password + "x")
    assert result.rc != 0
    assert "SASL authentication failed" in result.stderr


def test_login_without_tls_is_rejected(client, secrets):
    result = psql(
        client, pooler_conninfo("bmms", secrets.app_user, sslmode="disable"), "SELECT 1", password=secrets.app_password
    )
    assert result.rc != 0
    assert "SSL required" in result.stderr


def test_verify_full_by_name_and_address(client, secrets):
    for target in [POOLER, address_of(POOLER)]:
        conninfo = pooler_conninfo("bmms", secrets.app_user, sslmode="verify-full", host=target)
        result = psql(client, conninfo, "SELECT 1", password=secrets.app_password)
        assert result.rc == 0, f"verify-full to {target}: {result.stderr}"


def test_admin_console_shows_pools(client, secrets):
    result = psql(client, pooler_conninfo("pgbouncer", secrets.admin_user), "SHOW POOLS", password=secrets.admin_password)
    assert result.rc == 0, result.stderr
    databases = {line.split("|")[0] for line in result.stdout.split("\n") if line}
    assert "bmms" in databases


def test_stats_user_reads_stats_but_cannot_pause(client, secrets):
    conninfo = pooler_conninfo("pgbouncer", secrets.monitoring_user)
    stats = psql(client, conninfo, "SHOW STATS", password=secrets.monitoring_password)
    assert stats.rc == 0, stats.stderr
    pause = psql(client, conninfo, "PAUSE bmms", password=secrets.monitoring_password)
    assert pause.rc != 0
    assert "admin access needed" in pause.stderr


def test_readonly_alias_lands_on_replica(client, secrets):
    replica_addresses = {address_of(name) for name in REPLICAS}
    for user, password in [(secrets.readonly_user, secrets.readonly_password), (secrets.app_user, secrets.app_password)]:
        result = psql(
            client,
            pooler_conninfo("bmms_readonly", user),
            "SELECT pg_is_in_recovery(), host(inet_server_addr())",
            password=password,
        )
        assert result.rc == 0, f"{user}: {result.stderr}"
        in_recovery, server = result.stdout.strip().split("|")
        assert in_recovery == "t"
        assert server in replica_addresses


def test_readonly_role_reads_new_application_tables(client, secrets):
    """Default privileges let the read-only role read a table the application creates later."""
    table = f"probe_{uuid.uuid4().hex[:12]}"
    created = psql(
        client,
        pooler_conninfo("bmms", secrets.app_user),
        f"CREATE TABLE {table} (id int); INSERT INTO {table} VALUES (1)",
        password=secrets.app_password,
    )
    assert created.rc == 0, created.stderr

    def readable():
        result = psql(
            client, pooler_conninfo("bmms_readonly", secrets.readonly_user), f"SELECT count(*) FROM {table}",
            password=secrets.readonly_password,
        )
        return result.stdout.strip() == "1"

    try:
        assert wait_for(readable, timeout=10), f"bmms_ro cannot read {table} on a replica"
    finally:
        psql(client, pooler_conninfo("bmms", secrets.app_user), f"DROP TABLE {table}", password=secrets.app_password)


def test_readonly_role_cannot_write_on_primary(client, secrets):
    result = psql(
        client, pooler_conninfo("bmms", secrets.readonly_user), "CREATE TABLE written_by_readonly (id int)",
        password=secrets.readonly_password,
    )
    assert result.rc != 0
    assert "read-only transaction" in result.stderr


def test_pool_settings_follow_capacity_plan(client, secrets):
    result = psql(client, pooler_conninfo("pgbouncer", secrets.admin_user), "SHOW CONFIG", password=secrets.admin_password)
    config = {line.split("|")[0]: line.split("|")[1] for line in result.stdout.split("\n") if line}
    expected = {
        "max_client_conn": "1000",
        "default_pool_size": "50",
        "min_pool_size": "10",
        "reserve_pool_size": "10",
        "pool_mode": "transaction",
        "server_idle_timeout": "600",
        "server_lifetime": "3600",
        "tcp_keepalive": "1",
        "auth_type": "scram-sha-256",
        "listen_port": "6432",
    }
    assert {name: config.get(name) for name in expected} == expected


def test_reload_keeps_serving_open_sessions(client, primary, secrets):
    pooler = lab_host(POOLER)
    pid_before = pooler.run("systemctl show --property=MainPID --value pgbouncer").stdout.strip()
    probe = f"/tmp/reload-probe-{uuid.uuid4().hex[:8]}"
    query = (
        f"PGPASSWORD={shlex.quote(secrets.app_password)} {PSQL}"
        f" -d {shlex.quote(pooler_conninfo('bmms', secrets.app_user))} -c 'SELECT pg_sleep(5), 42'"
        f" > {probe}.out 2>&1; echo $? > {probe}.rc"
    )
    started = client.run(f"nohup sh -c {shlex.quote(query)} >/dev/null 2>&1 &")
    assert started.rc == 0, started.stderr

    def in_flight():
        active = local_psql(primary, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(5)%'")
        return active.stdout.strip() == "1"

    assert wait_for(in_flight, timeout=4, interval=0.2), "the probe query never reached the primary"
    reloaded = pooler.run("systemctl reload pgbouncer")
    assert reloaded.rc == 0, reloaded.stderr

    finished = wait_for(lambda: client.file(f"{probe}.rc").exists, timeout=15)
    output = client.run(f"cat {probe}.out {probe}.rc; rm -f {probe}.out {probe}.rc").stdout.split()
    assert finished, "the query did not finish within 15 s"
    assert output == ["|42", "0"], f"query output across the reload: {output}"
    assert pooler.run("systemctl show --property=MainPID --value pgbouncer").stdout.strip() == pid_before


def test_userlist_is_private():
    userlist = lab_host(POOLER).file("/etc/pgbouncer/userlist.txt")
    assert userlist.mode == 0o640
    assert userlist.group == "postgres"

