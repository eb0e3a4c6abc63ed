import sys

from bmms_lab.cli import main

sys.exit(main())
