"""``python -m workbench``: the ``workbench`` command (``workbench tutorials --copy DIR``)."""

from __future__ import annotations

import sys

from workbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
