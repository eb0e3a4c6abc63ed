"""Unit tests for rollout_verify_users, rollout_email_outcome, rollout_record and rollout_summary."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.plugin_utils.rollout_results import (
    build_record,
    build_summary,
    email_outcome,
    verify_users,
)

FILES = [
    {"code": "ocm", "name": "Office of the Chief Minister", "usernames": ["ocm.a", "ocm.b"]},
    {"code": "moh", "name": "Ministry of Health", "usernames": ["moh.a"]},
]


def user(username, moa, pk, email=None):
    return {"username": username, "email": email or f"{username}@example.gov.ph", "id": pk, "moa": moa}


FOUND = [user("ocm.a", "ocm", 1), user("ocm.b", "ocm", 2), user("moh.a", "moh", 3)]


def test_all_users_found():
    report = verify_users(FILES, FOUND)
    assert report["users"] == 3
    assert report["found"] == 3
    assert report["missing"] == []
    assert report["wrong_moa"] == []


def test_missing_user_listed():
    report = verify_users(FILES, FOUND[:2])
    assert report["found"] == 2
    assert report["missing"] == [{"username": "moh.a", "moa": "moh"}]


def test_user_in_wrong_moa_listed():
    report = verify_users(FILES, [user("ocm.a", "ocm", 1), user("ocm.b", "moh", 2), user("moh.a", "moh", 3)])
    assert report["wrong_moa"] == [{"username": "ocm.b", "moa": "ocm", "found_moa": "moh"}]


def test_moa_check_can_be_skipped():
    found = [dict(entry, moa=None) for entry in FOUND]
    assert verify_users(FILES, found, check_moa=False)["wrong_moa"] == []


def test_created_are_users_new_since_snapshot():
    report = verify_users(FILES, FOUND, existing_before=["ocm.a"])
    assert [entry["username"] for entry in report["created"]] == ["ocm.b", "moh.a"]
    assert report["moas"] == [
        {"code": "ocm", "name": "Office of the Chief Minister", "users": 2, "created": 1},
        {"code": "moh", "name": "Ministry of Health", "users": 1, "created": 1},
    ]


def test_nothing_created_without_snapshot():
    """A verify-only run imports nothing, so it creates nobody."""
    assert verify_users(FILES, FOUND)["created"] == []


CREATED = [user("ocm.b", "ocm", 2, "Ocm.B@Example.gov.ph"), user("moh.a", "moh", 3)]


def test_file_recipients_match_without_case():
    outputs = ["To: ocm.b@example.gov.ph\n", "to: moh.a@example.gov.ph\nTo: someone@else.example\n"]
    outcome = email_outcome(CREATED, outputs, "files")
    assert [entry["username"] for entry in outcome["sent"]] == ["ocm.b", "moh.a"]
    assert outcome["pending"] == []


def test_file_recipient_with_display_name():
    outcome = email_outcome(CREATED[:1], ['To: "Ocm B" <ocm.b@example.gov.ph>\n'], "files")
    assert outcome["pending"] == []


def test_missing_email_pending():
    outcome = email_outcome(CREATED, ["To: ocm.b@example.gov.ph\n", ""], "files")
    assert [entry["username"] for entry in outcome["pending"]] == ["moh.a"]


def test_journal_matches_primary_keys():
    log = "INFO sent the welcome email to user 3\nINFO sent the welcome email to user 21\n"
    outcome = email_outcome(CREATED, [log], "journal", sent_log_regex=r"sent the welcome email to user (\d+)")
    assert [entry["username"] for entry in outcome["sent"]] == ["moh.a"]
    assert [entry["username"] for entry in outcome["pending"]] == ["ocm.b"]


def test_journal_regex_needs_group():
    with pytest.raises(AnsibleFilterError, match="needs a group that captures the user's primary key"):
        email_outcome(CREATED, [""], "journal", sent_log_regex="sent the welcome email")


def test_no_check_counts_all_sent():
    assert email_outcome(CREATED, [], "none") == {"sent": CREATED, "pending": []}


def test_unknown_check_rejected():
    with pytest.raises(AnsibleFilterError, match="rollout_email_check must be one of files, journal, none"):
        email_outcome(CREATED, [], "smtp")


def state(pending=()):
    users = verify_users(FILES, FOUND, existing_before=["ocm.a"])
    sent = [entry for entry in users["created"] if entry["username"] not in {p["username"] for p in pending}]
    return {
        "wave": {"wave": 2, "name": "Social services", "cumulative_moas": 5, "cumulative_users": 30},
        "forced": False,
        "users": users,
        "emails": {"check": "files", "sent": sent, "pending": list(pending), "failure_log": ["a failure"]},
        "ready": ["lb1: 3 of 3 requests returned 200 after the wave"],
        "headroom": {
            "max_users": 40,
            "max_users_is_search_limit": False,
            "headroom_users": 10,
            "headroom_percent": 33,
            "first_limits": ["the plan needs 3 web servers"],
            "figures": {"web_servers": {"have": 2, "need": 2}},
        },
    }


def test_record_keeps_counts_and_time():
    record = build_record(state(), "2026-02-02T01:02:03Z")
    assert record == {
        "wave": 2,
        "name": "Social services",
        "completed_at": "2026-02-02T01:02:03Z",
        "forced": False,
        "moas": [
            {"code": "ocm", "name": "Office of the Chief Minister", "users": 2, "created": 1},
            {"code": "moh", "name": "Ministry of Health", "users": 1, "created": 1},
        ],
        "users_total": 3,
        "users_created": 2,
        "emails": {"check": "files", "expected": 2, "sent": 2},
    }


def test_summary_of_completed_wave_from_record():
    record = build_record(state(), "2026-02-02T01:02:03Z")
    summary = build_summary(state(), record)
    assert summary["status"] == "completed"
    assert summary["completed_at"] == "2026-02-02T01:02:03Z"
    assert summary["users"] == {"total": 3, "created": 2}
    assert summary["emails"] == {"check": "files", "expected": 2, "sent": 2, "failed": []}
    assert summary["capacity"]["headroom_users"] == 10
    assert summary["cumulative"] == {"moas": 5, "users": 30}


def test_rerun_summary_identical():
    """A verify-only rerun has no new users but the same record, so the same summary."""
    record = build_record(state(), "2026-02-02T01:02:03Z")
    rerun = state()
    rerun["users"] = verify_users(FILES, FOUND)
    rerun.pop("emails")
    assert build_summary(rerun, record) == build_summary(state(), record)


def test_summary_of_failed_emails_lists_users():
    summary = build_summary(state(pending=[CREATED[1]]))
    assert summary["status"] == "emails_failed"
    assert summary["completed_at"] is None
    assert summary["emails"]["failed"] == [{"username": "moh.a", "email": "moh.a@example.gov.ph", "moa": "moh"}]
    assert summary["emails"]["failure_log"] == ["a failure"]


def test_summary_rejects_bad_state():
    with pytest.raises(AnsibleFilterError, match="state must be the rollout run's state dict"):
        build_summary([])


def test_rerun_record_adds_to_first():
    first = build_record(state(), "2026-02-02T01:02:03Z")
    rerun = state()
    rerun["record"] = first
    rerun["users"] = verify_users(FILES, FOUND, existing_before=["ocm.a", "ocm.b"])
    rerun["emails"] = {"check": "files", "sent": rerun["users"]["created"], "pending": []}
    record = build_record(rerun, "2026-03-03T00:00:00Z")
    assert record["completed_at"] == "2026-02-02T01:02:03Z"
    assert record["updated_at"] == "2026-03-03T00:00:00Z"
    assert record["users_created"] == 3
    assert record["emails"] == {"check": "files", "expected": 3, "sent": 3}
    assert [moa["created"] for moa in record["moas"]] == [1, 2]


def test_first_record_has_no_update_time():
    assert "updated_at" not in build_record(state(), "2026-02-02T01:02:03Z")
