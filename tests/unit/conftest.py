"""Make the collection importable in unit tests.

``.collections/ansible_collections/bmms/platform`` links back to the checkout,
so with ``.collections`` on sys.path the tests import the plugins as
``ansible_collections.bmms.platform.plugins...``, the same names Ansible uses.
"""

import sys
from pathlib import Path

COLLECTIONS_PATH = str(Path(__file__).resolve().parents[2] / ".collections")

if COLLECTIONS_PATH not in sys.path:
    sys.path.insert(0, COLLECTIONS_PATH)
