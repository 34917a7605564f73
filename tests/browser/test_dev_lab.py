"""``./dev lab`` as a user starts it: only the quickstart opens, clean; the token stays private."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, REPO, TIMEOUT_MS, _free_port


@pytest.fixture
def dev_lab(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"chromium not found at {CHROMIUM}: apt-get install -y chromium")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    port, token = _free_port(), secrets.token_hex(16)
    workspaces = tmp_path / "workspaces"
    workspaces.mkdir()
    # a workspace left by an earlier session, with another notebook open: it must not return
    (workspaces / "lab-a511.jupyterlab-workspace").write_text(
        json.dumps({"data": {"layout-restorer:data": {}, "docmanager:notebooks": {}},
                    "metadata": {"id": "default"}})
    )  # fmt: skip
    config = tmp_path / "config"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    env = {
        **os.environ,
        "WORKBENCH_VENV": sys.prefix,
        "WORKBENCH_NO_SETUP": "1",
        "WORKBENCH_TOKEN": token,
        "WORKBENCH_WORKSPACES": str(workspaces),
        "PORT": str(port),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "PYTHONPATH": str(REPO),
        "MPLBACKEND": "Agg",
    }
    log = tmp_path / "lab.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(REPO / "dev"), "lab", "--LabApp.expose_app_in_browser=True"],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"./dev lab did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
    yield proc, url, token, tmp_path, workspaces
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    for kernel_dir in (tmp_path / "runtime",):
        shutil.rmtree(kernel_dir, ignore_errors=True)


def test_dev_lab_opens_only_the_quickstart_clean_and_keeps_its_token_private(dev_lab, browser):
    proc, url, token, tmp, workspaces = dev_lab
    # the token is not on any command line of the server's processes
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
    assert token not in cmdline
    # the runtime dir and every file in it are private to the user
    runtime = tmp / "runtime"
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    files = [p for p in runtime.iterdir() if p.is_file()]
    assert any(p.name.startswith("jpserver-") and p.suffix == ".json" for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert not (workspaces / "lab-a511.jupyterlab-workspace").exists()

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        printed = (tmp / "lab.log").read_text()
        assert f"{url}/lab/tree/01_quickstart.ipynb?token={token}" in printed
        page.goto(f"{url}/?token={token}")  # the server's front page: its default URL
        page.wait_for_function(
            """() => {
                const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session
                  && w.sessionContext.session.kernel;
                return !!k && k.status === 'idle' && w.content.widgets.length > 0;
            }"""
        )
        page.wait_for_timeout(2000)  # let kernel info reach the notebook's metadata
        state = page.evaluate(
            """() => {
                const app = window.jupyterapp;
                const docs = [...app.shell.widgets('main')]
                  .map(w => w.context && w.context.path);
                const w = app.shell.currentWidget;
                return {docs, dirty: w.context.model.dirty,
                        marked: !!document.querySelector('.lm-TabBar-tab.jp-mod-dirty')};
            }"""
        )
    finally:
        context.close()
    assert state["docs"] == ["01_quickstart.ipynb"]
    assert state["dirty"] is False
    assert state["marked"] is False
