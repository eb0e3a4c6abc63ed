"""Prometheus, its exporters and the Grafana provisioning on the monitoring lab.

Tests that query Prometheus run once, from the controller, against the
monitoring host's API. Tests that take the ``host`` fixture run on every
lab host.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import testinfra
import yaml

MONITORING_HOST = "mon1"
PROMETHEUS = "http://10.77.15.11:9090"
SECRET_VARIABLES = (
    "bmms_db_monitoring_password",
    "bmms_redis_monitoring_password",
    "bmms_redis_password",
    "bmms_metrics_token",
)
# Scrape jobs and the inventory groups their targets must come from.
JOB_GROUPS = {
    "node": ["all"],
    "postgres": ["postgres_primary", "postgres_replicas"],
    "pgbouncer": ["pgbouncer"],
    "redis": ["redis"],
    "prometheus": ["monitoring"],
}
EXPECTED_ALERTS = {
    "InstanceDown",
    "PostgresDown",
    "RedisDown",
    "PgBouncerDown",
    "PostgresReplicaNotStreaming",
    "PostgresPrimaryMissingReplicas",
    "PostgresReplicaLagging",
    "PgBouncerClientsWaiting",
    "RedisFailover",
    "RedisMemoryNearMax",
    "HighHttp5xxRatio",
    "DiskAlmostFull",
    "HighCpuUsage",
    "HighMemoryUsage",
}
DASHBOARDS = {"overview", "application", "database", "cache", "infrastructure"}
DASHBOARD_DIR = "/var/lib/grafana/dashboards/bmms"
PROVISIONING_DIR = "/etc/grafana/provisioning"
# Metric prefixes whose exporter runs only on hosts this lab may lack, and
# the job that would scrape them.
OPTIONAL_SOURCES = {"bmms_http_": "app", "nginx_": "nginx"}

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects.

    Strings, label matchers, ranges and by/on label lists are removed
    first. What remains is a name unless it is a keyword or a function.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if word in PROMQL_WORDS or text[match.end():].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def prometheus_get(path: str, **params: str) -> dict:
    """GET a Prometheus API path and return its `data` member."""
    url = f"{PROMETHEUS}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", f"{url} answered {body}"
    return body["data"]


def query(expr: str) -> list[dict]:
    """Run an instant query and return its result vector."""
    return prometheus_get("/api/v1/query", query=expr)["result"]


def read_file(lab_host, path: str) -> str:
    """Return a root-only file's content, read with sudo."""
    result = lab_host.run(f"sudo cat {path}")
    assert result.rc == 0, f"cannot read {path}: {result.stderr}"
    return result.stdout


