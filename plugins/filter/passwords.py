"""Password verifier filters for PostgreSQL and PgBouncer.

``pgbouncer_md5`` and ``scram_sha_256`` compute the verifiers PostgreSQL
stores in ``pg_authid.rolpassword``; ``pgbouncer_userlist`` renders PgBouncer's
``auth_file``. Documentation for ``ansible-doc`` lives beside this file in one
YAML file per filter. Text is encoded as UTF-8, so the database and clients
must use UTF-8 for non-ASCII names and passwords to match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import stringprep
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.plugin_utils.values import (
    describe_type,
)

# PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes. Doubled
# quotes keep such a name under PgBouncer's 128-byte MAX_USERNAME.
MAX_USER_NAME_BYTES = 63
# Current PgBouncer source rejects an auth_file password field of
# MAX_PASSWORD (2048) bytes or more, counted after doubling its quotes.
MAX_USERLIST_PASSWORD_BYTES = 2047
# RFC 7677 recommends at least 4096 iterations. PostgreSQL stores the count
# as a 32-bit signed integer.
MIN_SCRAM_ITERATIONS = 4096
MAX_SCRAM_ITERATIONS = 2**31 - 1
SCRAM_SALT_BYTES = 16
MIN_SALT_SEED_CHARACTERS = 16
MD5_HEX_DIGITS = "0123456789abcdef"
SCHEMES = ("scram-sha-256", "md5", "plain")


def encode_text(description: str, value: str) -> bytes:
    """Encode ``value`` as UTF-8, rejecting NUL and lone surrogates.

    PostgreSQL strings end at a NUL byte, so a value containing one cannot be
    stored as given.
    """
    if "\x00" in value:
        raise AnsibleFilterError(
            f"{description} contains a NUL character, which PostgreSQL cannot store"
        )
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise AnsibleFilterError(
            f"{description} is not valid Unicode text: {error.reason}"
            f" at index {error.start}"
        ) from None


def check_password(password: object) -> str:
    """Validate a plain-text password and return it unchanged."""
    if not isinstance(password, str):
        raise AnsibleFilterError(
            f"the password must be a string, got {describe_type(password)}"
        )
    if not password:
        raise AnsibleFilterError(
            "the password is empty; PostgreSQL does not accept an empty password"
        )
    encode_text("the password", password)
    return password


def check_user_name(user: object) -> str:
    """Validate a PostgreSQL role name and return it unchanged."""
    if not isinstance(user, str):
        raise AnsibleFilterError(
            f"the user name must be a string, got {user!r} ({describe_type(user)})"
        )
    if not user:
        raise AnsibleFilterError("the user name is empty")
    size = len(encode_text(f"the user name {user!r}", user))
    if size > MAX_USER_NAME_BYTES:
        raise AnsibleFilterError(
            f"the user name {user!r} is {size} bytes in UTF-8; PostgreSQL truncates"
            f" role names to {MAX_USER_NAME_BYTES} bytes, so shorten it"
        )
    return user


def is_md5_verifier(value: str) -> bool:
    return (
        len(value) == 35
        and value.startswith("md5")
        and all(c in MD5_HEX_DIGITS for c in value[3:])
    )


def decode_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def is_scram_verifier(value: str) -> bool:
    """Tell whether ``value`` parses as PostgreSQL's SCRAM-SHA-256 secret format."""
    parts = value.split("$")
    if len(parts) != 3 or parts[0] != "SCRAM-SHA-256":
        return False
    iterations, _, salt = parts[1].partition(":")
    stored_key, _, server_key = parts[2].partition(":")
    if not iterations.isdigit() or not decode_base64(salt):
        return False
    keys = (decode_base64(stored_key), decode_base64(server_key))
    return all(key is not None and len(key) == 32 for key in keys)


def is_password_verifier(value: str) -> bool:
    """Tell whether PostgreSQL would store ``value`` as an already hashed password."""
    return is_md5_verifier(value) or is_scram_verifier(value)


def reject_verifier(password: str) -> None:
    if is_password_verifier(password):
        raise AnsibleFilterError(
            "the password is already an MD5 or SCRAM verifier; PostgreSQL stores"
            " such a value unchanged, so pass it on as it is instead of hashing it"
        )


def pgbouncer_md5(password: object, user: object) -> str:
    """Return PostgreSQL's MD5 verifier for ``password`` and ``user``.

    The verifier is "md5" followed by the hexadecimal MD5 digest of the
    password and then the user name, both encoded as UTF-8.
    """
    text = check_password(password)
    name = check_user_name(user)
    reject_verifier(text)
    salted = text.encode("utf-8") + name.encode("utf-8")
    return "md5" + hashlib.md5(salted, usedforsecurity=False).hexdigest()


