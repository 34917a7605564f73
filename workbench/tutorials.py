"""Run the tutorial notebooks headless: ``python -m workbench.tutorials run NOTEBOOK``.

Executes a notebook top to bottom in a fresh kernel with :mod:`nbclient`, printing
each cell's progress, applies the ``nbmake`` "mock" overrides of its parameter cell
when ``--quick`` is given (the toy sizes the test suite uses), and writes the
executed copy next to the other run artifacts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["run_notebook", "main"]


def _override_source(mocks: dict[str, Any]) -> str:
    lines = ["# parameters overridden by `workbench.tutorials --quick` (nbmake mocks)"]
    lines += [f"{name} = {value!r}" for name, value in mocks.items()]
    return "\n".join(lines)


def run_notebook(
    path: str | Path,
    *,
    quick: bool = False,
    timeout: int = 1800,
    output: str | Path | None = None,
    kernel_name: str = "python3",
) -> Path:
    """Execute a notebook and save the executed copy.

    Parameters
    ----------
    path : str or Path
        The ``.ipynb`` file.
    quick : bool
        Apply the toy-size overrides stored in the parameter cell's
        ``metadata.nbmake.mock`` (as ``pytest --nbmake`` does).
    timeout : int
        Seconds allowed per cell.
    output : str or Path, optional
        Where to write the executed notebook (default: ``artifacts/<name>.executed.ipynb``).
    kernel_name : str
        Jupyter kernel to run it in.

    Returns
    -------
    pathlib.Path
        The executed notebook.

    Raises
    ------
    nbclient.exceptions.CellExecutionError
        If a cell fails; the message holds the cell and its traceback.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if quick:
        for index, cell in enumerate(nb.cells):
            mocks = cell.get("metadata", {}).get("nbmake", {}).get("mock")
            if cell.cell_type == "code" and mocks:
                nb.cells.insert(index + 1, nbformat.v4.new_code_cell(_override_source(mocks)))
                break
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    started = time.perf_counter()
    done = 0

    def on_cell_executed(**kwargs: Any) -> None:
        nonlocal done
        done += 1
        elapsed = time.perf_counter() - started
        print(f"  [{done}/{len(code_cells)}] {elapsed:6.1f} s", file=sys.stderr, flush=True)

    client.on_cell_executed = on_cell_executed
    print(f"running {path} ({len(code_cells)} code cells)", file=sys.stderr, flush=True)
    client.execute()
    out = Path(output) if output else Path("artifacts") / f"{path.stem}.executed.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    print(f"done in {time.perf_counter() - started:.1f} s -> {out}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m workbench.tutorials``."""
    parser = argparse.ArgumentParser(prog="python -m workbench.tutorials", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks top to bottom")
    run.add_argument("notebooks", nargs="+", type=Path)
    run.add_argument("--quick", action="store_true", help="toy sizes (the test suite's)")
    run.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    for notebook in args.notebooks:
        run_notebook(notebook, quick=args.quick, timeout=args.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
