"""The nginx load balancer in front of two Gunicorn backends.

Requests go from the controller to the lab address of lb over HTTPS,
verified with the lab CA. Tests that count rate-limited requests send them
from a lab host, so each limit counts a client address of its own.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import testinfra

LB = "10.77.14.11"
BACKENDS = {"web1": "10.77.14.21", "web2": "10.77.14.22"}
BACKEND_PORT = 8000
WEB_UNITS = "bmms-web.socket bmms-web.service"
ACCESS_LOG = "/var/log/nginx/access.log"
PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
SCENARIO = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path(__file__).resolve().parents[1]))
INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")


def lab_host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


@pytest.fixture(scope="module")
def lb():
    return lab_host("lb")


@pytest.fixture(scope="module")
def web1():
    return lab_host("web1")


@pytest.fixture(scope="module")
def web2():
    return lab_host("web2")


@pytest.fixture(scope="module")
def ca_file(lb, tmp_path_factory):
    """Write the lab CA that signed lb's certificate to a controller file."""
    path = tmp_path_factory.mktemp("tls") / "ca.crt"
    path.write_text(lb.file("/etc/bmms/tls/ca.crt").content_string)
    return str(path)


@pytest.fixture(scope="module")
def tls_context(ca_file):
    context = ssl.create_default_context(cafile=ca_file)
    return context


