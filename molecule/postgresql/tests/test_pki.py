"""TLS files from the pki role: a private key and a certificate that names the host."""

from conftest import POOLER, PRIMARY, REPLICAS, address_of, lab_host


def test_host_key_is_readable_by_ssl_cert_only():
    for name in [PRIMARY, *REPLICAS]:
        key = lab_host(name).file("/etc/bmms/tls/host.key")
        assert (key.user, key.group, key.mode) == ("root", "ssl-cert", 0o640), f"{name}: host.key"


def test_postgres_user_can_read_host_key():
    for name in [PRIMARY, *REPLICAS]:
        result = lab_host(name).run("runuser -u postgres -- head -c 10 /etc/bmms/tls/host.key")
        assert result.rc == 0, f"{name}: {result.stderr}"


def test_certificate_names_host_and_address():
    for name in [PRIMARY, *REPLICAS]:
        host = lab_host(name)
        names = host.run("openssl x509 -in /etc/bmms/tls/host.crt -noout -ext subjectAltName").stdout
        assert f"DNS:{name}" in names, f"{name}: {names}"
        assert f"IP Address:{address_of(name)}" in names, f"{name}: {names}"


def test_certificate_chains_to_lab_ca():
    for name in [PRIMARY, *REPLICAS]:
        result = lab_host(name).run("openssl verify -CAfile /etc/bmms/tls/ca.crt /etc/bmms/tls/host.crt")
        assert result.rc == 0, f"{name}: {result.stdout}{result.stderr}"


def test_pooler_presents_host_certificate():
    pooler = lab_host(POOLER)
    served = pooler.run(
        f"openssl s_client -starttls postgres -connect {address_of(POOLER)}:6432 </dev/null 2>/dev/null"
        " | openssl x509 -noout -fingerprint -sha256"
    ).stdout.strip()
    installed = pooler.run("openssl x509 -in /etc/bmms/tls/host.crt -noout -fingerprint -sha256").stdout.strip()
    assert served == installed
