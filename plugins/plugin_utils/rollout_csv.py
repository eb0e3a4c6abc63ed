"""Controller-side checks of the user CSV files of one rollout wave.

The checks run before any host changes and cover every file of the wave at
once, so an operator sees all bad rows in one run. They repeat the row rules
of the reference application's ``import_users`` command: columns, user
names, email addresses, name lengths and the MOA column. They also find
what a per-file command cannot see, a user name or email address that
appears in two files of the same wave. The application's own dry run
remains the final check, because only it sees the users already in the
database.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.plugin_utils.values import describe_type

# The columns of the reference application's import_users command.
DEFAULT_COLUMNS = ("username", "email", "first_name", "last_name", "moa")
DEFAULT_NAME_COLUMNS = ("first_name", "last_name")

# Django's UnicodeUsernameValidator and the length limit of its User model.
USERNAME_PATTERN = re.compile(r"^[\w.@+-]+\Z")
USERNAME_MAX_LENGTH = 150
NAME_MAX_LENGTH = 150
# A deliberately loose address check: one @, no spaces, a dot in the domain.
# Django's validate_email in the application's dry run is stricter.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+\Z")


def resolve_path(csv_path: str, csv_dir: str) -> str:
    """Return ``csv_path`` as an absolute path, taking a relative one from ``csv_dir``."""
    expanded = os.path.expanduser(csv_path)
    if os.path.isabs(expanded):
        return expanded
    return os.path.join(csv_dir, expanded)


def containing_inventory(path: str, inventory_dirs: Sequence[str]) -> str | None:
    """Return the inventory directory that contains ``path``, or None."""
    real_path = os.path.realpath(path)
    for directory in inventory_dirs:
        real_directory = os.path.realpath(str(directory))
        if os.path.commonpath([real_path, real_directory]) == real_directory:
            return str(directory)
    return None


def read_text(path: str) -> str:
    """Read a CSV file as UTF-8, dropping a byte order mark; raise OSError or UnicodeDecodeError."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return handle.read()


def check_row(row: Mapping[str, str], code: str, columns: Mapping[str, str], name_columns: Sequence[str]) -> list[str]:
    """Return the reasons one CSV row is invalid, in column order."""
    reasons = []
    username = row.get(columns["username"], "")
    if not username:
        reasons.append("username is empty")
    elif len(username) > USERNAME_MAX_LENGTH:
        reasons.append(f"username {username!r} is longer than {USERNAME_MAX_LENGTH} characters")
    elif not USERNAME_PATTERN.match(username):
        reasons.append(f"username {username!r} may contain only letters, digits and @ . + - _")
    email = row.get(columns["email"], "")
    if not EMAIL_PATTERN.match(email):
        reasons.append(f"email {email!r} is not a valid email address")
    for column in name_columns:
        if len(row.get(column, "")) > NAME_MAX_LENGTH:
            reasons.append(f"{column} is longer than {NAME_MAX_LENGTH} characters")
    moa_column = columns["moa"]
    if moa_column and row.get(moa_column, "") != code:
        reasons.append(f"{moa_column} {row.get(moa_column, '')!r} differs from the MOA of this file, {code!r}")
    return reasons


