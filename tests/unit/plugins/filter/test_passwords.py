"""Unit tests for the pgbouncer_md5, scram_sha_256 and pgbouncer_userlist filters."""

import base64
import hashlib
import hmac

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.bmms.platform.plugins.filter.passwords import (
    FilterModule,
    pgbouncer_md5,
    pgbouncer_userlist,
    saslprep,
    scram_sha_256,
)

SALT = bytes(range(16))
SALT_BASE64 = "AAECAwQFBgcICQoLDA0ODw=="
SEED = "a-vaulted-secret-of-32-characters"
VECTOR = (
    "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$"
    "4iwPWZc/m9GVMparbKftDXOETaQlNVa54ouZ4m6W1Go=:"
    "6nz0RuXlwhkCFxHGR/5TBGqxy40TYkkg+pfSnDo8oDg="
)

# Passwords and user names with every character class the userlist must
# carry: double and single quotes, backslashes, spaces, $, % and non-ASCII.
AWKWARD_NAMES = [
    'say "hi"',
    "o'brien",
    "back\\slash",
    "two words",
    "$user%",
    "José",
    '""',
]
AWKWARD_PASSWORDS = [
    'pa"ss',
    "it's",
    "C:\\temp\\",
    " spaced out ",
    "$HOME%PATH%",
    "Ñandú-ß",
    '"',
]


def reference_verifier(prepared: bytes, salt: bytes, iterations: int = 4096) -> str:
    """Compute a SCRAM-SHA-256 verifier from prepared password bytes (RFC 5802)."""
    salted = hashlib.pbkdf2_hmac("sha256", prepared, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    fields = [base64.b64encode(x).decode() for x in (salt, stored_key, server_key)]
    return f"SCRAM-SHA-256${iterations}:{fields[0]}${fields[1]}:{fields[2]}"


def parse_userlist(text: str) -> list[tuple[str, str]]:
    """Read an auth_file the way PgBouncer's loader does.

    Whitespace between entries is skipped and a line starting with ';' is a
    comment. Each field starts with a double quote, and a doubled quote
    inside a field stands for one quote. The rest of the line after the
    second field is ignored.
    """
    entries = []
    position = 0

    def read_field(start: int) -> tuple[str, int]:
        assert text[start] == '"', f"field at {start} does not start with a quote"
        value = []
        index = start + 1
        while True:
            quote = text.index('"', index)
            value.append(text[index:quote])
            if text[quote + 1 : quote + 2] == '"':
                value.append('"')
                index = quote + 2
            else:
                return "".join(value), quote + 1

    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        if text[position] == ";":
            position = text.find("\n", position) % (len(text) + 1)
            continue
        name, position = read_field(position)
        position = text.index('"', position)
        secret, position = read_field(position)
        end = text.find("\n", position)
        position = len(text) if end == -1 else end
        entries.append((name, secret))
    return entries


# --- pgbouncer_md5 -------------------------------------------------------------


def test_md5_vector():
    assert (
        pgbouncer_md5("password123", "admin") == "md53f84a3c26198d9b94054ca7a3839366d"
    )


def test_md5_pgbouncer_documentation_example():
    # PgBouncer's documentation: user admin with password 1234.
    assert pgbouncer_md5("1234", "admin") == "md545f2603610af569b6155c45067268c6b"


@pytest.mark.parametrize("password", AWKWARD_PASSWORDS)
@pytest.mark.parametrize("user", AWKWARD_NAMES)
def test_md5_awkward_characters(password, user):
    expected = hashlib.md5((password + user).encode("utf-8")).hexdigest()
    assert pgbouncer_md5(password, user) == "md5" + expected


def test_md5_salted_by_user_name():
    assert pgbouncer_md5("secret", "alice") != pgbouncer_md5("secret", "bob")


# --- scram_sha_256 -------------------------------------------------------------


def test_scram_vector_with_salt_bytes():
    assert scram_sha_256("password123", SALT, 4096) == VECTOR


def test_scram_vector_with_base64_salt():
    assert scram_sha_256("password123", SALT_BASE64) == VECTOR


def test_scram_rfc7677_exchange():
    # RFC 7677 section 3: user "user", password "pencil", 4096 iterations.
    # A server holding our verifier must accept the client proof and send
    # the server signature printed in the RFC.
    verifier = scram_sha_256("pencil", "W22ZaJ0SNY7soEsUEjb6gQ==")
    stored_key, server_key = (
        base64.b64decode(k) for k in verifier.split("$")[2].split(":")
    )
    client_nonce = "rOprNGfwEbeRWgbNEkqO"
    nonce = client_nonce + "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = (
        f"n=user,r={client_nonce},"
        f"r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        f"c=biws,r={nonce}"
    ).encode()
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_signature = hmac.new(stored_key, auth_message, "sha256").digest()
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature))
    assert hashlib.sha256(client_key).digest() == stored_key
    server_signature = hmac.new(server_key, auth_message, "sha256").digest()
    assert base64.b64encode(server_signature).decode() == (
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    )


