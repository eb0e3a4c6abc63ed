"""Checks of filter arguments shared by the collection's filter plugins."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def describe_type(value: object) -> str:
    """Return the plain type name of a value, hiding Ansible's tagged subclasses."""
    for kind in (bool, int, float, str, bytes, Mapping, list, tuple):
        if isinstance(value, kind):
            return "dict" if kind is Mapping else kind.__name__
    return type(value).__name__


def as_count(name: str, value: object) -> int:
    """Return ``value`` as an int of at least 1, or raise an error naming ``name``.

    Booleans, strings and fractional numbers are rejected. A float with no
    fractional part, such as ``1000.0``, is accepted.
    """
    expected = f"{name} must be a whole number of at least 1"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AnsibleFilterError(f"{expected}, got {value!r} ({describe_type(value)})")
    if isinstance(value, float) and not math.isfinite(value):
        raise AnsibleFilterError(f"{expected}, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise AnsibleFilterError(f"{expected}, got the fractional value {value!r}")
    if value < 1:
        raise AnsibleFilterError(f"{expected}, got {value!r}")
    return int(value)
