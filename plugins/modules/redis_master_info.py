#!/usr/bin/python
"""Find the current master of a Redis replication group."""

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_master_info
short_description: Find the current master of a Sentinel-watched Redis group
version_added: 0.1.0
author: BMMS platform team
description:
  - Ask the Sentinels which node is the master of O(name). When no Sentinel
    replies, ask the Redis nodes for their role. When no node replies
    either, this is the first setup, and the module returns O(initial_master).
  - Roles call this before they write C(replicaof) or C(sentinel monitor),
    so that a rerun after a failover never points a node back at the old
    master.
  - Runs on the managed host and speaks the Redis protocol itself, so no
    password appears in a process argument or environment variable.
  - Changes nothing.
options:
  name:
    description: Sentinel master name, for example C(bmms-cache).
    type: str
    required: true
  sentinels:
    description: Addresses of the Sentinels that watch O(name).
    type: list
    elements: str
    default: []
  sentinel_port:
    description: Port of the Sentinels.
    type: int
    default: 26379
  sentinel_password:
    description: Password of the Sentinels' default user, if they require one.
    type: str
  nodes:
    description: Addresses of the Redis nodes of this group.
    type: list
    elements: str
    default: []
  port:
    description: Port of the Redis nodes.
    type: int
    required: true
  password:
    description: Password of the Redis nodes' default user (C(requirepass)).
    type: str
  initial_master:
    description: Address of the master to return when no Sentinel or node replies.
    type: str
    required: true
  timeout:
    description: Connect and read timeout in seconds for each address.
    type: float
    default: 1.0
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Find the cache master
  bmms.platform.redis_master_info:
    name: bmms-cache
    sentinels: [10.0.0.11, 10.0.0.12, 10.0.0.13]
    sentinel_password: "{{ bmms_redis_password }}"
    nodes: [10.0.0.11, 10.0.0.12, 10.0.0.13]
    port: 6379
    password: "{{ bmms_redis_password }}"
    initial_master: 10.0.0.11
  register: cache_master
"""

RETURN = r"""
host:
  description: Address of the master.
  returned: success
  type: str
port:
  description: Port of the master.
  returned: success
  type: int
source:
  description:
    - C(sentinel) when Sentinels named the master, C(nodes) when the nodes'
      roles did, C(initial) when nothing replied.
  returned: success
  type: str
sentinel_replies:
  description: Number of Sentinels that named a master.
  returned: success
  type: int
node_replies:
  description: Number of nodes that reported their role.
  returned: success
  type: int
"""

from collections import Counter

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bmms.platform.plugins.module_utils.redis_protocol import (
    RedisConnection,
    RedisProtocolError,
    RedisReplyError,
)


class AmbiguousMaster(Exception):
    """The replies name more than one master, and none of them can be preferred."""


def ask_sentinel(host: str, port: int, name: str, password: str | None, timeout: float):
    """Return (host, port) that one Sentinel names, or None."""
    try:
        with RedisConnection(host, port, password, timeout=timeout) as connection:
            reply = connection.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
    except (OSError, RedisReplyError, RedisProtocolError):
        return None
    if not reply:
        return None
    return reply[0], int(reply[1])


def ask_node(host: str, port: int, password: str | None, timeout: float):
    """Return a node's ROLE reply, or None when it does not reply."""
    try:
        with RedisConnection(host, port, password, timeout=timeout) as connection:
            return connection.call("ROLE")
    except (OSError, RedisReplyError, RedisProtocolError):
        return None


def choose_master(sentinel_replies: list, node_roles: dict, initial: tuple):
    """Return (host, port, source) chosen from the collected replies.

    ``sentinel_replies`` lists (host, port) pairs. ``node_roles`` maps a
    node's (host, port) to its ROLE reply, or None when it did not reply.
    Sentinels win over nodes, and the address most Sentinels name wins.
    Among nodes, a single node in the master role wins. With several, the
    only one that has replicas wins. When no node is a master, the master
    that most replicas follow wins, because it may just be down. Raise
    AmbiguousMaster on a tie.
    """
    if sentinel_replies:
        ranking = Counter(sentinel_replies).most_common()
        if len(ranking) > 1 and ranking[0][1] == ranking[1][1]:
            raise AmbiguousMaster(
                "the Sentinels name different masters: "
                + ", ".join(f"{host}:{port}" for (host, port), _ in ranking)
                + "; wait until the failover in progress ends and run again"
            )
        host, port = ranking[0][0]
        return host, port, "sentinel"

    masters = {address: role for address, role in node_roles.items() if role and role[0] == "master"}
    if len(masters) > 1:
        with_replicas = [address for address, role in masters.items() if role[2]]
        if len(with_replicas) != 1:
            raise AmbiguousMaster(
                "no Sentinel replied and several nodes are masters: "
                + ", ".join(f"{host}:{port}" for host, port in sorted(masters))
                + "; make all but one of them replicas (REPLICAOF) or start the Sentinels"
            )
        masters = {with_replicas[0]: masters[with_replicas[0]]}
    if masters:
        host, port = next(iter(masters))
        return host, port, "nodes"

    followed = Counter((role[1], int(role[2])) for role in node_roles.values() if role and role[0] == "slave")
    if followed:
        ranking = followed.most_common()
        if len(ranking) > 1 and ranking[0][1] == ranking[1][1]:
            raise AmbiguousMaster(
                "the replicas follow different masters: "
                + ", ".join(f"{host}:{port}" for (host, port), _ in ranking)
            )
        host, port = ranking[0][0]
        return host, port, "nodes"

    return initial[0], initial[1], "initial"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "sentinels": {"type": "list", "elements": "str", "default": []},
            "sentinel_port": {"type": "int", "default": 26379},
            "sentinel_password": {"type": "str", "no_log": True},
            "nodes": {"type": "list", "elements": "str", "default": []},
            "port": {"type": "int", "required": True},
            "password": {"type": "str", "no_log": True},
            "initial_master": {"type": "str", "required": True},
            "timeout": {"type": "float", "default": 1.0},
        },
        supports_check_mode=True,
    )
    params = module.params
    timeout = params["timeout"]

    sentinel_replies = []
    for host in params["sentinels"]:
        reply = ask_sentinel(host, params["sentinel_port"], params["name"], params["sentinel_password"], timeout)
        if reply:
            sentinel_replies.append(reply)

    node_roles = {}
    if not sentinel_replies:
        for host in params["nodes"]:
            node_roles[(host, params["port"])] = ask_node(host, params["port"], params["password"], timeout)

    try:
        host, port, source = choose_master(
            sentinel_replies, node_roles, (params["initial_master"], params["port"])
        )
    except AmbiguousMaster as error:
        module.fail_json(msg=f"cannot tell the master of {params['name']}: {error}")

    module.exit_json(
        changed=False,
        host=host,
        port=port,
        source=source,
        sentinel_replies=len(sentinel_replies),
        node_replies=sum(1 for role in node_roles.values() if role),
    )


if __name__ == "__main__":
    main()