def test_scram_iterations_appear_in_verifier():
    verifier = scram_sha_256("password123", SALT, 10000)
    assert verifier.startswith("SCRAM-SHA-256$10000:")
    assert verifier == reference_verifier(b"password123", SALT, 10000)


def test_scram_seeded_salt_derivation():
    verifier = scram_sha_256("password123", user="bmms", salt_seed=SEED)
    salt = hmac.new(SEED.encode(), b"bmms", "sha256").digest()[:16]
    assert verifier == reference_verifier(b"password123", salt)


def test_scram_seeded_salt_is_idempotent():
    first = scram_sha_256("password123", user="bmms", salt_seed=SEED)
    second = scram_sha_256("password123", user="bmms", salt_seed=SEED)
    assert first == second


def test_scram_salt_per_user_and_seed():
    base = scram_sha_256("password123", user="bmms", salt_seed=SEED)
    other_user = scram_sha_256("password123", user="celery", salt_seed=SEED)
    other_seed = scram_sha_256("password123", user="bmms", salt_seed=SEED + "x")
    assert base.split("$")[1] != other_user.split("$")[1]
    assert base.split("$")[1] != other_seed.split("$")[1]


def test_scram_non_ascii_user_name_for_salt():
    verifier = scram_sha_256("pw", user="José", salt_seed=SEED)
    salt = hmac.new(SEED.encode(), "José".encode(), "sha256").digest()[:16]
    assert verifier == reference_verifier(b"pw", salt)


@pytest.mark.parametrize("password", AWKWARD_PASSWORDS)
def test_scram_awkward_passwords(password):
    # None of these change under SASLprep, so the UTF-8 bytes are hashed.
    assert scram_sha_256(password, SALT) == reference_verifier(password.encode(), SALT)


@pytest.mark.parametrize(
    ("password", "prepared"),
    [
        ("\u2168", "IX"),  # ROMAN NUMERAL NINE, NFKC-normalized
        ("\u00aa", "a"),  # FEMININE ORDINAL INDICATOR, NFKC-normalized
        ("pass\u00adword\u00e9", "passwordé"),  # soft hyphen mapped to nothing
        ("pass\u00a0word\u00e9", "pass wordé"),  # no-break space mapped to space
        ("pass\u3000word", "pass word"),  # ideographic space mapped to space
        ("e\u0301", "é"),  # combining accent composed by NFKC
        ("ﬁle", "file"),  # ligature decomposed by NFKC
    ],
)
def test_saslprep_mapping(password, prepared):
    assert saslprep(password) == prepared
    assert scram_sha_256(password, SALT) == reference_verifier(prepared.encode(), SALT)


@pytest.mark.parametrize(
    "password",
    [
        "\u2168\u0007",  # ASCII control character after mapping
        "\u2168\ue000",  # private use character
        "\u2168\u0221",  # unassigned in Unicode 3.2
        "\u05d0a\u05d0",  # right-to-left text mixed with a left-to-right letter
        "\u05d0\u05d01",  # right-to-left text ending in a neutral character
        "\u00ad",  # empty after mapping
    ],
)
def test_saslprep_failure_keeps_original(password):
    assert saslprep(password) == password
    assert scram_sha_256(password, SALT) == reference_verifier(password.encode(), SALT)


def test_saslprep_ascii_unchanged():
    # PostgreSQL skips SASLprep entirely for pure ASCII passwords.
    assert saslprep("tab\there") == "tab\there"


