"""Entry point of ``python -m tools.lab`` (see :mod:`tools.lab.cli`)."""

import sys

from tools.lab import cli

sys.exit(cli.main())