def is_prohibited(character: str) -> bool:
    """Tell whether SASLprep (RFC 4013) prohibits ``character``.

    Characters unassigned in Unicode 3.2 (RFC 3454 table A.1) count as
    prohibited too, as they do in PostgreSQL.
    """
    return any(
        check(character)
        for check in (
            stringprep.in_table_c12,
            stringprep.in_table_c21_c22,
            stringprep.in_table_c3,
            stringprep.in_table_c4,
            stringprep.in_table_c5,
            stringprep.in_table_c6,
            stringprep.in_table_c7,
            stringprep.in_table_c8,
            stringprep.in_table_c9,
            stringprep.in_table_a1,
        )
    )


def saslprep(password: str) -> str:
    """Prepare a password for SCRAM the way PostgreSQL's pg_saslprep does.

    ASCII passwords pass unchanged. Otherwise non-ASCII spaces become spaces,
    characters "commonly mapped to nothing" are dropped and the result is
    NFKC-normalized. If the mapped password is empty, contains a prohibited
    or unassigned character, or breaks the bidirectional rule, PostgreSQL
    hashes the original password instead, and so does this function.
    PostgreSQL tests those rules on the mapped characters before
    normalization, as done here.
    """
    if password.isascii():
        return password
    mapped = [
        " " if stringprep.in_table_c12(c) else c
        for c in password
        if not stringprep.in_table_b1(c)
    ]
    if not mapped or any(is_prohibited(c) for c in mapped):
        return password
    if any(stringprep.in_table_d1(c) for c in mapped):
        # RFC 3454 section 6: right-to-left text must not contain
        # left-to-right characters, and must start and end right-to-left.
        if any(stringprep.in_table_d2(c) for c in mapped):
            return password
        if not (
            stringprep.in_table_d1(mapped[0]) and stringprep.in_table_d1(mapped[-1])
        ):
            return password
    return unicodedata.normalize("NFKC", "".join(mapped))


def derive_salt(salt_seed: object, user: str) -> bytes:
    """Derive a user's SCRAM salt from the secret seed.

    The salt is the first 16 bytes of HMAC-SHA256 with ``salt_seed`` as key
    and the UTF-8 user name as message.
    """
    if not isinstance(salt_seed, str):
        raise AnsibleFilterError(
            f"salt_seed must be a string, got {describe_type(salt_seed)}"
        )
    if len(salt_seed) < MIN_SALT_SEED_CHARACTERS:
        raise AnsibleFilterError(
            f"salt_seed has {len(salt_seed)} characters; use a random secret of at"
            f" least {MIN_SALT_SEED_CHARACTERS} characters, kept in the vault"
        )
    key = encode_text("salt_seed", salt_seed)
    digest = hmac.new(key, user.encode("utf-8"), hashlib.sha256).digest()
    return digest[:SCRAM_SALT_BYTES]


def explicit_salt(salt: object) -> bytes:
    """Return salt bytes given as bytes or as the Base64 text a verifier shows."""
    if isinstance(salt, (bytes, bytearray)):
        raw = bytes(salt)
    elif isinstance(salt, str):
        decoded = decode_base64(salt)
        if decoded is None:
            raise AnsibleFilterError(
                "salt must be Base64 text such as 'AAECAwQFBgcICQoLDA0ODw==',"
                f" got {salt!r}"
            )
        raw = decoded
    else:
        raise AnsibleFilterError(
            f"salt must be Base64 text or bytes, got {describe_type(salt)}"
        )
    if not raw:
        raise AnsibleFilterError(
            "salt is empty; give at least one byte (PostgreSQL itself uses 16)"
        )
    return raw


def check_iterations(iterations: object) -> int:
    if isinstance(iterations, bool) or not isinstance(iterations, int):
        raise AnsibleFilterError(
            f"iterations must be an integer, got {iterations!r}"
            f" ({describe_type(iterations)})"
        )
    if not MIN_SCRAM_ITERATIONS <= iterations <= MAX_SCRAM_ITERATIONS:
        raise AnsibleFilterError(
            f"iterations must be from {MIN_SCRAM_ITERATIONS} (the minimum RFC 7677"
            f" recommends) to {MAX_SCRAM_ITERATIONS}, got {iterations}"
        )
    return iterations


def choose_salt(salt: object, user: object, salt_seed: object) -> bytes:
    """Return the explicit salt or one derived from the seed, never a random one."""
    if salt is not None and salt_seed is not None:
        raise AnsibleFilterError("give either salt or salt_seed, not both")
    if salt is not None:
        return explicit_salt(salt)
    if salt_seed is None:
        raise AnsibleFilterError(
            "scram_sha_256 needs salt_seed and user, or an explicit salt, because a"
            " random salt would give a different verifier on every run and break"
            " idempotence"
        )
    if user is None:
        raise AnsibleFilterError(
            "salt_seed needs the user name too, because the salt is derived from both"
        )
    return derive_salt(salt_seed, check_user_name(user))


