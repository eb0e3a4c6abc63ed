"""Redis client that the tests run on the application host, through the local endpoint.

It behaves like Django's cache and Celery: it keeps one connection per
endpoint, reconnects after an error and retries the same command, as
redis-py and kombu do. Python's standard library only, because lab hosts
have no redis-py.

    python3 endpoint_client.py once PORT COMMAND [ARG ...]
        Run one command and print its reply as JSON.
    python3 endpoint_client.py run --log FILE --stop-file FILE
        Until the stop file exists: SET and GET a cache key, and LPUSH a task
        id to the broker queue. Each attempt is one JSON line in the log.

The application user's name and password are read from the file named by
--credentials (two lines), so they never appear in a process list.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

ENDPOINT = "127.0.0.1"
QUEUE_KEY = "bmms:test:failover:queue"
CACHE_KEY_PREFIX = "bmms:test:failover:cache:"


class ReplyError(Exception):
    """Error reply from Redis."""


class Connection:
    """One connection to the endpoint, authenticated as the application user."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.socket = socket.create_connection((ENDPOINT, port), timeout=3)
        self.stream = self.socket.makefile("rb")
        self.call("AUTH", user, password)

    def call(self, *arguments: object):
        parts = [b"*%d\r\n" % len(arguments)]
        for argument in arguments:
            data = str(argument).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.socket.sendall(b"".join(parts))
        return self.read_reply()

    def read_reply(self):
        line = self.stream.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed")
        kind, payload = line[:1], line[1:-2].decode()
        if kind == b"+":
            return payload
        if kind == b"-":
            raise ReplyError(payload)
        if kind == b":":
            return int(payload)
        if kind == b"$":
            if int(payload) < 0:
                return None
            data = self.stream.read(int(payload) + 2)
            return data[:-2].decode()
        if kind == b"*":
            return [self.read_reply() for _ in range(int(payload))]
        raise ConnectionError(f"unknown reply type {kind!r}")

    def close(self) -> None:
        self.socket.close()


def read_credentials(path: str) -> tuple[str, str]:
    with open(path, encoding="utf-8") as credentials:
        user, password = credentials.read().splitlines()[:2]
    return user, password


def run_once(arguments: argparse.Namespace) -> int:
    user, password = read_credentials(arguments.credentials)
    try:
        connection = Connection(arguments.port, user, password)
        reply = connection.call(*arguments.command)
        print(json.dumps({"ok": True, "reply": reply}))
    except (OSError, ReplyError) as error:
        print(json.dumps({"ok": False, "error": str(error)}))
    return 0


def run_until_stopped(arguments: argparse.Namespace) -> int:
    user, password = read_credentials(arguments.credentials)
    connections: dict[int, Connection | None] = {arguments.cache_port: None, arguments.broker_port: None}
    deadline = time.monotonic() + arguments.max_seconds

    def attempt(log, port: int, instance: str, operation: str, sequence: int, *command: object):
        """Run one command, reconnecting first if needed, log it and return whether it succeeded."""
        record = {"t": time.time(), "instance": instance, "op": operation, "i": sequence}
        try:
            if connections[port] is None:
                connections[port] = Connection(port, user, password)
            reply = connections[port].call(*command)
            record.update(ok=True, reply=reply)
        except (OSError, ReplyError) as error:
            record.update(ok=False, error=f"{type(error).__name__}: {error}")
            if connections[port] is not None:
                connections[port].close()
                connections[port] = None
        log.write(json.dumps(record) + "\n")
        log.flush()
        return record["ok"], record.get("reply")

    with open(arguments.log, "w", encoding="utf-8") as log:
        sequence = 0
        while not os.path.exists(arguments.stop_file) and time.monotonic() < deadline:
            sequence += 1
            key = f"{CACHE_KEY_PREFIX}{sequence}"
            if attempt(log, arguments.cache_port, "cache", "set", sequence, "SET", key, sequence)[0]:
                attempt(log, arguments.cache_port, "cache", "get", sequence, "GET", key)
            # A producer retries until the broker acknowledges the task.
            while not os.path.exists(arguments.stop_file) and time.monotonic() < deadline:
                if attempt(log, arguments.broker_port, "broker", "lpush", sequence, "LPUSH", QUEUE_KEY, f"task-{sequence}")[0]:
                    break
                time.sleep(0.1)
            time.sleep(0.05)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credentials", required=True, help="file with the user name and password on two lines")
    commands = parser.add_subparsers(dest="mode", required=True)
    once = commands.add_parser("once", help="run one command")
    once.add_argument("port", type=int)
    once.add_argument("command", nargs="+")
    run = commands.add_parser("run", help="write through both endpoints until the stop file exists")
    run.add_argument("--log", required=True)
    run.add_argument("--stop-file", required=True)
    run.add_argument("--cache-port", type=int, default=6379)
    run.add_argument("--broker-port", type=int, default=6380)
    run.add_argument("--max-seconds", type=float, default=180, help="stop after this many seconds at the latest")
    arguments = parser.parse_args(argv)
    if arguments.mode == "once":
        return run_once(arguments)
    return run_until_stopped(arguments)


if __name__ == "__main__":
    sys.exit(main())
