"""Binder: a fresh environment built from exactly the files in binder/ runs the tutorials."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.torch  # the Binder environment installs the CPU torch wheel (Python 3.11)
@pytest.mark.timeout(2400)
def test_binder_files_build_an_environment_that_runs_every_tutorial(tmp_path):
    repo = tmp_path / "repo"
    # What repo2docker sees: the committed tree (untracked files and build outputs excluded).
    files = _run(["git", "ls-files"], cwd=ROOT).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    home = tmp_path / "home"
    home.mkdir()
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER", "IPYTHON", "VIRTUAL_ENV", "WORKBENCH", "PYTHON"))
    }
    env.update(
        HOME=str(home),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        # pytorch.org's CPU index (named in requirements.txt) is unreachable on offline
        # machines: fail over to the local wheel at once instead of retrying.
        PIP_RETRIES="0",
        PIP_TIMEOUT="5",
        # Binder has no ../shared/data: the tutorials must run on the excerpt in notebooks/data.
        WORKBENCH_DATA_DIR=str(tmp_path / "no-shared-data"),
    )
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    _run([*pip, "install", "-q", "-r", "binder/requirements.txt"], cwd=repo, env=env)
    _run(["bash", "binder/postBuild"], cwd=repo, env=env)

    # The startup snippet from postBuild loads the magics in every kernel.
    out = _run([str(venv / "bin" / "ipython"), "-c", "%lsmagic"], cwd=repo, env=env).stdout
    assert "%%train" in out
    assert "%cluster" in out
    # The tutorials open on launch.
    config = home / ".jupyter" / "jupyter_server_config.json"
    assert "01_quickstart.ipynb" in config.read_text()

    for notebook in NOTEBOOKS:
        _run(
            [str(venv / "bin" / "python"), "-m", "workbench.tutorials", "run", "--quick",
             str(notebook.relative_to(ROOT))],
            cwd=repo,
            env=env,
        )  # fmt: skip
