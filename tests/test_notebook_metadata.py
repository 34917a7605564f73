"""Tutorials open clean in JupyterLab: no "modified" mark before the user edits anything.

JupyterLab writes the kernel's ``kernelspec`` and ``language_info`` into a notebook's metadata
when its kernel connects, and marks the notebook modified when they differ from the file. So
the committed tutorials carry exactly what the project's kernel (ipykernel on the Python of
``./dev lab``) reports, cell ids (nbformat 4.5) and no outputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_tutorial_is_what_jupyterlab_would_write(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5)
    assert all(cell.get("id") for cell in nb["cells"])
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    meta = nb["metadata"]
    assert set(meta) == {"kernelspec", "language_info"}
    assert meta["kernelspec"] == {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"
    }  # fmt: skip
    info = meta["language_info"]
    assert set(info) == {
        "name", "version", "mimetype", "codemirror_mode", "pygments_lexer",
        "nbconvert_exporter", "file_extension",
    }  # fmt: skip
    ipykernel = pytest.importorskip("ipykernel.ipkernel")
    expected = dict(ipykernel.IPythonKernel.language_info)
    if sys.version_info[:2] != (3, 11):  # the project's lab Python; others differ in version
        expected["version"] = info["version"]
    assert info == expected