def parse_file(
    text: str, label: str, code: str, required: Sequence[str], columns: Mapping[str, str], name_columns: Sequence[str]
) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """Parse one file; return its rows with their line numbers and the problems found."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
        missing = [column for column in required if column not in header]
        if missing:
            return [], [f"{label}: line 1: missing column(s) {', '.join(missing)}; expected {', '.join(required)}"]
        rows = []
        problems = []
        for record in reader:
            row = {str(key): (value or "").strip() for key, value in record.items() if isinstance(value, str)}
            rows.append((reader.line_num, row))
            problems += [
                f"{label}: line {reader.line_num}: {reason}" for reason in check_row(row, code, columns, name_columns)
            ]
    except csv.Error as error:
        return [], [f"{label}: not a readable CSV file: {error}"]
    if not rows:
        problems.append(f"{label}: no user rows after the header")
    return rows, problems


def check_wave_csvs(
    moas: object,
    csv_dir: object,
    required_columns: object = DEFAULT_COLUMNS,
    username_column: object = "username",
    email_column: object = "email",
    moa_column: object = "moa",
    name_columns: object = DEFAULT_NAME_COLUMNS,
    inventory_dirs: object = (),
) -> dict[str, Any]:
    """Read and check the CSV files of a wave's MOAs on the controller.

    ``moas`` is the ``moas`` list of a ``rollout_wave`` result. Returns a dict
    with ``problems`` (one message per bad file or row, each naming the file
    and line) and ``files``: each readable file's MOA entry with its absolute
    ``path``, number of ``rows``, ``usernames`` and ``emails``. An empty
    ``moa_column`` skips the check that each row names the file's MOA.
    A file inside one of ``inventory_dirs`` (directory inventory sources)
    is rejected unread, because Ansible parses every file there as an
    inventory and turns CSV rows into hosts.
    """
    if not isinstance(moas, Sequence) or isinstance(moas, (str, bytes)):
        raise AnsibleFilterError(f"moas must be the list of a wave's MOAs, got {describe_type(moas)}")
    if not isinstance(csv_dir, str) or not csv_dir:
        raise AnsibleFilterError(f"csv_dir must be the directory of the CSV files, got {csv_dir!r}")
    for name, value in (("username_column", username_column), ("email_column", email_column)):
        if not isinstance(value, str) or not value:
            raise AnsibleFilterError(f"{name} must be a column name, got {value!r}")
    if not isinstance(moa_column, str):
        raise AnsibleFilterError(f"moa_column must be a column name or '', got {moa_column!r}")
    for name, value in (
        ("required_columns", required_columns),
        ("name_columns", name_columns),
        ("inventory_dirs", inventory_dirs),
    ):
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
            raise AnsibleFilterError(f"{name} must be a list of column names, got {describe_type(value)}")
    columns = {"username": username_column, "email": email_column, "moa": moa_column}
    required = list(dict.fromkeys([*required_columns, *(column for column in columns.values() if column)]))

    problems: list[str] = []
    files = []
    first_seen: dict[tuple[str, str], str] = {}
    for moa in moas:
        code = moa["code"]
        label = moa["csv"]
        path = resolve_path(label, csv_dir)
        inventory_dir = containing_inventory(path, inventory_dirs)
        if inventory_dir:
            problems.append(
                f"{label}: {path} is inside the inventory directory {inventory_dir}, where Ansible reads every"
                " file as an inventory and turns CSV rows into hosts; move the CSV files and set rollout_csv_dir"
            )
            continue
        try:
            text = read_text(path)
        except FileNotFoundError:
            problems.append(f"{label}: file not found at {path} (MOA {code}); create it or fix csv in rollout_moas")
            continue
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"{label}: cannot be read as a UTF-8 text file: {error}")
            continue

        rows, file_problems = parse_file(text, label, code, required, columns, list(name_columns))
        problems += file_problems
        if len(rows) > moa["expected_users"]:
            problems.append(
                f"{label}: {len(rows)} user rows, but expected_users of {code} is {moa['expected_users']};"
                " raise expected_users in rollout_moas so that the capacity check counts every account"
            )
        for line, row in rows:
            for kind in ("username", "email"):
                value = row.get(columns[kind], "").lower()
                if not value:
                    continue
                place = f"{label} line {line}"
                earlier = first_seen.setdefault((kind, value), place)
                if earlier != place:
                    problems.append(f"{label}: line {line}: {kind} {row[columns[kind]]!r} repeats {earlier}")
        files.append(
            {
                **moa,
                "path": path,
                "rows": len(rows),
                "usernames": [row.get(columns["username"], "") for _, row in rows],
                "emails": [row.get(columns["email"], "") for _, row in rows],
            }
        )
    return {"problems": problems, "files": files}