def scram_sha_256(
    password: object,
    salt: object = None,
    iterations: object = MIN_SCRAM_ITERATIONS,
    user: object = None,
    salt_seed: object = None,
) -> str:
    """Return a PostgreSQL SCRAM-SHA-256 verifier (RFC 5802, RFC 7677).

    The format is ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``
    with Base64 fields. The salt is ``salt`` when given, otherwise derived
    from ``salt_seed`` and ``user`` so that reruns yield the same verifier.
    """
    text = check_password(password)
    reject_verifier(text)
    count = check_iterations(iterations)
    salt_bytes = choose_salt(salt, user, salt_seed)

    prepared = saslprep(text).encode("utf-8")
    salted = hashlib.pbkdf2_hmac("sha256", prepared, salt_bytes, count)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    salt_text, stored_text, server_text = (
        base64.b64encode(data).decode("ascii")
        for data in (salt_bytes, stored_key, server_key)
    )
    return f"SCRAM-SHA-256${count}:{salt_text}${stored_text}:{server_text}"


def quote_field(value: str) -> str:
    """Wrap one auth_file field in double quotes, doubling each quote inside."""
    return '"' + value.replace('"', '""') + '"'


def userlist_entries(users: object) -> list[tuple[object, object]]:
    """Return (name, password) pairs from a list of dicts or a dict of names."""
    if isinstance(users, Mapping):
        return list(users.items())
    if isinstance(users, str) or not isinstance(users, (list, tuple)):
        raise AnsibleFilterError(
            "users must be a list of dicts with name and password, or a dict of"
            f" names to passwords; got {describe_type(users)}"
        )
    entries = []
    for index, entry in enumerate(users):
        if (
            not isinstance(entry, Mapping)
            or "name" not in entry
            or "password" not in entry
        ):
            raise AnsibleFilterError(
                f"users[{index}] must be a dict with the keys name and password"
            )
        entries.append((entry["name"], entry["password"]))
    return entries


def reject_control_characters(description: str, value: str) -> None:
    """Reject characters that would break an auth_file entry across lines."""
    for character in value:
        if unicodedata.category(character) == "Cc":
            raise AnsibleFilterError(
                f"{description} contains the control character U+{ord(character):04X},"
                " which userlist.txt cannot hold"
            )


def userlist_secret(
    name: str, password: str, scheme: str, salt_seed: object, iterations: object
) -> str:
    """Return the second auth_file field for one user."""
    if scheme == "plain" or is_password_verifier(password):
        return password
    if scheme == "md5":
        return pgbouncer_md5(password, name)
    if salt_seed is None:
        raise AnsibleFilterError(
            f"scheme scram-sha-256 needs salt_seed to hash the password of {name!r}"
            " idempotently; pass salt_seed from the vault, or give a precomputed"
            " verifier"
        )
    return scram_sha_256(
        password, iterations=iterations, user=name, salt_seed=salt_seed
    )


def check_plain_field(user: str, secret: str) -> None:
    reject_control_characters(f"the password of {user!r}", secret)
    escaped_bytes = len(secret.replace('"', '""').encode("utf-8"))
    if escaped_bytes > MAX_USERLIST_PASSWORD_BYTES:
        raise AnsibleFilterError(
            f"the password of {user!r} is too long for PgBouncer's auth_file: at"
            f" most {MAX_USERLIST_PASSWORD_BYTES} bytes after doubling its quotes,"
            f" got {escaped_bytes}"
        )


def pgbouncer_userlist(
    users: object,
    scheme: object = "scram-sha-256",
    salt_seed: object = None,
    iterations: object = MIN_SCRAM_ITERATIONS,
) -> str:
    """Render PgBouncer's auth_file (userlist.txt), one line per user.

    Each line is ``"name" "secret"``. Plain-text passwords are hashed with
    ``scheme``; a password that already is an MD5 or SCRAM verifier is
    written unchanged, as PostgreSQL would store it. Lines keep the input
    order and each ends with a newline.
    """
    if scheme not in SCHEMES:
        raise AnsibleFilterError(
            f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}"
        )
    lines = []
    seen: set[str] = set()
    for name, password in userlist_entries(users):
        user = check_user_name(name)
        reject_control_characters(f"the user name {user!r}", user)
        if user in seen:
            raise AnsibleFilterError(
                f"the user name {user!r} appears twice; give each user once"
            )
        seen.add(user)
        secret = userlist_secret(
            user, check_password(password), str(scheme), salt_seed, iterations
        )
        if scheme == "plain":
            check_plain_field(user, secret)
        lines.append(f"{quote_field(user)} {quote_field(secret)}\n")
    return "".join(lines)


class FilterModule:
    """Map the filter names to their functions."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "pgbouncer_md5": pgbouncer_md5,
            "scram_sha_256": scram_sha_256,
            "pgbouncer_userlist": pgbouncer_userlist,
        }
