"""``python -m mandril.cli``: the same as the ``mandril`` command."""

import sys

from mandril.cli import main

sys.exit(main())
