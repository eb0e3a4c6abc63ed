"""CSV import on a web host and welcome emails from the Celery workers."""

import pytest

from conftest import MAIL_DIR, WEB_HOSTS, WORKER_HOSTS, lab_host, manage, python_in_app, wait_until

HEADER = "username,email,first_name,last_name,moa\n"
THREE_USERS = HEADER + (
    "labuser1,labuser1@example.gov.ph,Amina,Saupi,mafar\n"
    "labuser2,labuser2@example.gov.ph,Datu,Ali,mafar\n"
    "labuser3,labuser3@example.gov.ph,Norhaya,Guro,mafar\n"
)
BAD_USERS = HEADER + (
    "csvbad1,csvbad1@example.gov.ph,Bad,One,mafar\n"
    "csvbad2,csvbad2-at-example.gov.ph,Bad,Two,mafar\n"
    "csvbad3,csvbad3@example.gov.ph,Bad,Three,nosuchmoa\n"
)
ADDRESSES = ["labuser1@example.gov.ph", "labuser2@example.gov.ph", "labuser3@example.gov.ph"]


def welcome_messages():
    """Return {address: count} of welcome emails written on every worker."""
    counts = dict.fromkeys(ADDRESSES, 0)
    for name in WORKER_HOSTS:
        output = lab_host(name).run(f"cat {MAIL_DIR}/*.log 2>/dev/null || true").stdout
        for line in output.splitlines():
            if line.startswith("To: ") and line[4:].strip() in counts:
                counts[line[4:].strip()] += 1
    return counts


@pytest.fixture(scope="module")
def moa():
    result = manage(WEB_HOSTS[0], 'ensure_moa mafar "Ministry of Agriculture, Fisheries and Agrarian Reform"')
    assert result.rc == 0, result.stderr
    return "mafar"


@pytest.fixture(scope="module")
def first_import(moa):
    return manage(WEB_HOSTS[0], f"import_users {moa} -", stdin=THREE_USERS)


def test_import_creates_three_users(first_import):
    assert first_import.rc == 0, first_import.stderr
    assert "created 3, updated 0, unchanged 0 user(s) in MOA mafar" in first_import.stdout


def all_welcome_messages():
    """Return the counts once every address has a message, else None."""
    counts = welcome_messages()
    return counts if all(counts.values()) else None


def test_worker_sends_three_welcome_emails(first_import):
    counts = wait_until(all_welcome_messages, timeout=60, interval=2) or welcome_messages()
    assert counts == dict.fromkeys(ADDRESSES, 1)


def test_second_import_changes_nothing(first_import, moa):
    wait_until(all_welcome_messages, timeout=60, interval=2)
    result = manage(WEB_HOSTS[1], f"import_users {moa} -", stdin=THREE_USERS)
    assert result.rc == 0, result.stderr
    assert "created 0, updated 0, unchanged 3" in result.stdout
    assert welcome_messages() == dict.fromkeys(ADDRESSES, 1)


def test_bad_csv_rejected_with_lines(moa):
    result = manage(WEB_HOSTS[0], f"import_users {moa} -", stdin=BAD_USERS)
    assert result.rc != 0
    assert "line 3: email 'csvbad2-at-example.gov.ph' is not a valid email address" in result.stderr
    assert "line 4: MOA 'nosuchmoa' is unknown" in result.stderr
    assert "nothing imported" in result.stderr


def test_bad_csv_imports_nobody(moa):
    manage(WEB_HOSTS[0], f"import_users {moa} -", stdin=BAD_USERS)
    count = python_in_app(
        WEB_HOSTS[0],
        "from bmms_reference.core.models import User; "
        "print(User.objects.using('default').filter(username__startswith='csvbad').count())",
    )
    assert count.rc == 0, count.stderr
    assert count.stdout.strip() == "0"
