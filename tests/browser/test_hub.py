"""The quickstart for a second user of a real JupyterHub, through its proxy, in Chromium.

As a hub would run it: JupyterHub (from the registry) on loopback with configurable-http-proxy
(from the npm registry), a dummy authenticator and the local-process spawner for a Unix user
created here. The single-user environment is a venv readable by that user (Debian's Python of
this interpreter's version, seeing this environment's packages through a ``.pth`` file), with
the IPython startup snippet in ``<env>/etc/ipython/startup`` as the wheel installs it, and no
shared data folder: the tutorials come from ``workbench tutorials --copy`` and their data from
the excerpt next to the package. The user logs in, runs the quickstart, and the test checks
the widgets rendered, the notebook's ``%load_ext`` stayed quiet, and nothing of the user's is
left running once the server is stopped.

Needs root (to create the user and spawn as them), chromium, npm and network access to the
registries; it skips, with the reason, anywhere else.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.conftest import (
    _OUTPUT_TEXTS,
    CHROMIUM,
    REPO,
    TIMEOUT_MS,
    _free_port,
)

USER = "wbhubuser"
pytestmark = [pytest.mark.slow, pytest.mark.notebook, pytest.mark.torch]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _user_pids() -> list[int]:
    proc = subprocess.run(["pgrep", "-u", USER], capture_output=True, text=True)
    return [int(p) for p in proc.stdout.split()]


@dataclass
class Hub:
    url: str
    token: str
    password: str
    base: Path
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(
            f"{self.url}/hub/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None


def _skip_unless_possible() -> Path:
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        pytest.skip("a real hub spawns servers as another Unix user: run as root (CI does)")
    if not CHROMIUM.exists():
        pytest.skip(f"chromium not found at {CHROMIUM}: apt-get install -y chromium")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    pytest.importorskip("torch", reason="the quickstart trains with torch")
    for tool in ("npm", "useradd", "userdel", "runuser", "pgrep"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    python = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not python.exists():
        pytest.skip(f"{python} (a Python the hub user can read, of this version) is missing")
    return python


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    """Build the hub's environment, create the user, start JupyterHub; undo it all after."""
    python = _skip_unless_possible()
    base = Path(tempfile.mkdtemp(prefix="wb-hub-", dir="/tmp"))
    base.chmod(0o755)
    created_user = False
    process = None
    try:
        venv = base / "venv"
        _run([str(python), "-m", "venv", str(venv)])
        site = Path(_run([str(venv / "bin" / "python"), "-c",
                          "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                         ).stdout.strip())  # fmt: skip
        # this environment's packages (torch, jupyterlab, ...) seen through a .pth file
        (site / "zz-workbench-test.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "jupyterhub"])
        # the startup snippet where the wheel puts it: per environment
        startup = venv / "etc" / "ipython" / "startup"
        startup.mkdir(parents=True)
        shutil.copy(REPO / "jupyter_ext" / "ipython" / "00-workbench.py", startup)
        _run(["npm", "install", "--silent", "--prefix", str(base / "chp"),
              "configurable-http-proxy"])  # fmt: skip
        chp = base / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"

        try:
            pwd.getpwnam(USER)
        except KeyError:
            _run(["useradd", "--create-home", "--shell", "/bin/bash", USER])
            created_user = True
        home = Path(pwd.getpwnam(USER).pw_dir)
        # the user's own copy of the tutorials, made by the command the README names
        _run(["runuser", "-u", USER, "--", "env", f"PYTHONPATH={REPO}", f"HOME={home}",
              str(venv / "bin" / "python"), "-m", "workbench", "tutorials", "--copy",
              str(home / "tutorials")])  # fmt: skip
        _quick_quickstart(home / "tutorials" / "01_quickstart.ipynb")

        config = base / "userconfig"
        (config / "labconfig").mkdir(parents=True)
        (config / "labconfig" / "page_config.json").write_text(
            json.dumps(
                {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
            )
        )
        config.chmod(0o755)
        port, hub_port, api_port = _free_port(), _free_port(), _free_port()
        token, password = secrets.token_hex(16), secrets.token_hex(8)
        environment = {
            "PYTHONPATH": str(REPO),
            # this environment's labextensions and server-extension settings (jupyterlab's)
            "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter"),
            "JUPYTER_CONFIG_PATH": str(Path(sys.prefix) / "etc" / "jupyter"),
            "JUPYTER_CONFIG_DIR": str(config),
            "WORKBENCH_DATA_DIR": str(base / "no-shared-data"),
            "MPLBACKEND": "Agg",
        }
        (base / "jupyterhub_config.py").write_text(
            "\n".join(
                [
                    "c.JupyterHub.ip = '127.0.0.1'",
                    f"c.JupyterHub.port = {port}",
                    "c.JupyterHub.hub_ip = '127.0.0.1'",
                    f"c.JupyterHub.hub_port = {hub_port}",
                    f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{api_port}'",
                    f"c.ConfigurableHTTPProxy.command = [{str(chp)!r}]",
                    f"c.JupyterHub.db_url = 'sqlite:///{base / 'hub.sqlite'}'",
                    f"c.JupyterHub.cookie_secret_file = {str(base / 'cookie_secret')!r}",
                    f"c.JupyterHub.pid_file = {str(base / 'hub.pid')!r}",
                    "c.JupyterHub.authenticator_class = 'dummy'",
                    f"c.DummyAuthenticator.password = {password!r}",
                    f"c.Authenticator.allowed_users = {{{USER!r}}}",
                    "c.JupyterHub.spawner_class = 'jupyterhub.spawner.LocalProcessSpawner'",
                    f"c.Spawner.cmd = [{str(venv / 'bin' / 'jupyterhub-singleuser')!r}]",
                    "c.Spawner.args = ['--LabApp.expose_app_in_browser=True']",
                    "c.Spawner.default_url = '/lab/tree/tutorials/01_quickstart.ipynb'",
                    f"c.Spawner.environment = {environment!r}",
                    "c.Spawner.start_timeout = 180",
                    "c.Spawner.http_timeout = 180",
                    "c.JupyterHub.cleanup_servers = True",
                    f"c.JupyterHub.services = [{{'name': 'wbtest', 'api_token': {token!r}}}]",
                    "c.JupyterHub.load_roles = [{'name': 'wbtest', 'services': ['wbtest'],"
                    " 'scopes': ['admin:users', 'admin:servers']}]",
                ]
            )
        )
        log = base / "hub.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [str(venv / "bin" / "jupyterhub"), "-f", str(base / "jupyterhub_config.py")],
                cwd=base, stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        server = Hub(f"http://127.0.0.1:{port}", token, password, base, process, log)
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterHub exited:\n{log.read_text()[-4000:]}")
            try:
                server.api("")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterHub did not answer:\n{log.read_text()[-4000:]}")
                time.sleep(0.5)
        yield server
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            if process.poll() is None:
                process.kill()
        for pid in _user_pids():  # whatever a failed test left of that user, by process id
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        if created_user:
            subprocess.run(["userdel", "--remove", USER], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _quick_quickstart(path: Path) -> None:
    """Apply the quickstart's toy sizes (its nbmake mocks); training long enough to sample power."""
    import nbformat

    from workbench.tutorials import _override_source

    stat = path.stat()
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        mocks = cell.get("metadata", {}).get("nbmake", {}).get("mock")
        if cell.cell_type == "code" and mocks:
            source = _override_source({**mocks, "EPOCHS": 60})
            nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
            break
    nbformat.write(nb, path)
    os.chown(path, stat.st_uid, stat.st_gid)


def test_a_second_user_runs_the_quickstart_through_the_hub(hub, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", USER)
        page.fill("#password_input", hub.password)
        page.click("#login_submit")
        page.wait_for_url(f"**/user/{USER}/lab/**", timeout=TIMEOUT_MS * 2)
        page.wait_for_function(
            """() => {
                const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session
                  && w.sessionContext.session.kernel;
                return !!k && k.status === 'idle'
                  && w.context.path.endsWith('01_quickstart.ipynb');
            }""",
            timeout=TIMEOUT_MS * 2,
        )
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        page.wait_for_function(
            """() => {
                const w = window.jupyterapp.shell.currentWidget;
                const k = w.sessionContext.session.kernel;
                return k.status === 'idle' && w.content.widgets.every(
                    c => c.model.type !== 'code' || c.model.executionCount !== null);
            }""",
            timeout=TIMEOUT_MS * 5,
        )
        texts = "\n".join(page.evaluate(_OUTPUT_TEXTS))
        # the widgets rendered through the hub's proxy: map with its offline context,
        # the gallery's thumbnails, the live plot
        page.wait_for_function(
            "() => document.querySelectorAll('.leaflet-wb-context-pane path').length >= 3"
        )
        page.wait_for_function(
            """() => {
                const imgs = [...document.querySelectorAll('.wb-gallery .wb-thumb img')];
                return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
            }"""
        )
        assert page.locator(".wb-liveplot").count() >= 1
        page.screenshot(path=str(REPO / "artifacts" / "browser_hub_quickstart.png"))
    finally:
        context.close()
    # "Stop My Server": nothing of the user's is left running
    hub.api(f"users/{USER}/server", method="DELETE")
    deadline = time.monotonic() + 60
    while (pids := _user_pids()) and time.monotonic() < deadline:
        time.sleep(1)
    leftovers = {
        pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        for pid in pids
        if Path(f"/proc/{pid}").exists()
    }
    assert not leftovers, f"processes of {USER} still running after the server stopped: {leftovers}"

    # what the user saw (checked after the server stopped, so that a failure here still
    # leaves the hub and the user cleaned up by the fixture)
    assert "already loaded" not in texts  # the startup snippet, then the notebook's %load_ext
    assert "Traceback" not in texts, texts[texts.find("Traceback") - 500 :][:3000]
    assert "This notebook ran in" in texts
