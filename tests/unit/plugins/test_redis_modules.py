"""The Redis protocol client and the logic of the redis_master_info and redis_sentinel_monitor modules."""

import io
import socket
import threading

import pytest

from ansible_collections.bmms.platform.plugins.module_utils.redis_protocol import (
    RedisConnection,
    RedisProtocolError,
    RedisReplyError,
    ReplyReader,
    encode_command,
    pairs_to_dict,
)
from ansible_collections.bmms.platform.plugins.modules.redis_master_info import (
    AmbiguousMaster,
    ask_node,
    ask_sentinel,
    choose_master,
)
from ansible_collections.bmms.platform.plugins.modules.redis_sentinel_monitor import (
    configured_auth_pass,
    settings_to_change,
)

INITIAL = ("10.0.0.11", 6379)


def read(data: bytes):
    return ReplyReader(io.BytesIO(data)).read_reply()


def test_encode_command_uses_bulk_strings():
    assert encode_command("AUTH", "user", "p a$s") == b"*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$5\r\np a$s\r\n"


def test_encode_command_counts_utf8_bytes():
    assert encode_command("SET", "ключ") == "*2\r\n$3\r\nSET\r\n$8\r\nключ\r\n".encode()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"+OK\r\n", "OK"),
        (b":42\r\n", 42),
        (b"$5\r\nhello\r\n", "hello"),
        (b"$-1\r\n", None),
        (b"*-1\r\n", None),
        (b"*2\r\n$9\r\n10.0.0.12\r\n$4\r\n6379\r\n", ["10.0.0.12", "6379"]),
        (b"*2\r\n*1\r\n:1\r\n$0\r\n\r\n", [[1], ""]),
    ],
)
def test_reply_reader_parses_reply(data, expected):
    assert read(data) == expected


def test_reply_reader_raises_error_reply():
    with pytest.raises(RedisReplyError, match="NOAUTH Authentication required."):
        read(b"-NOAUTH Authentication required.\r\n")


@pytest.mark.parametrize("data", [b"", b"+OK", b"$5\r\nhel", b"?what\r\n"])
def test_reply_reader_rejects_truncated_or_unknown_reply(data):
    with pytest.raises(RedisProtocolError):
        read(data)


def test_pairs_to_dict_pairs_keys_and_values():
    assert pairs_to_dict(["quorum", "2", "flags", "master"]) == {"quorum": "2", "flags": "master"}


def test_sentinels_name_master():
    replies = [("10.0.0.12", 6379), ("10.0.0.12", 6379), ("10.0.0.13", 6379)]
    assert choose_master(replies, {}, INITIAL) == ("10.0.0.12", 6379, "sentinel")


def test_sentinel_tie_is_ambiguous():
    with pytest.raises(AmbiguousMaster, match="the Sentinels name different masters"):
        choose_master([("10.0.0.12", 6379), ("10.0.0.13", 6379)], {}, INITIAL)


def test_sentinels_win_over_nodes():
    roles = {("10.0.0.11", 6379): ["master", 10, []]}
    assert choose_master([("10.0.0.12", 6379)], roles, INITIAL)[2] == "sentinel"


def test_single_master_node_wins():
    roles = {
        ("10.0.0.11", 6379): ["slave", "10.0.0.12", 6379, "connected", 5],
        ("10.0.0.12", 6379): ["master", 5, [["10.0.0.11", "6379", "5"]]],
        ("10.0.0.13", 6379): None,
    }
    assert choose_master([], roles, INITIAL) == ("10.0.0.12", 6379, "nodes")


def test_master_with_replicas_wins_over_lone_master():
    roles = {
        ("10.0.0.11", 6379): ["master", 1, []],
        ("10.0.0.12", 6379): ["master", 5, [["10.0.0.13", "6379", "5"]]],
        ("10.0.0.13", 6379): ["slave", "10.0.0.12", 6379, "connected", 5],
    }
    assert choose_master([], roles, INITIAL) == ("10.0.0.12", 6379, "nodes")


def test_lone_masters_are_ambiguous():
    roles = {("10.0.0.11", 6379): ["master", 1, []], ("10.0.0.12", 6379): ["master", 1, []]}
    with pytest.raises(AmbiguousMaster, match="several nodes are masters"):
        choose_master([], roles, INITIAL)