def test_saslprep_valid_right_to_left_unchanged():
    password = "\u05e9\u05dc\u05d5\u05dd"
    assert saslprep(password) == password
    assert scram_sha_256(password, SALT) == reference_verifier(password.encode(), SALT)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "a random salt would give a different verifier on every run"),
        ({"salt_seed": SEED}, "salt_seed needs the user name too"),
        ({"salt": SALT, "salt_seed": SEED, "user": "u"}, "either salt or salt_seed"),
        ({"salt_seed": "short", "user": "u"}, "salt_seed has 5 characters"),
        ({"salt_seed": 12345678901234567, "user": "u"}, "salt_seed must be a string"),
        ({"salt": "not base64!"}, "salt must be Base64 text"),
        ({"salt": ""}, "salt is empty"),
        ({"salt": b""}, "salt is empty"),
        ({"salt": 42}, "salt must be Base64 text or bytes, got int"),
        ({"salt": SALT, "iterations": 4095}, "iterations must be from 4096"),
        ({"salt": SALT, "iterations": 0}, "iterations must be from 4096"),
        ({"salt": SALT, "iterations": 2**31}, "to 2147483647"),
        (
            {"salt": SALT, "iterations": "4096"},
            "iterations must be an integer, got '4096'",
        ),
        ({"salt": SALT, "iterations": True}, "iterations must be an integer, got True"),
        ({"salt": SALT, "iterations": 4096.0}, "iterations must be an integer"),
        ({"salt_seed": SEED, "user": "é" * 32}, "is 64 bytes in UTF-8"),
    ],
)
def test_scram_rejected_arguments(arguments, message):
    with pytest.raises(AnsibleFilterError) as error:
        scram_sha_256("password123", **arguments)
    assert message in str(error.value)


# --- rules shared by both hashes -----------------------------------------------


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "the password is empty"),
        (None, "the password must be a string, got NoneType"),
        (1234, "the password must be a string, got int"),
        ("nul\x00byte", "contains a NUL character"),
        ("\udcff", "is not valid Unicode text"),
        ("md53f84a3c26198d9b94054ca7a3839366d", "already an MD5 or SCRAM verifier"),
        (VECTOR, "already an MD5 or SCRAM verifier"),
    ],
)
@pytest.mark.parametrize("hash_function", ["md5", "scram"])
def test_password_rejected(hash_function, password, message):
    with pytest.raises(AnsibleFilterError) as error:
        if hash_function == "md5":
            pgbouncer_md5(password, "admin")
        else:
            scram_sha_256(password, SALT)
    assert message in str(error.value)


def test_verifier_lookalikes_are_hashed():
    # Uppercase hex and a wrong length are not MD5 verifiers to PostgreSQL.
    for password in ("MD53F84A3C26198D9B94054CA7A3839366D", "md5" + "0" * 31):
        assert pgbouncer_md5(password, "admin").startswith("md5")
    assert scram_sha_256("SCRAM-SHA-256$4096:AAAA$bad:keys", SALT).startswith(
        "SCRAM-SHA-256$4096:"
    )


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("", "the user name is empty"),
        (None, "the user name must be a string, got None"),
        (7, "the user name must be a string, got 7 (int)"),
        ("a" * 64, "is 64 bytes in UTF-8; PostgreSQL truncates role names to 63 bytes"),
        ("é" * 32, "is 64 bytes in UTF-8"),
        ("nul\x00name", "contains a NUL character"),
    ],
)
def test_user_name_rejected(user, message):
    with pytest.raises(AnsibleFilterError) as error:
        pgbouncer_md5("password123", user)
    assert message in str(error.value)


def test_user_name_of_63_bytes_accepted():
    assert pgbouncer_md5("password123", "a" * 63).startswith("md5")


# --- pgbouncer_userlist --------------------------------------------------------


def test_userlist_line_format():
    text = pgbouncer_userlist(
        [{"name": "admin", "password": "password123"}], scheme="md5"
    )
    assert text == '"admin" "md53f84a3c26198d9b94054ca7a3839366d"\n'


def test_userlist_doubles_quotes_in_both_fields():
    text = pgbouncer_userlist({'say "hi"': 'pa"ss'}, scheme="plain")
    assert text == '"say ""hi""" "pa""ss"\n'


def test_userlist_only_quote_characters():
    text = pgbouncer_userlist({'""': '"'}, scheme="plain")
    assert text == '"""""" """"\n'


def test_userlist_other_characters_verbatim():
    users = {"o'brien": "it's", "back\\slash": "C:\\temp\\", "$user%": "$HOME%PATH%"}
    text = pgbouncer_userlist(users, scheme="plain")
    assert text == (
        '"o\'brien" "it\'s"\n' '"back\\slash" "C:\\temp\\"\n' '"$user%" "$HOME%PATH%"\n'
    )


def test_userlist_non_ascii_text():
    text = pgbouncer_userlist({"José": "Ñandú-ß"}, scheme="plain")
    assert text == '"José" "Ñandú-ß"\n'
    assert len(text.encode("utf-8")) == len(text) + 4


@pytest.mark.parametrize("scheme", ["plain", "md5", "scram-sha-256"])
def test_userlist_pgbouncer_parse_round_trip(scheme):
    users = dict(zip(AWKWARD_NAMES, AWKWARD_PASSWORDS))
    text = pgbouncer_userlist(users, scheme=scheme, salt_seed=SEED)
    parsed = parse_userlist(text)
    assert [name for name, _ in parsed] == AWKWARD_NAMES
    for (name, secret), password in zip(parsed, AWKWARD_PASSWORDS):
        if scheme == "plain":
            assert secret == password
        elif scheme == "md5":
            assert secret == pgbouncer_md5(password, name)
        else:
            assert secret == scram_sha_256(password, user=name, salt_seed=SEED)


