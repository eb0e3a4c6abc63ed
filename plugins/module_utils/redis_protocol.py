"""A small Redis client for the collection's modules.

Managed hosts have no redis-py, and redis-cli would need the password in its
environment or arguments, so the modules speak RESP2 themselves. One
connection sends one command at a time and reads its reply.
"""

from __future__ import annotations

import socket


class RedisReplyError(Exception):
    """Error reply from the server, such as ``NOAUTH`` or ``ERR ...``."""


class RedisProtocolError(Exception):
    """A reply that is not valid RESP2, or a connection closed mid-reply."""


def encode_command(*arguments: object) -> bytes:
    """Encode a command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(arguments)]
    for argument in arguments:
        data = argument if isinstance(argument, bytes) else str(argument).encode("utf-8")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class ReplyReader:
    """Parse RESP2 replies from a file-like object that returns bytes."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def read_line(self) -> bytes:
        line = self.stream.readline()
        if not line.endswith(b"\r\n"):
            raise RedisProtocolError("connection closed before the end of a reply")
        return line[:-2]

    def read_reply(self):
        """Return the next reply: str, int, list, or None for a null reply.

        Raise RedisReplyError for an error reply. Bulk strings are decoded
        as UTF-8 with replacement characters, because the modules only read
        addresses, roles and numbers.
        """
        line = self.read_line()
        if not line:
            raise RedisProtocolError("empty reply line")
        kind, payload = line[:1], line[1:]
        if kind == b"+":
            return payload.decode("utf-8", "replace")
        if kind == b"-":
            raise RedisReplyError(payload.decode("utf-8", "replace"))
        if kind == b":":
            return int(payload)
        if kind == b"$":
            length = int(payload)
            if length < 0:
                return None
            data = self.stream.read(length + 2)
            if len(data) != length + 2:
                raise RedisProtocolError("connection closed inside a bulk string")
            return data[:-2].decode("utf-8", "replace")
        if kind == b"*":
            count = int(payload)
            if count < 0:
                return None
            return [self.read_reply() for _ in range(count)]
        raise RedisProtocolError(f"unknown reply type {kind!r}")


class RedisConnection:
    """One authenticated connection to a Redis server or Sentinel.

    ``password`` without ``username`` authenticates as the default user,
    as ``requirepass`` and Sentinel's ``requirepass`` expect.
    """

    def __init__(self, host: str, port: int, password: str | None = None,
                 username: str | None = None, timeout: float = 2.0) -> None:
        self.address = f"{host}:{port}"
        self.socket = socket.create_connection((host, port), timeout=timeout)
        self.reader = ReplyReader(self.socket.makefile("rb"))
        if password:
            if username:
                self.call("AUTH", username, password)
            else:
                self.call("AUTH", password)

    def call(self, *arguments: object):
        """Send one command and return its reply."""
        self.socket.sendall(encode_command(*arguments))
        return self.reader.read_reply()

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> "RedisConnection":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def pairs_to_dict(reply: list) -> dict[str, str]:
    """Turn a flat ``[key, value, key, value, ...]`` reply into a dict."""
    return {str(reply[index]): reply[index + 1] for index in range(0, len(reply) - 1, 2)}

