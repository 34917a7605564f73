"""Shared fixtures: real sample data, synthetic cubes, artifact folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.testing import DATA_DIR

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real sample data folder (../shared/data); skips if missing."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"real sample data not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests write screenshots and reports (``artifacts/`` in the repo root)."""
    path = Path(os.environ.get("WORKBENCH_ARTIFACTS", ROOT / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def ipython_shell():
    """The IPython test shell of this process (a real ``InteractiveShell``, no kernel).

    ``IPython.testing.globalipapp.get_ipython`` starts it on its first call and returns None on
    later ones, so every test module asks for it here.
    """
    pytest.importorskip("IPython")
    from IPython.core.getipython import get_ipython as current_shell
    from IPython.testing.globalipapp import get_ipython

    return current_shell() or get_ipython() or current_shell()


@pytest.fixture(scope="module")
def ip(ipython_shell):
    """The test shell with the workbench magics loaded, for one test module."""
    shell = ipython_shell
    shell.run_line_magic("load_ext", "workbench")
    yield shell
    shell.run_line_magic("unload_ext", "workbench")
