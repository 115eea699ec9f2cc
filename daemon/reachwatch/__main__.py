"""``python -m reachwatch``: the same command line as the ``reachwatch`` script."""

import sys

from reachwatch.cli import main

sys.exit(main())