def wait_for(condition, timeout: float, interval: float = 2.0):
    """Call condition() until it returns a true value or timeout seconds pass, and return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture(scope="module")
def inventory_dir() -> Path:
    return Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent


@pytest.fixture(scope="module")
def lab_host_factory(inventory_dir):
    def get(name: str):
        return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory_dir}")

    return get


@pytest.fixture(scope="module")
def monitoring_host(lab_host_factory):
    return lab_host_factory(MONITORING_HOST)


@pytest.fixture(scope="module")
def lab_variables(monitoring_host) -> dict:
    return monitoring_host.ansible.get_variables()


@pytest.fixture(scope="module")
def active_targets() -> list[dict]:
    """Active targets once every target has been scraped at least once."""

    def scraped():
        targets = prometheus_get("/api/v1/targets", state="active")["activeTargets"]
        return targets if targets and all(t["health"] != "unknown" for t in targets) else None

    targets = wait_for(scraped, timeout=60)
    assert targets, "Prometheus has no active target that was scraped within 60 s"
    return targets


def test_metric_names_parses_promql():
    expr = (
        'sum by (job) (rate(bmms_http_requests_total{status=~"5.."}[5m])) / on (job) '
        "histogram_quantile(0.95, x_bucket) and on (instance) pg_up == 1 or vector(0)"
    )
    assert metric_names(expr) == {"bmms_http_requests_total", "x_bucket", "pg_up"}


def test_scrape_jobs_follow_inventory(active_targets, lab_variables):
    groups = lab_variables["groups"]
    for job, group_names in JOB_GROUPS.items():
        expected = {host for group in group_names for host in groups.get(group, [])}
        scraped = {t["labels"]["host"] for t in active_targets if t["labels"]["job"] == job}
        assert scraped == expected, f"job {job} scrapes {sorted(scraped)}, inventory has {sorted(expected)}"


def test_redis_job_scrapes_both_instances(active_targets, lab_variables):
    redis_hosts = lab_variables["groups"]["redis"]
    instances = {(t["labels"]["host"], t["labels"]["redis_instance"]) for t in active_targets if t["labels"]["job"] == "redis"}
    assert instances == {(host, name) for host in redis_hosts for name in ("cache", "broker")}


def test_every_target_is_up(active_targets):
    down = [f"{t['labels']['job']} {t['labels']['instance']}: {t['lastError']}" for t in active_targets if t["health"] != "up"]
    assert not down, "targets down:\n" + "\n".join(down)


@pytest.mark.parametrize("metric", ["pg_up", "redis_up", "pgbouncer_up"])
def test_exporter_logs_in_to_its_service(metric):
    """The exporters authenticate with the credentials from their files."""
    results = wait_for(lambda: query(metric), timeout=30)
    assert results, f"Prometheus has no {metric} series"
    failing = [r["metric"]["instance"] for r in results if r["value"][1] != "1"]
    assert not failing, f"{metric} is 0 on {failing}"


def test_primary_counts_streaming_replicas(lab_variables):
    replicas = len(lab_variables["groups"]["postgres_replicas"])
    results = query("pg_primary_streaming_replicas and on (instance) pg_replica_is_replica == 0")
    assert len(results) == 1, f"expected one primary, found {results}"
    assert int(float(results[0]["value"][1])) == replicas


def test_replicas_report_streaming():
    results = query("pg_wal_receiver_streaming and on (instance) pg_replica_is_replica == 1")
    assert results, "no replica reports pg_wal_receiver_streaming"
    assert all(r["value"][1] == "1" for r in results), f"replicas not streaming: {results}"


def test_alert_rules_are_loaded():
    groups = prometheus_get("/api/v1/rules", type="alert")["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert EXPECTED_ALERTS <= loaded, f"missing alert rules: {sorted(EXPECTED_ALERTS - loaded)}"


def test_no_alert_fires_on_a_healthy_lab():
    alerts = prometheus_get("/api/v1/alerts")["alerts"]
    # RedisFailover may fire right after setup if a node started as master.
    firing = [a["labels"]["alertname"] for a in alerts if a["state"] == "firing" and a["labels"]["alertname"] != "RedisFailover"]
    assert not firing, f"alerts firing on a healthy lab: {firing}"


def test_settings_match_the_defaults():
    flags = prometheus_get("/api/v1/status/flags")
    assert flags["storage.tsdb.retention.time"] == "30d"
    # Prometheus counts sizes in binary units and shows 10GB as 10GiB.
    assert flags["storage.tsdb.retention.size"] == "10GiB"
    config = yaml.safe_load(prometheus_get("/api/v1/status/config")["yaml"])
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["external_labels"] == {"cluster": "bmms", "environment": "lab"}


def test_stopped_exporter_is_down_and_alerts(lab_host_factory):
    """Stop db2's node exporter: its target goes down and InstanceDown goes pending or firing."""
    db2 = lab_host_factory("db2")
    selector = 'up{job="node",host="db2"}'
    assert db2.run("sudo systemctl stop prometheus-node-exporter").rc == 0
    try:
        down = wait_for(lambda: [r for r in query(selector) if r["value"][1] == "0"], timeout=45)
        assert down, f"{selector} did not turn 0 within 45 s of stopping the exporter"

        def instance_down_alert():
            alerts = prometheus_get("/api/v1/alerts")["alerts"]
            return [
                a for a in alerts
                if a["labels"].get("alertname") == "InstanceDown"
                and a["labels"].get("job") == "node"
                and a["labels"].get("host") == "db2"
            ]

        alerts = wait_for(instance_down_alert, timeout=45)
        assert alerts, "InstanceDown for db2 did not appear within 45 s"
        assert alerts[0]["state"] in ("pending", "firing")
    finally:
        db2.run("sudo systemctl start prometheus-node-exporter")
    up_again = wait_for(lambda: [r for r in query(selector) if r["value"][1] == "1"], timeout=45)
    assert up_again, f"{selector} did not return to 1 after the exporter started again"


