"""The ``workbench`` command line (also ``python -m workbench``).

``workbench tutorials --copy DIR`` copies the tutorials and their data excerpt into a folder
(a hub user's home); ``workbench tutorials run NOTEBOOK`` executes one headless;
``workbench tutorials list`` says where the packaged ones are.

Examples
--------
>>> main(["--version"])  # doctest: +ELLIPSIS
workbench ...
0
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_USAGE = """usage: workbench COMMAND ...

commands:
  tutorials --copy DIR [--force]   copy the tutorials and their data excerpt into DIR
  tutorials run NOTEBOOK...        execute notebooks top to bottom (--quick: toy sizes)
  tutorials list                   where the tutorials are
  --version                        the installed version
"""


def main(argv: list[str] | None = None) -> int:
    """Run the ``workbench`` command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--version"]:
        from workbench import __version__

        print(f"workbench {__version__}")
        return 0
    if args[:1] == ["tutorials"]:
        from workbench.tutorials import main as tutorials

        return tutorials(args[1:], prog="workbench tutorials")
    print(_USAGE, file=sys.stderr)
    return 2
