"""``python -m sockharness`` runs the ``sockharness`` command."""

import sys

from .cli import main

sys.exit(main())