def https(context, method, path, headers=None, body=None, timeout=10):
    """Send one request to lb over HTTPS and return (status, headers, body)."""
    connection = http.client.HTTPSConnection(LB, 443, context=context, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def backend_log_contains(backend, marker: str) -> bool:
    """Return whether Gunicorn's access log on backend (the journal) names marker."""
    found = backend.run(f"journalctl --unit bmms-web.service --since -10min --no-pager --output cat | grep -c {marker}")
    return found.rc == 0 and int(found.stdout.strip() or 0) > 0


def upstreams_of(lb, marker: str) -> list[str]:
    """Return the upstream field of every access log line that contains marker."""
    lines = lb.run(f"grep {marker} {ACCESS_LOG}").stdout.splitlines()
    return [match.group(1) for line in lines if (match := re.search(r"upstream=(\S+(?:, \S+)*)", line))]


def wait_until_serving(backend, address: str, seconds: int = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if backend.run(f"curl -sf -o /dev/null http://{address}:{BACKEND_PORT}/health/").rc == 0:
            return
        time.sleep(1)
    raise AssertionError(f"backend {address} did not answer /health/ within {seconds} s")


def run_playbook(playbook: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ansible-playbook", "-i", INVENTORY, str(playbook), *arguments],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def curl_statuses(client, method: str, path: str, count: int) -> list[int]:
    """Send count requests from client to lb as fast as curl can and return the status codes."""
    command = (
        f"for i in $(seq {count}); do curl -s -o /dev/null -w '%{{http_code}}\\n' "
        f"--cacert /etc/bmms/tls/ca.crt -X {method} https://{LB}{path}; done"
    )
    result = client.run(command)
    assert result.rc == 0, result.stderr
    return [int(code) for code in result.stdout.split()]


# Routing and failover


def test_requests_reach_both_backends(tls_context, web1, web2):
    marker = f"reach-{uuid.uuid4().hex}"
    statuses = [https(tls_context, "GET", f"/?probe={marker}")[0] for _ in range(10)]
    assert statuses == [200] * 10, f"statuses through nginx: {statuses}"
    assert backend_log_contains(web1, marker), "web1 served none of the requests"
    assert backend_log_contains(web2, marker), "web2 served none of the requests"


def test_backend_stop_fails_no_get(tls_context, lb, web1):
    """GETs go on without a failure while one backend's Gunicorn stops."""
    marker = f"stop-{uuid.uuid4().hex}"
    failures: list[str] = []
    successes = 0
    lock = threading.Lock()
    deadline = time.monotonic() + 8

    def send_requests() -> None:
        nonlocal successes
        while time.monotonic() < deadline:
            try:
                status = https(tls_context, "GET", f"/?probe={marker}")[0]
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    failures.append(repr(error))
                continue
            with lock:
                if status == 200:
                    successes += 1
                else:
                    failures.append(f"status {status}")

    clients = [threading.Thread(target=send_requests) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        time.sleep(2)
        stop = web1.run(f"systemctl stop {WEB_UNITS}")
        for client in clients:
            client.join()
    finally:
        web1.run(f"systemctl start {WEB_UNITS}")
    assert stop.rc == 0, f"stopping Gunicorn on web1 failed: {stop.stderr}"
    assert failures == [], f"{len(failures)} of {len(failures) + successes} GETs failed: {failures[:5]}"
    assert successes > 40, f"only {successes} GETs completed in 8 s"
    served = upstreams_of(lb, marker)
    assert any(entry.startswith(f"{BACKENDS['web1']}:") for entry in served), "web1 served nothing before it stopped"
    wait_until_serving(web1, BACKENDS["web1"])


# TLS and headers


def handshake(ca_file: str, version: ssl.TLSVersion) -> str:
    """Return the negotiated protocol, or the reason the handshake failed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca_file)
    # OpenSSL 3 rejects TLS 1.0 and 1.1 itself above security level 0, so
    # lower it: a rejection can then only come from the server.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = version
    context.maximum_version = version
    try:
        with socket.create_connection((LB, 443), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=LB) as tls:
                return tls.version()
    except ssl.SSLError as error:
        return error.reason or str(error)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_old_version_rejected(ca_file, version):
    outcome = handshake(ca_file, version)
    assert outcome == "TLSV1_ALERT_PROTOCOL_VERSION", f"{version.name} handshake ended with {outcome!r}"


@pytest.mark.parametrize(
    "version, name", [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")]
)
def test_tls_current_version_accepted(ca_file, version, name):
    assert handshake(ca_file, version) == name


def test_http_redirects_to_https():
    connection = http.client.HTTPConnection(LB, 80, timeout=5)
    connection.request("GET", "/admin/?page=2")
    response = connection.getresponse()
    assert response.status == 301
    assert response.headers["Location"] == f"https://{LB}/admin/?page=2"


def test_security_headers_sent_once(tls_context):
    status, headers, _ = https(tls_context, "GET", "/")
    assert status == 200
    expected = {
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
    }
    for name, value in expected.items():
        assert headers.get_all(name) == [value], f"{name}: {headers.get_all(name)}"
    policy = headers.get_all("Content-Security-Policy") or []
    assert len(policy) == 1, f"Content-Security-Policy: {policy}"
    assert "frame-ancestors 'none'" in policy[0]


def test_error_response_has_hsts(tls_context):
    status, headers, _ = https(tls_context, "GET", "/static/no-such-file.css")
    assert status == 404
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")


# Django behind the proxy


def login_form(context) -> tuple[str, str]:
    """GET the admin login page and return its CSRF cookie and form token."""
    status, headers, body = https(context, "GET", "/admin/login/")
    assert status == 200, body[:300]
    cookies = [value.split(";")[0] for value in headers.get_all("Set-Cookie") or []]
    csrf_cookie = next((cookie for cookie in cookies if cookie.startswith("csrftoken=")), None)
    assert csrf_cookie, f"no csrftoken cookie in {cookies}"
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    assert token, "login form has no CSRF token"
    return csrf_cookie, token.group(1).decode()


def post_login(context, origin: str, cookie: str, fields: dict[str, str]):
    headers = {"Origin": origin, "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    return https(context, "POST", "/admin/login/", headers, urllib.parse.urlencode(fields))


def test_admin_login_passes_csrf_origin_check(tls_context):
    """A login POST with an https Origin gets past Django's CSRF check.

    Django accepts the Origin only when it treats the request as HTTPS,
    which it reads from X-Forwarded-Proto.
    """
    cookie, token = login_form(tls_context)
    fields = {"csrfmiddlewaretoken": token, "username": "nobody", "password": "wrong-password"}
    status, _, body = post_login(tls_context, f"https://{LB}", cookie, fields)
    assert status in (200, 302), f"login POST answered {status}: {body[:300]!r}"
    assert b"CSRF verification failed" not in body


def test_csrf_cookie_is_secure(tls_context):
    """Django marks the CSRF cookie Secure, which it sends only over HTTPS."""
    _, headers, _ = https(tls_context, "GET", "/admin/login/")
    csrf_cookies = [value for value in headers.get_all("Set-Cookie") or [] if value.startswith("csrftoken=")]
    assert csrf_cookies, "no csrftoken cookie"
    assert "secure" in csrf_cookies[0].lower().split("; "), csrf_cookies[0]


def test_foreign_origin_fails_csrf_check(tls_context):
    """The same POST from another origin gets 403, so the check is active."""
    cookie, token = login_form(tls_context)
    fields = {"csrfmiddlewaretoken": token, "username": "nobody", "password": "wrong-password"}
    status, _, _ = post_login(tls_context, "https://attacker.invalid", cookie, fields)
    assert status == 403, f"foreign-origin POST answered {status}"


# Rate limits and request size


def test_sixth_login_post_gets_429(lb):
    statuses = curl_statuses(lb, "POST", "/admin/login/", 6)
    assert 429 not in statuses[:5], f"statuses of the first five POSTs: {statuses[:5]}"
    assert statuses[5] == 429, f"status of the sixth POST: {statuses[5]}"


def test_rate_limited_answer_has_retry_after(lb):
    result = lb.run(
        f"curl -s -D - -o /dev/null --cacert /etc/bmms/tls/ca.crt -X POST https://{LB}/admin/login/"
    )
    assert result.stdout.startswith("HTTP/2 429") or " 429" in result.stdout.splitlines()[0]
    assert re.search(r"^retry-after: 60\r?$", result.stdout, re.IGNORECASE | re.MULTILINE)


def test_login_gets_not_limited(web1):
    statuses = curl_statuses(web1, "GET", "/admin/login/", 8)
    assert 429 not in statuses, f"login page GETs answered {statuses}"


def test_api_burst_beyond_limit_gets_429(web2):
    statuses = curl_statuses(web2, "GET", "/api/probe/", 30)
    assert 429 not in statuses[:21], f"first 21 API requests answered {statuses[:21]}"
    assert 429 in statuses[21:], f"API requests past the burst answered {statuses[21:]}"


def test_body_over_100m_rejected(tls_context):
    connection = http.client.HTTPSConnection(LB, 443, context=tls_context, timeout=10)
    connection.putrequest("POST", "/upload/")
    connection.putheader("Content-Length", str(100 * 1024 * 1024 + 1))
    connection.endheaders()
    assert connection.getresponse().status == 413


def test_body_of_2m_reaches_django(tls_context):
    """A 2 MB form, twice nginx's default limit, reaches Django, which reads it all."""
    cookie, token = login_form(tls_context)
    fields = {"csrfmiddlewaretoken": token, "username": "nobody", "password": "x", "padding": "x" * (2 << 20)}
    status, _, body = post_login(tls_context, f"https://{LB}", cookie, fields)
    assert status == 200, f"2 MB login POST answered {status}: {body[:300]!r}"


# Static files and probes


def test_static_file_served_with_year_cache(tls_context, web1):
    path = "admin/css/base.css"
    status, headers, body = https(tls_context, "GET", f"/static/{path}")
    assert status == 200
    assert body == web1.file(f"/var/www/bmms/static/{path}").content
    assert headers["Cache-Control"] == "max-age=31536000"


def test_static_change_copied_on_converge(tls_context, lb, web1):
    """A file added to the collectstatic output is served after the role runs."""
    name = f"probe-{uuid.uuid4().hex}.txt"
    source = f"/var/www/bmms/static/{name}"
    web1.run(f"echo {name} > {source}")
    try:
        result = run_playbook(SCENARIO / "converge.yml", "--limit", "lb", "--tags", "nginx_static")
        assert result.returncode == 0, result.stdout[-2000:]
        status, _, body = https(tls_context, "GET", f"/static/{name}")
        assert status == 200
        assert body == f"{name}\n".encode()
        copies = lb.run("ls /var/lib/bmms-nginx/static-copies").stdout.split()
        assert len([entry for entry in copies if not entry.endswith(".complete")]) == 2, copies
    finally:
        web1.run(f"rm -f {source}")


@pytest.mark.parametrize("path", ["/health/", "/ready/"])
def test_probe_passed_through(tls_context, path):
    status, _, body = https(tls_context, "GET", path)
    assert status == 200, body[:300]
    assert b'"service"' in body


# stub_status


def test_stub_status_answers_monitoring_host(web2):
    result = web2.run(f"curl -s -w '\\n%{{http_code}}' http://{LB}:8080/stub_status")
    assert result.stdout.splitlines()[-1] == "200"
    assert result.stdout.startswith("Active connections:")


def test_stub_status_answers_loopback(lb):
    assert lb.run("curl -s http://127.0.0.1:8080/stub_status").stdout.startswith("Active connections:")


def test_stub_status_rejects_other_host(web1):
    result = web1.run(f"curl -s -o /dev/null -w '%{{http_code}}' http://{LB}:8080/stub_status")
    assert result.stdout == "403"


# Configuration changes


def test_rejected_config_keeps_old_serving(tls_context, lb):
    """A cipher list that nginx rejects fails the play and changes nothing live."""
    master_before = lb.run("cat /run/nginx.pid").stdout.strip()
    live_before = lb.file("/etc/nginx/bmms.d/http.conf").content_string
    result = run_playbook(
        SCENARIO / "converge.yml",
        "--limit", "lb", "--tags", "nginx_configure", "-e", "nginx_tls_ciphers=NOT-A-CIPHER",
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, "the play succeeded with an invalid cipher list"
    assert "nginx -t rejected" in output
    assert "SSL_CTX_set_cipher_list" in output, "the failure does not carry nginx's message"
    assert lb.file("/etc/nginx/bmms.d/http.conf").content_string == live_before
    assert lb.run("cat /run/nginx.pid").stdout.strip() == master_before
    assert https(tls_context, "GET", "/health/")[0] == 200


def drain_backend(name: str, action: str = "drain") -> subprocess.CompletedProcess:
    playbook = PROJECT / "playbooks/drain_backend.yml"
    return run_playbook(playbook, "-e", f"nginx_drain_backend={name}", "-e", f"nginx_drain_action={action}")


def test_drain_and_restore_backend(tls_context, lb):
    """Drain moves all traffic to web2 and refuses to take web2 out too. Restore brings web1 back."""
    drain = drain_backend("web1")
    try:
        assert drain.returncode == 0, drain.stdout[-2000:]
        marker = f"drain-{uuid.uuid4().hex}"
        statuses = [https(tls_context, "GET", f"/?probe={marker}")[0] for _ in range(8)]
        assert statuses == [200] * 8
        served = upstreams_of(lb, marker)
        assert served, "no request reached a backend"
        assert set(served) == {f"{BACKENDS['web2']}:{BACKEND_PORT}"}, f"upstreams while web1 is drained: {served}"

        last = drain_backend("web2")
        assert last.returncode != 0, "draining the last backend in service succeeded"
        assert "without a backend in service" in " ".join((last.stdout + last.stderr).split())
    finally:
        restore = drain_backend("web1", "restore")
    assert restore.returncode == 0, restore.stdout[-2000:]
    marker = f"restore-{uuid.uuid4().hex}"
    for _ in range(8):
        https(tls_context, "GET", f"/?probe={marker}")
    served = upstreams_of(lb, marker)
    assert f"{BACKENDS['web1']}:{BACKEND_PORT}" in served, f"upstreams after restore: {served}"
