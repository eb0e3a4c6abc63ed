#!/usr/bin/python
"""Make a running Sentinel watch a master with the given settings."""

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_sentinel_monitor
short_description: Make a running Sentinel watch a master with the given settings
version_added: 0.1.0
author: BMMS platform team
description:
  - Connect to one Sentinel and compare its settings for master O(name)
    with the requested ones. Apply the differences with C(SENTINEL SET),
    which Sentinel itself writes to its configuration file.
  - When the Sentinel does not watch O(name) yet, add it with
    C(SENTINEL MONITOR) at O(master_host):O(master_port). When it does,
    those two options are ignored, because Sentinel follows failovers
    itself.
  - Sentinel does not report C(auth-pass), so the module reads it from
    O(config_file) and sets it only when it differs.
options:
  host:
    description: Address the Sentinel listens on.
    type: str
    required: true
  port:
    description: Port of the Sentinel.
    type: int
    default: 26379
  password:
    description: Password of the Sentinel's default user, if it requires one.
    type: str
  name:
    description: Sentinel master name.
    type: str
    required: true
  master_host:
    description: Address of the master, used only to add a master not yet watched.
    type: str
    required: true
  master_port:
    description: Port of the master, used only to add a master not yet watched.
    type: int
    required: true
  quorum:
    description: Sentinels that must agree the master is down before a failover starts.
    type: int
    required: true
  down_after_milliseconds:
    description: Time in ms without a valid reply after which a Sentinel considers an instance down.
    type: int
    required: true
  failover_timeout:
    description: Failover timeout in ms.
    type: int
    required: true
  parallel_syncs:
    description: Replicas that resynchronise with a new master at the same time.
    type: int
    required: true
  auth_pass:
    description: Password Sentinel uses for the master and its replicas.
    type: str
  config_file:
    description: Path of the Sentinel's configuration file, to read the current C(auth-pass).
    type: path
  timeout:
    description: Connect and read timeout in seconds.
    type: float
    default: 2.0
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Watch the cache master with the reference settings
  bmms.platform.redis_sentinel_monitor:
    host: 10.0.0.11
    password: "{{ bmms_redis_password }}"
    name: bmms-cache
    master_host: 10.0.0.11
    master_port: 6379
    quorum: 2
    down_after_milliseconds: 5000
    failover_timeout: 180000
    parallel_syncs: 1
    auth_pass: "{{ bmms_redis_password }}"
    config_file: /etc/redis/sentinel-bmms.conf
"""

RETURN = r"""
added:
  description: Whether the master was added with C(SENTINEL MONITOR).
  returned: success
  type: bool
changed_settings:
  description: Names of the settings that were (or in check mode would be) changed.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bmms.platform.plugins.module_utils.redis_protocol import (
    RedisConnection,
    RedisProtocolError,
    RedisReplyError,
    pairs_to_dict,
)

# Module option name and the field name of SENTINEL MASTER and SENTINEL SET.
NUMERIC_SETTINGS = {
    "quorum": "quorum",
    "down_after_milliseconds": "down-after-milliseconds",
    "failover_timeout": "failover-timeout",
    "parallel_syncs": "parallel-syncs",
}


def configured_auth_pass(config_text: str, name: str) -> str | None:
    """Return the ``sentinel auth-pass`` value for ``name`` in a sentinel.conf text.

    Sentinel writes the value as given, unquoted, and the roles allow no
    spaces, quotes or backslashes in it, so whitespace separates the words.
    A value in double quotes, as an operator might write it, is unquoted.
    """
    for line in config_text.splitlines():
        words = line.split()
        if len(words) == 4 and words[0].lower() == "sentinel" and words[1].lower() == "auth-pass" and words[2] == name:
            value = words[3]
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def settings_to_change(current: dict, requested: dict) -> list[str]:
    """Return the SENTINEL SET field names whose current value differs from the requested one."""
    return [field for field, value in requested.items() if str(current.get(field)) != str(value)]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "required": True},
            "port": {"type": "int", "default": 26379},
            "password": {"type": "str", "no_log": True},
            "name": {"type": "str", "required": True},
            "master_host": {"type": "str", "required": True},
            "master_port": {"type": "int", "required": True},
            "quorum": {"type": "int", "required": True},
            "down_after_milliseconds": {"type": "int", "required": True},
            "failover_timeout": {"type": "int", "required": True},
            "parallel_syncs": {"type": "int", "required": True},
            "auth_pass": {"type": "str", "no_log": True},
            "config_file": {"type": "path"},
            "timeout": {"type": "float", "default": 2.0},
        },
        supports_check_mode=True,
    )
    params = module.params
    name = params["name"]
    requested = {field: params[option] for option, field in NUMERIC_SETTINGS.items()}

    try:
        connection = RedisConnection(params["host"], params["port"], params["password"], timeout=params["timeout"])
    except (OSError, RedisReplyError, RedisProtocolError) as error:
        module.fail_json(msg=f"cannot reach Sentinel {params['host']}:{params['port']}: {error}")

    with connection:
        try:
            current = pairs_to_dict(connection.call("SENTINEL", "MASTER", name))
            added = False
        except RedisReplyError as error:
            if "no such master" not in str(error).lower():
                module.fail_json(msg=f"SENTINEL MASTER {name} failed on {connection.address}: {error}")
            current = {}
            added = True

        changes = settings_to_change(current, requested)
        set_auth_pass = False
        if params["auth_pass"] is not None:
            if added:
                set_auth_pass = True
            else:
                config_text = ""
                if params["config_file"]:
                    try:
                        with open(params["config_file"], encoding="utf-8") as config:
                            config_text = config.read()
                    except OSError as error:
                        module.fail_json(msg=f"cannot read {params['config_file']}: {error}")
                set_auth_pass = configured_auth_pass(config_text, name) != params["auth_pass"]

        changed_settings = list(changes)
        if added:
            changed_settings.insert(0, "monitor")
        if set_auth_pass:
            changed_settings.append("auth-pass")
        if module.check_mode or not changed_settings:
            module.exit_json(changed=bool(changed_settings), added=added, changed_settings=changed_settings)

        try:
            if added:
                connection.call("SENTINEL", "MONITOR", name, params["master_host"], params["master_port"], params["quorum"])
                changes = [field for field in changes if field != "quorum"]
            arguments = []
            for field in changes:
                arguments += [field, requested[field]]
            if set_auth_pass:
                arguments += ["auth-pass", params["auth_pass"]]
            if arguments:
                connection.call("SENTINEL", "SET", name, *arguments)
        except RedisReplyError as error:
            module.fail_json(msg=f"Sentinel {connection.address} rejected the settings for {name}: {error}")

    module.exit_json(changed=True, added=added, changed_settings=changed_settings)


if __name__ == "__main__":
    main()