def test_userlist_scram_lines_use_seeded_salts():
    text = pgbouncer_userlist(
        [{"name": "bmms", "password": "password123"}], salt_seed=SEED
    )
    expected = scram_sha_256("password123", user="bmms", salt_seed=SEED)
    assert text == f'"bmms" "{expected}"\n'


def test_userlist_is_idempotent():
    users = [{"name": "bmms", "password": "a"}, {"name": "celery", "password": "b"}]
    assert pgbouncer_userlist(users, salt_seed=SEED) == pgbouncer_userlist(
        users, salt_seed=SEED
    )


def test_userlist_list_and_dict_inputs_match():
    as_list = [
        {"name": "a", "password": "1", "role_attr_flags": "LOGIN"},
        {"name": "b", "password": "2"},
    ]
    as_dict = {"a": "1", "b": "2"}
    assert pgbouncer_userlist(as_list, scheme="md5") == pgbouncer_userlist(
        as_dict, scheme="md5"
    )


def test_userlist_keeps_input_order():
    text = pgbouncer_userlist({"zed": "1", "amy": "2"}, scheme="plain")
    assert text == '"zed" "1"\n"amy" "2"\n'


@pytest.mark.parametrize("scheme", ["plain", "md5", "scram-sha-256"])
def test_userlist_passes_verifiers_through(scheme):
    users = {"old": "md53f84a3c26198d9b94054ca7a3839366d", "new": VECTOR}
    text = pgbouncer_userlist(users, scheme=scheme)
    assert text == f'"old" "md53f84a3c26198d9b94054ca7a3839366d"\n"new" "{VECTOR}"\n'


def test_userlist_empty():
    assert pgbouncer_userlist([]) == ""
    assert pgbouncer_userlist({}) == ""


def test_userlist_newline_in_hashed_password():
    text = pgbouncer_userlist({"bmms": "line\nbreak"}, scheme="md5")
    assert text.count("\n") == 1


def test_userlist_plain_password_at_pgbouncer_limit():
    longest = "x" * 2047
    assert pgbouncer_userlist({"u": longest}, scheme="plain") == f'"u" "{longest}"\n'


@pytest.mark.parametrize(
    ("users", "arguments", "message"),
    [
        ("bmms", {}, "users must be a list of dicts with name and password"),
        (None, {}, "got NoneType"),
        (["bmms"], {}, "users[0] must be a dict with the keys name and password"),
        (
            [{"name": "bmms"}],
            {},
            "users[0] must be a dict with the keys name and password",
        ),
        (
            [{"name": "bmms", "password": "a"}, {"name": "bmms", "password": "b"}],
            {"scheme": "md5"},
            "the user name 'bmms' appears twice",
        ),
        ({"bmms": "secret"}, {}, "scheme scram-sha-256 needs salt_seed"),
        ({"bmms": "secret"}, {"scheme": "SCRAM"}, "scheme must be one of"),
        ({"bmms": "secret"}, {"scheme": "sha256"}, "scheme must be one of"),
        ({"two\nlines": "secret"}, {"scheme": "md5"}, "control character U+000A"),
        ({"bmms": "tab\there"}, {"scheme": "plain"}, "control character U+0009"),
        (
            {"bmms": "x" * 2048},
            {"scheme": "plain"},
            "too long for PgBouncer's auth_file",
        ),
        ({"bmms": '"' * 1024}, {"scheme": "plain"}, "after doubling its quotes"),
        ({"bmms": ""}, {"scheme": "md5"}, "the password is empty"),
        ({"": "secret"}, {"scheme": "md5"}, "the user name is empty"),
        ({"a" * 64: "secret"}, {"scheme": "md5"}, "PostgreSQL truncates role names"),
        (
            {"bmms": "secret"},
            {"salt_seed": SEED, "iterations": 100},
            "iterations must be from 4096",
        ),
    ],
)
def test_userlist_rejected(users, arguments, message):
    with pytest.raises(AnsibleFilterError) as error:
        pgbouncer_userlist(users, **arguments)
    assert message in str(error.value)


def test_filter_module_maps_names():
    assert FilterModule().filters() == {
        "pgbouncer_md5": pgbouncer_md5,
        "scram_sha_256": scram_sha_256,
        "pgbouncer_userlist": pgbouncer_userlist,
    }
