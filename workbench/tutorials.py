"""The tutorial notebooks: where they are, copying them for a user, running them headless.

The tutorials (``notebooks/NN_topic.ipynb``) and their data excerpt (``notebooks/data``) ship
inside the package (``workbench/_tutorials`` in a wheel), so a hub user can get their own
copy with ``workbench tutorials --copy ~/tutorials`` (or ``python -m workbench tutorials
--copy DIR``) and the notebooks find their data next to the installed package.

``python -m workbench.tutorials run NOTEBOOK`` executes a notebook top to bottom in a fresh
kernel with :mod:`nbclient`, printing each cell's progress, applies the ``nbmake`` "mock"
overrides of its parameter cell when ``--quick`` is given (the toy sizes the test suite
uses), and writes the executed copy next to the other run artifacts.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from workbench._files import atomic_write
from workbench.errors import DataReadError

__all__ = ["tutorials_dir", "copy_tutorials", "run_notebook", "main"]

_PACKAGED = Path(__file__).resolve().parent / "_tutorials"
_CHECKOUT = Path(__file__).resolve().parents[1] / "notebooks"


def tutorials_dir() -> Path:
    """Return the folder of the tutorials: the checkout's ``notebooks/``, else the packaged copy.

    Raises
    ------
    DataReadError
        If neither exists (a wheel built without them).
    """
    for candidate in (_CHECKOUT, _PACKAGED):
        if any(candidate.glob("[0-9][0-9]_*.ipynb")):
            return candidate
    raise DataReadError(
        f"no tutorials found (looked in {_CHECKOUT} and {_PACKAGED}); reinstall workbench from a "
        "wheel or a checkout that has notebooks/"
    )


def copy_tutorials(destination: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Copy the tutorials and their data excerpt into ``destination`` (e.g. a user's home).

    Parameters
    ----------
    destination : str or Path
        Folder to copy into (created if needed).
    overwrite : bool
        Replace files that are already there; by default they are kept (a user's edits are
        never lost) and reported as skipped.

    Returns
    -------
    list of Path
        The files written.

    Notes
    -----
    Each copied notebook's ``language_info.version`` is this Python's (the one whose kernel
    the copies will run on), so JupyterLab opens them clean rather than marked modified.
    """
    source, dest = tutorials_dir(), Path(destination).expanduser()
    written = []
    files = sorted(source.glob("[0-9][0-9]_*.ipynb"))
    files += sorted(p for p in (source / "data").rglob("*") if p.is_file())
    for path in files:
        target = dest / path.relative_to(source)
        if target.exists() and not overwrite:
            print(f"kept {target} (exists; --force replaces it)", file=sys.stderr)
            continue
        with atomic_write(target) as fh:  # never a half-copied notebook
            if path.suffix == ".ipynb":
                fh.write(_for_this_python(path.read_text(encoding="utf-8")).encode())
            else:
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, fh)
        written.append(target)
    return written


def _for_this_python(text: str) -> str:
    """Return a notebook's JSON with its ``language_info.version`` set to this Python's."""
    nb = json.loads(text)
    info = nb.get("metadata", {}).get("language_info")
    if not info or info.get("version") == platform.python_version():
        return text
    info["version"] = platform.python_version()
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"  # nbformat's own layout


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


def main(argv: list[str] | None = None, prog: str = "python -m workbench.tutorials") -> int:
    """Command line: ``run NOTEBOOK...``, ``copy DIR`` (or ``--copy DIR``), ``list``."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--copy", metavar="DIR", type=Path, help="copy the tutorials into DIR")
    parser.add_argument("--force", action="store_true", help="with --copy: replace files")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="execute notebooks top to bottom")
    run.add_argument("notebooks", nargs="+", type=Path)
    run.add_argument("--quick", action="store_true", help="toy sizes (the test suite's)")
    run.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    copy = sub.add_parser("copy", help="copy the tutorials and their data into a folder")
    copy.add_argument("destination", type=Path)
    copy.add_argument("--force", action="store_true", help="replace files already there")
    sub.add_parser("list", help="print where the tutorials are and their names")
    args = parser.parse_args(argv)
    if args.command == "run":
        for notebook in args.notebooks:
            run_notebook(notebook, quick=args.quick, timeout=args.timeout)
    elif args.command == "copy" or args.copy is not None:
        dest = args.destination if args.command == "copy" else args.copy
        written = copy_tutorials(dest, overwrite=args.force)
        print(f"copied {len(written)} files into {Path(dest).expanduser()}")
    elif args.command == "list":
        folder = tutorials_dir()
        print(folder)
        for notebook in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
            print(f"  {notebook.name}")
    else:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
