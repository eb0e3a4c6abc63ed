"""Results of a rollout wave: imported users, welcome emails, the completion record and the summary.

The playbook gathers raw data on the hosts (the users the application
lists, the email files or worker log lines) and these functions turn it
into what it stores and prints, so the rules are unit-tested.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.plugin_utils.values import describe_type

EMAIL_CHECKS = ("files", "journal", "none")
# A recipient header of a message that Django's filebased backend wrote.
TO_HEADER = re.compile(r"^to:(.*)$", re.IGNORECASE | re.MULTILINE)
ADDRESS = re.compile(r"[^\s<>,;\"']+@[^\s<>,;\"']+")


def require_list(name: str, value: object) -> Sequence[Any]:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise AnsibleFilterError(f"{name} must be a list, got {describe_type(value)}")
    return value


def verify_users(
    files: object, found: object, existing_before: object = None, check_moa: object = True
) -> dict[str, Any]:
    """Compare the users of a wave's CSV files with the users the application lists.

    ``files`` is the ``files`` list of ``rollout_csv_check`` and ``found`` the
    users the query printed (username, email, id, moa). ``existing_before``
    names the users that existed before the import; every other user found
    counts as created by this run. None means nothing was imported in this
    run, so nothing counts as created. With ``check_moa``, a user whose
    ``moa`` differs from its file's MOA code is listed in ``wrong_moa``.
    """
    found_by_name = {str(user["username"]): user for user in require_list("found", found)}
    before = None if existing_before is None else set(require_list("existing_before", existing_before))
    missing = []
    wrong_moa = []
    created = []
    per_moa = []
    for entry in require_list("files", files):
        code = entry["code"]
        created_here = 0
        for username in entry["usernames"]:
            user = found_by_name.get(username)
            if user is None:
                missing.append({"username": username, "moa": code})
                continue
            if check_moa and user.get("moa") != code:
                wrong_moa.append({"username": username, "moa": code, "found_moa": user.get("moa")})
            if before is not None and username not in before:
                created.append({**user, "moa": code})
                created_here += 1
        per_moa.append({"code": code, "name": entry["name"], "users": len(entry["usernames"]), "created": created_here})
    total = sum(len(entry["usernames"]) for entry in files)
    return {
        "users": total,
        "found": total - len(missing),
        "missing": missing,
        "wrong_moa": wrong_moa,
        "created": created,
        "moas": per_moa,
    }


def email_outcome(created: object, outputs: object, check: object, sent_log_regex: object = "") -> dict[str, Any]:
    """Split the users created by a wave into those whose welcome email was sent and those still pending.

    ``outputs`` are the texts read on each Celery worker host. With
    ``check`` ``files`` they are the ``To:`` header lines of the messages
    written since the wave started, matched by address without regard to
    case. With ``journal`` they are worker log lines, and the first group of
    ``sent_log_regex`` is the user's primary key. With ``none`` every email
    counts as sent, because nothing is checked.
    """
    users = require_list("created", created)
    texts = [str(text) for text in require_list("outputs", outputs)]
    if check not in EMAIL_CHECKS:
        raise AnsibleFilterError(f"rollout_email_check must be one of {', '.join(EMAIL_CHECKS)}, got {check!r}")
    if check == "none":
        return {"sent": list(users), "pending": []}

    if check == "files":
        recipients = set()
        for text in texts:
            for header in TO_HEADER.findall(text):
                recipients.update(address.lower() for address in ADDRESS.findall(header))
        is_sent = [str(user["email"]).lower() in recipients for user in users]
    else:
        try:
            pattern = re.compile(str(sent_log_regex))
        except re.error as error:
            raise AnsibleFilterError(f"rollout_email_sent_log_regex {sent_log_regex!r} is invalid: {error}") from None
        if pattern.groups < 1:
            raise AnsibleFilterError(
                f"rollout_email_sent_log_regex {sent_log_regex!r} needs a group that captures the user's primary key"
            )
        logged_ids = {match.group(1) for text in texts for match in pattern.finditer(text)}
        is_sent = [str(user["id"]) in logged_ids for user in users]
    return {
        "sent": [user for user, sent in zip(users, is_sent) if sent],
        "pending": [user for user, sent in zip(users, is_sent) if not sent],
    }


def build_record(state: object, completed_at: object) -> dict[str, Any]:
    """Return the completion record of a wave from the run's state, as stored in the local fact.

    The record keeps what the wave did when it completed, so a rerun can
    print the same summary without importing again. When ``state`` holds
    the record of an earlier completion (a run with ``rollout_rerun``), the
    new record keeps its ``completed_at``, adds the users and emails of
    this run to its counts, and sets ``updated_at`` to ``completed_at``.
    """
    if not isinstance(state, Mapping):
        raise AnsibleFilterError(f"state must be the rollout run's state dict, got {describe_type(state)}")
    wave = state["wave"]
    users = state["users"]
    emails = state.get("emails") or {}
    previous = state.get("record") or {}
    created_before = {moa["code"]: moa["created"] for moa in previous.get("moas", [])}
    emails_before = previous.get("emails") or {}

    record = {
        "wave": wave["wave"],
        "name": wave["name"],
        "completed_at": previous.get("completed_at", str(completed_at)),
        "forced": bool(previous.get("forced")) or bool(state.get("forced")),
        "moas": [{**moa, "created": moa["created"] + created_before.get(moa["code"], 0)} for moa in users["moas"]],
        "users_total": users["users"],
        "users_created": len(users["created"]) + previous.get("users_created", 0),
        "emails": {
            "check": emails.get("check", emails_before.get("check", "none")),
            "expected": len(users["created"]) + emails_before.get("expected", 0),
            "sent": len(emails.get("sent", [])) + emails_before.get("sent", 0),
        },
    }
    if previous:
        record["updated_at"] = str(completed_at)
    return record


def build_summary(state: object, record: object = None) -> dict[str, Any]:
    """Return the wave summary written as JSON and Markdown.

    A completed wave is summarized from its ``record``, so rerunning it
    writes the same file again. Without a record the summary describes the
    failed run: status ``emails_failed`` with the users still waiting for
    their welcome email.
    """
    if not isinstance(state, Mapping):
        raise AnsibleFilterError(f"state must be the rollout run's state dict, got {describe_type(state)}")
    wave = state["wave"]
    users = state["users"]
    headroom = state["headroom"]
    summary: dict[str, Any] = {
        "wave": wave["wave"],
        "name": wave["name"],
        "cumulative": {"moas": wave["cumulative_moas"], "users": wave["cumulative_users"]},
        "verified": {"users": users["users"], "found": users["found"], "ready": state.get("ready", [])},
        "capacity": {
            "max_users": headroom["max_users"],
            "max_users_is_search_limit": headroom["max_users_is_search_limit"],
            "headroom_users": headroom["headroom_users"],
            "headroom_percent": headroom["headroom_percent"],
            "first_limits": headroom["first_limits"],
            "figures": headroom["figures"],
        },
    }
    if record:
        summary.update(
            status="completed",
            completed_at=record["completed_at"],
            updated_at=record.get("updated_at"),
            forced=record["forced"],
            moas=record["moas"],
            users={"total": record["users_total"], "created": record["users_created"]},
            emails={**record["emails"], "failed": []},
        )
        return summary

    emails = state.get("emails") or {}
    pending = emails.get("pending", [])
    summary.update(
        status="emails_failed",
        completed_at=None,
        updated_at=None,
        forced=bool(state.get("forced")),
        moas=users["moas"],
        users={"total": users["users"], "created": len(users["created"])},
        emails={
            "check": emails.get("check", "none"),
            "expected": len(users["created"]),
            "sent": len(emails.get("sent", [])),
            "failed": [{"username": user["username"], "email": user["email"], "moa": user["moa"]} for user in pending],
            "failure_log": emails.get("failure_log", []),
        },
    )
    return summary