def test_replicas_name_master_that_is_down():
    roles = {
        ("10.0.0.11", 6379): None,
        ("10.0.0.12", 6379): ["slave", "10.0.0.11", 6379, "connect", 5],
        ("10.0.0.13", 6379): ["slave", "10.0.0.11", 6379, "connect", 5],
    }
    assert choose_master([], roles, INITIAL) == ("10.0.0.11", 6379, "nodes")


def test_no_reply_gives_initial_master():
    roles = {("10.0.0.11", 6379): None, ("10.0.0.12", 6379): None}
    assert choose_master([], roles, INITIAL) == ("10.0.0.11", 6379, "initial")


def test_settings_to_change_lists_differences():
    current = {"quorum": "2", "down-after-milliseconds": "30000", "failover-timeout": "180000", "parallel-syncs": "1"}
    requested = {"quorum": 2, "down-after-milliseconds": 5000, "failover-timeout": 180000, "parallel-syncs": 1}
    assert settings_to_change(current, requested) == ["down-after-milliseconds"]


def test_settings_to_change_lists_all_for_new_master():
    requested = {"quorum": 2, "parallel-syncs": 1}
    assert settings_to_change({}, requested) == ["quorum", "parallel-syncs"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("sentinel auth-pass bmms-cache lab#admin%pass@word:1/$x", "lab#admin%pass@word:1/$x"),
        ('sentinel auth-pass bmms-cache "quoted"', "quoted"),
        ("SENTINEL AUTH-PASS bmms-cache upper", "upper"),
        ("sentinel auth-pass bmms-broker other", None),
        ("# sentinel auth-pass bmms-cache commented", None),
    ],
)
def test_configured_auth_pass_reads_sentinel_file(line, expected):
    assert configured_auth_pass(f"port 26379\n{line}\n", "bmms-cache") == expected


class FakeRedis:
    """A loopback server that replies to each command with a canned RESP reply."""

    def __init__(self, replies: dict[bytes, bytes]) -> None:
        self.replies = replies
        self.commands: list[list[bytes]] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        connection, _ = self.server.accept()
        stream = connection.makefile("rb")
        while True:
            header = stream.readline()
            if not header:
                break
            arguments = []
            for _ in range(int(header[1:])):
                length = int(stream.readline()[1:])
                arguments.append(stream.read(length + 2)[:-2])
            self.commands.append(arguments)
            connection.sendall(self.replies.get(arguments[0].upper(), b"-ERR unknown command\r\n"))
        connection.close()

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)


@pytest.fixture
def fake_sentinel():
    server = FakeRedis({
        b"AUTH": b"+OK\r\n",
        b"SENTINEL": b"*2\r\n$9\r\n10.0.0.12\r\n$4\r\n6379\r\n",
        b"ROLE": b"*3\r\n$6\r\nmaster\r\n:100\r\n*0\r\n",
    })
    yield server
    server.close()


def test_connection_authenticates_as_user(fake_sentinel):
    with RedisConnection("127.0.0.1", fake_sentinel.port, "secret", username="user"):
        pass
    assert fake_sentinel.commands[0] == [b"AUTH", b"user", b"secret"]


def test_connection_raises_error_reply(fake_sentinel):
    with RedisConnection("127.0.0.1", fake_sentinel.port) as connection:
        with pytest.raises(RedisReplyError, match="unknown command"):
            connection.call("PING")


def test_ask_sentinel_returns_address(fake_sentinel):
    assert ask_sentinel("127.0.0.1", fake_sentinel.port, "bmms-cache", "secret", 2.0) == ("10.0.0.12", 6379)
    assert fake_sentinel.commands[0] == [b"AUTH", b"secret"]
    assert fake_sentinel.commands[1] == [b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", b"bmms-cache"]


def test_ask_node_returns_role(fake_sentinel):
    assert ask_node("127.0.0.1", fake_sentinel.port, None, 2.0) == ["master", 100, []]


def test_ask_sentinel_returns_none_when_closed():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.close()
    assert ask_sentinel("127.0.0.1", port, "bmms-cache", None, 1.0) is None