def test_promtool_accepts_configuration(monitoring_host):
    result = monitoring_host.run("sudo promtool check config /etc/prometheus/prometheus.yml")
    assert result.rc == 0, result.stdout + result.stderr


def test_promtool_accepts_rules(monitoring_host):
    result = monitoring_host.run("sudo promtool check rules /etc/prometheus/rules/bmms.rules.yml")
    assert result.rc == 0, result.stdout + result.stderr


def test_broken_rule_is_rejected(monitoring_host, inventory_dir):
    """A rule that promtool rejects fails the play, and Prometheus keeps its old rules and configuration."""
    before = prometheus_get("/api/v1/status/runtimeinfo")
    broken = {"prometheus_extra_rule_groups": [{"name": "broken", "rules": [{"alert": "Broken", "expr": "rate(up[5m]"}]}]}
    project = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
    result = subprocess.run(
        [
            "ansible-playbook",
            "--inventory", str(inventory_dir),
            "--tags", "prometheus_configure",
            "--extra-vars", json.dumps(broken),
            str(project / "molecule/monitoring/reconfigure.yml"),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, "the play accepted a broken rule:\n" + output[-2000:]
    assert "unclosed left parenthesis" in output, "promtool did not report the broken expression:\n" + output[-2000:]
    assert not monitoring_host.file("/etc/prometheus/rules/extra.rules.yml").exists
    after = prometheus_get("/api/v1/status/runtimeinfo")
    assert after["reloadConfigSuccess"] is True
    assert after["lastConfigTime"] == before["lastConfigTime"], "Prometheus reloaded after the failed check"
    groups = {g["name"] for g in prometheus_get("/api/v1/rules")["groups"]}
    assert "broken" not in groups
    assert "bmms-availability" in groups


def test_preflight_rejects_missing_secret(inventory_dir):
    """An empty exporter password stops the playbook in its first play, before any host changes."""
    project = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
    result = subprocess.run(
        [
            "ansible-playbook",
            "--inventory", str(inventory_dir),
            "--extra-vars", json.dumps({"bmms_redis_monitoring_password": ""}),
            str(project / "playbooks/monitoring.yml"),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, "the playbook ran with an empty Redis monitoring password"
    assert "redis_exporter_redis_password is empty" in output, output[-2000:]
    assert "bmms_redis_monitoring_password" in output, output[-2000:]
    recap = output[output.rindex("PLAY RECAP"):]
    assert re.findall(r"changed=(\d+)", recap) == ["0"] * 3, recap
    assert "Export host metrics" not in output, "a play after the checks ran"


def secret_forms(value: str) -> set[str]:
    """Return the forms a secret takes in a command line: plain, URL-quoted, or with backslashes doubled."""
    return {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value), value.replace("\\", "\\\\")}


def test_secret_forms_cover_escaping():
    assert secret_forms("a:b\\c@d") == {"a:b\\c@d", "a%3Ab%5Cc%40d", "a:b\\\\c@d"}


def test_no_secret_in_process_list(host):
    hostname = host.backend.get_hostname()
    variables = host.ansible.get_variables()
    processes = host.run("ps -eww -o args").stdout
    # A listing without the node exporter, which runs on every host, would
    # make the check below pass without looking at any exporter.
    assert "prometheus-node-exporter" in processes, f"ps on {hostname} does not list the node exporter"
    for name in SECRET_VARIABLES:
        for form in secret_forms(variables[name]):
            assert form not in processes, f"the value of {name} appears in ps output on {hostname} as {form!r}"


@pytest.mark.parametrize(
    "unit",
    ["prometheus-postgres-exporter", "prometheus-redis-exporter", "bmms-pgbouncer-exporter"],
)
def test_exporter_environment_holds_no_secret(host, unit):
    if host.run(f"systemctl is-active {unit}").rc != 0:
        pytest.skip(f"{unit} does not run on {host.backend.get_hostname()}")
    variables = host.ansible.get_variables()
    pid = host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip()
    environment = host.run(f"sudo cat /proc/{pid}/environ").stdout
    for name in SECRET_VARIABLES:
        assert variables[name] not in environment, f"{unit} has the value of {name} in its environment"


@pytest.mark.parametrize(
    "path",
    [
        "/etc/prometheus-postgres-exporter/password",
        "/etc/prometheus-redis-exporter/passwords.json",
        "/etc/bmms-pgbouncer-exporter/pgpass",
        "/etc/default/prometheus-postgres-exporter",
        "/etc/default/prometheus-redis-exporter",
    ],
)
def test_credential_file_is_private(host, path):
    credential = host.file(path)
    if not credential.exists:
        pytest.skip(f"{path} is not on {host.backend.get_hostname()}")
    assert credential.mode == 0o600, f"{path} has mode {oct(credential.mode)}"


@pytest.mark.parametrize("port", [9100, 9121, 9127, 9187])
def test_exporter_listens_only_on_host_address(host, port):
    listeners = [line.split()[3] for line in host.run("ss -Hltn").stdout.splitlines() if line.split()[3].endswith(f":{port}")]
    if not listeners:
        pytest.skip(f"nothing listens on {port} on {host.backend.get_hostname()}")
    address = host.ansible.get_variables()["ansible_host"]
    assert listeners == [f"{address}:{port}"], f"port {port} listens on {listeners}"


def test_grafana_has_one_default_prometheus_datasource(monitoring_host):
    provisioning = yaml.safe_load(read_file(monitoring_host, f"{PROVISIONING_DIR}/datasources/bmms.yml"))
    assert provisioning["apiVersion"] == 1
    defaults = [d for d in provisioning["datasources"] if d.get("isDefault")]
    assert len(defaults) == 1, f"default datasources: {defaults}"
    assert defaults[0]["type"] == "prometheus"
    assert defaults[0]["url"] == PROMETHEUS


def test_grafana_datasource_url_answers(monitoring_host):
    provisioning = yaml.safe_load(read_file(monitoring_host, f"{PROVISIONING_DIR}/datasources/bmms.yml"))
    url = provisioning["datasources"][0]["url"]
    with urllib.request.urlopen(f"{url}/-/ready", timeout=10) as response:
        assert response.status == 200


def test_grafana_dashboards_land_in_bmms_folder(monitoring_host):
    provisioning = yaml.safe_load(read_file(monitoring_host, f"{PROVISIONING_DIR}/dashboards/bmms.yml"))
    providers = provisioning["providers"]
    assert len(providers) == 1
    assert providers[0]["folder"] == "BMMS"
    assert providers[0]["options"]["path"] == DASHBOARD_DIR


@pytest.fixture(scope="module")
def dashboards(monitoring_host) -> dict[str, dict]:
    names = monitoring_host.run(f"ls {DASHBOARD_DIR}").stdout.split()
    return {
        Path(name).stem: json.loads(read_file(monitoring_host, f"{DASHBOARD_DIR}/{name}"))
        for name in names
        if name.endswith(".json")
    }


def test_grafana_dashboards_are_complete(dashboards):
    assert set(dashboards) == DASHBOARDS
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids), f"duplicate dashboard uids: {uids}"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_queries_name_known_metrics(dashboards, active_targets, name):
    """Every metric a panel queries exists in the lab's Prometheus.

    Metrics of exporters whose job this lab does not run (the application
    and nginx) are only reported.
    """
    known = set(prometheus_get("/api/v1/label/__name__/values"))
    jobs = {t["labels"]["job"] for t in active_targets}
    panels = dashboards[name]["panels"]
    expressions = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    assert expressions, f"dashboard {name} has no query"
    unknown, unchecked = set(), set()
    for expr in expressions:
        for metric in metric_names(expr):
            job = next((job for prefix, job in OPTIONAL_SOURCES.items() if metric.startswith(prefix)), None)
            if job and job not in jobs:
                unchecked.add(metric)
            elif metric not in known:
                unknown.add(metric)
    assert not unknown, f"dashboard {name} queries metrics Prometheus does not have: {sorted(unknown)}"
    if unchecked:
        print(f"dashboard {name}: not checked, no such job in this lab: {sorted(unchecked)}")
