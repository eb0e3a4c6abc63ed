"""Import the users of one MOA from a CSV file, all or nothing.

The file has a header line with the columns username, email, first_name,
last_name and moa. Every row is validated before anything is written. When
one row is invalid, the command lists each bad row with its line number and
reason, and imports nothing. A user that already exists with the same data
is left alone, so running the same file twice changes nothing. Each newly
created user gets a welcome email from a Celery task once the import has
committed.
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models.functions import Lower

from bmms_reference.core.models import Moa, User
from bmms_reference.core.queueing import delay_with_retry
from bmms_reference.core.tasks import send_welcome_email

COLUMNS = ("username", "email", "first_name", "last_name", "moa")
NAME_FIELDS = ("email", "first_name", "last_name")
MAX_NAME_LENGTH = 150


@dataclass(frozen=True)
class Row:
    line: int
    username: str
    email: str
    first_name: str
    last_name: str
    moa: str


def read_rows(path: Path) -> list[Row]:
    """Read the CSV file ("-" reads standard input); raise CommandError when it cannot be read as one."""
    try:
        if str(path) == "-":
            return parse_rows(path, io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline=""))
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return parse_rows(path, handle)
    except FileNotFoundError:
        raise CommandError(f"{path}: file not found") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise CommandError(f"{path}: not a readable UTF-8 CSV file: {error}") from None


def parse_rows(path: Path, handle) -> list[Row]:
    reader = csv.DictReader(handle)
    missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise CommandError(f"{path}: line 1: missing column(s) {', '.join(missing)}, expected {', '.join(COLUMNS)}")
    # reader.line_num counts physical lines, so a quoted field that spans
    # lines reports the line where its row ends.
    return [Row(reader.line_num, *((record.get(column) or "").strip() for column in COLUMNS)) for record in reader]


def validate_rows(rows: list[Row], moa: Moa) -> list[str]:
    """Return one message per problem, ordered by line, each starting with its line number."""
    problems = []
    username_validator = UnicodeUsernameValidator()
    known_moas = set(Moa.objects.using("default").values_list("code", flat=True))
    first_line_of: dict[tuple[str, str], int] = {}
    for row in rows:
        reasons = []
        if not row.username:
            reasons.append("username is empty")
        else:
            try:
                username_validator(row.username)
            except ValidationError:
                reasons.append(f"username {row.username!r} may contain only letters, digits and @ . + - _")
        try:
            validate_email(row.email)
        except ValidationError:
            reasons.append(f"email {row.email!r} is not a valid email address")
        for field in ("first_name", "last_name"):
            if len(getattr(row, field)) > MAX_NAME_LENGTH:
                reasons.append(f"{field} is longer than {MAX_NAME_LENGTH} characters")
        if row.moa not in known_moas:
            reasons.append(f"MOA {row.moa!r} is unknown")
        elif row.moa != moa.code:
            reasons.append(f"MOA {row.moa!r} differs from the MOA being imported, {moa.code!r}")
        for field in ("username", "email"):
            value = getattr(row, field).lower()
            if not value:
                continue
            first = first_line_of.setdefault((field, value), row.line)
            if first != row.line:
                reasons.append(f"{field} {getattr(row, field)!r} repeats line {first}")
        problems.extend((row.line, reason) for reason in reasons)
    problems.extend(conflicts_with_existing_users(rows, moa))
    # sorted() is stable, so the problems of one line keep their order.
    return [f"line {line}: {reason}" for line, reason in sorted(problems, key=lambda problem: problem[0])]


def conflicts_with_existing_users(rows: list[Row], moa: Moa) -> list[tuple[int, str]]:
    """Report rows that would take over another MOA's user or another user's email."""
    problems = []
    users = User.objects.using("default")
    by_username = {user.username: user for user in users.filter(username__in=[row.username for row in rows])}
    emails = {row.email.lower() for row in rows}
    email_owners = {
        user.email.lower(): user.username
        for user in users.annotate(email_lower=Lower("email")).filter(email_lower__in=emails).only("username", "email")
    }
    for row in rows:
        existing = by_username.get(row.username)
        if existing is not None and existing.moa_id != moa.pk:
            problems.append((row.line, f"user {row.username!r} already exists in another MOA"))
        owner = email_owners.get(row.email.lower())
        if owner is not None and owner != row.username:
            problems.append((row.line, f"email {row.email!r} already belongs to user {owner!r}"))
    return problems


class Command(BaseCommand):
    help = "Import the users of one MOA from a CSV file (username,email,first_name,last_name,moa)."

    def add_arguments(self, parser):
        parser.add_argument("moa", help="code of the MOA the users belong to")
        parser.add_argument("csv_file", type=Path, help="path of the CSV file, or - for standard input")
        parser.add_argument("--dry-run", action="store_true", help="validate the file and write nothing")

    def handle(self, *args, **options):
        try:
            moa = Moa.objects.using("default").get(code=options["moa"])
        except Moa.DoesNotExist:
            raise CommandError(f"MOA {options['moa']!r} not found: create it first or check the code") from None

        rows = read_rows(options["csv_file"])
        if not rows:
            raise CommandError(f"{options['csv_file']}: no user rows after the header")
        problems = validate_rows(rows, moa)
        if problems:
            raise CommandError(
                f"{options['csv_file']}: {len(problems)} problem(s), nothing imported:\n" + "\n".join(problems)
            )
        if options["dry_run"]:
            self.stdout.write(f"{len(rows)} row(s) valid; nothing written (dry run)")
            return

        created = updated = unchanged = 0
        with transaction.atomic(using="default"):
            for row in rows:
                user = User.objects.using("default").filter(username=row.username).first()
                if user is None:
                    user = User(username=row.username, moa=moa)
                    user.set_unusable_password()
                    for field in NAME_FIELDS:
                        setattr(user, field, getattr(row, field))
                    user.save(using="default")
                    created += 1
                    transaction.on_commit(lambda pk=user.pk: delay_with_retry(send_welcome_email, pk), using="default")
                    continue
                changes = [field for field in NAME_FIELDS if getattr(user, field) != getattr(row, field)]
                if changes:
                    for field in changes:
                        setattr(user, field, getattr(row, field))
                    user.save(using="default", update_fields=changes)
                    updated += 1
                else:
                    unchanged += 1
        self.stdout.write(f"created {created}, updated {updated}, unchanged {unchanged} user(s) in MOA {moa.code}")
