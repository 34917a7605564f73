"""A real JupyterLab (one per session) driven by Debian's chromium through playwright.

The server runs with private config/runtime/IPython dirs and workspaces, a random free port
and a token, ``--allow-root`` as root, ``expose_app_in_browser`` (so tests can call
``window.jupyterapp``) and the news toast disabled. Each test opens its own notebook in a
fresh browser context and talks to that notebook's kernel through JupyterLab itself
(:meth:`LabPage.kernel`), so what is checked is what the kernel behind the page holds.
Browser tests skip, with the reason, when chromium or playwright are missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = int(os.environ.get("WORKBENCH_BROWSER_TIMEOUT_MS", "120000"))
REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a browser test."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Lab:
    """A running JupyterLab server."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    started_in_s: float

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            f"{self.url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for kernel in self.api("kernels"):
            self.api(f"kernels/{kernel['id']}", method="DELETE")


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Start JupyterLab once for the session, in private dirs; stop it at the end."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"chromium not found at {CHROMIUM}: apt-get install -y chromium (./dev test does)"
        )
    pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    pytest.importorskip(
        "jupyterlab", reason="jupyterlab is not installed: pip install 'workbench[jupyter]'"
    )
    base = tmp_path_factory.mktemp("lab")
    root, config = base / "notebooks", base / "config"
    (config / "labconfig").mkdir(parents=True)
    root.mkdir()
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "IPYTHONDIR": str(base / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "MPLBACKEND": "Agg",
    }
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={base / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
        "--ServerApp.port_retries=0",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = base / "jupyterlab.log"
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(cmd, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT)
    server = Lab(f"http://127.0.0.1:{port}", token, root, process, log, 0.0)
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            server.api("status")
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"JupyterLab did not answer within 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
    server.started_in_s = time.perf_counter() - started
    yield server
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def browser(lab: Lab) -> Iterator[Any]:
    """Debian's chromium, headless (never ``playwright install``: it downloads a browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


_KERNEL_EXEC = """async (code) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, store_history: false, stop_on_error: true});
  let out = "", err = null;
  future.onIOPub = (msg) => {
    const t = msg.header.msg_type;
    if (t === "stream") out += msg.content.text;
    else if (t === "execute_result") out += msg.content.data["text/plain"];
    else if (t === "error") err = msg.content.ename + ": " + msg.content.evalue;
  };
  await future.done;
  return {out, err};
}"""

_KERNEL_IDLE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session
    && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === "idle" && kernel.connectionStatus === "connected";
}"""


_OUTPUT_TEXTS = """() => {
  const visible = (html) => {
    const doc = new DOMParser().parseFromString(html, 'text/html');
    doc.querySelectorAll('script, style').forEach(e => e.remove());
    return doc.body.textContent || '';
  };
  const join = (v) => [].concat(v || []).join('');
  return window.jupyterapp.shell.currentWidget.content.widgets
    .filter(c => c.model.type === 'code')
    .flatMap(c => c.model.outputs.toJSON())
    .map(o => {
      if (o.output_type === 'stream') return join(o.text);
      if (o.output_type === 'error') return o.ename + ': ' + o.evalue;
      const data = o.data || {};
      if (data['text/html']) return visible(join(data['text/html']));
      return join(data['text/plain']);
    });
}"""


@dataclass
class LabPage:
    """One notebook open in JupyterLab, in its own browser page."""

    lab: Lab
    page: Any
    artifacts: Path
    name: str = ""
    shots: list[Path] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def open_notebook(self, name: str, cells: list[str]) -> None:
        """Write a notebook of code cells, open it, and wait for its kernel to be idle."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nbformat.write(nb, self.lab.root / name)
        self.name = name
        # a workspace of its own, reset: nothing of an earlier test's layout is restored
        workspace = Path(name).stem
        self.page.goto(
            f"{self.lab.url}/lab/workspaces/{workspace}/tree/{name}?reset&token={self.lab.token}"
        )
        self.page.wait_for_function(
            """(name) => {
                const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                return !!w && !!w.context && w.context.path === name && !!w.content.widgets.length;
            }""",
            arg=name,
            timeout=TIMEOUT_MS,
        )
        self.wait_idle()

    def open_tutorial(self, stem: str, **overrides: Any) -> str:
        """Copy a tutorial into the lab with its toy sizes (the nbmake mocks), open it, wait.

        ``overrides`` change parameters beyond the mocks (e.g. more epochs, so that a run
        lasts long enough for the live plot's once-a-second power samples).
        """
        import nbformat

        from workbench.tutorials import _override_source

        (path,) = (REPO / "notebooks").glob(f"{stem}*.ipynb")
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            mocks = cell.get("metadata", {}).get("nbmake", {}).get("mock")
            if cell.cell_type == "code" and mocks:
                source = _override_source({**mocks, **overrides})
                nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
                break
        nbformat.write(nb, self.lab.root / path.name)
        self.name = path.name
        self.page.goto(
            f"{self.lab.url}/lab/workspaces/{path.stem}/tree/{path.name}?reset&token={self.lab.token}"
        )
        self.page.wait_for_function(
            """(name) => {
                const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                return !!w && !!w.context && w.context.path === name && !!w.content.widgets.length;
            }""",
            arg=path.name,
            timeout=TIMEOUT_MS,
        )
        self.wait_idle()
        return path.name

    def output_texts(self) -> list[str]:
        """The text of every output of the open notebook, as a reader sees it.

        Read from the notebook's model (JupyterLab renders only the cells near the viewport):
        stream text, errors, and HTML as its visible text (no scripts or styles).
        """
        return list(self.page.evaluate(_OUTPUT_TEXTS))

    def wait_idle(self, timeout_ms: int = TIMEOUT_MS) -> None:
        self.page.wait_for_function(_KERNEL_IDLE, timeout=timeout_ms)

    def run_all(self, wait: bool = True) -> None:
        """Run every cell (as the menu does) and, by default, wait until all have run."""
        # not awaiting the command's promise: it resolves only when every cell has run
        self.page.evaluate(
            "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
        )
        if wait:
            self.wait_all_ran()

    def run_cell(self, index: int, wait: bool = True) -> None:
        """Run one cell (select it, then "run cell"), optionally waiting until it has run."""
        self.page.evaluate(
            """(index) => {
                const panel = window.jupyterapp.shell.currentWidget;
                panel.content.activeCellIndex = index;
                window.jupyterapp.commands.execute('notebook:run-cell');
            }""",
            index,
        )
        if wait:
            self.page.wait_for_function(
                """(index) => window.jupyterapp.shell.currentWidget.content.widgets[index]
                    .model.executionCount !== null""",
                arg=index,
                timeout=TIMEOUT_MS * 3,
            )
            self.wait_idle(TIMEOUT_MS * 3)

    def kernel_busy(self) -> bool:
        return bool(
            self.page.evaluate(
                "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                " === 'busy'"
            )
        )

    def wait_all_ran(self) -> None:
        """Wait until every code cell has run and the kernel is idle; fail on a traceback."""
        self.page.wait_for_function(
            """() => {
                const cells = window.jupyterapp.shell.currentWidget.content.widgets;
                return cells.every(c => c.model.type !== 'code' || c.model.executionCount !== null);
            }""",
            timeout=TIMEOUT_MS * 3,
        )
        self.wait_idle(TIMEOUT_MS * 3)
        errors = self.page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        )
        tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t]
        assert not tracebacks, f"a cell failed:\n{tracebacks[0][-3000:]}"

    def kernel(self, code: str) -> str:
        """Run ``code`` in the notebook's kernel (through JupyterLab) and return its output."""
        result = self.page.evaluate(_KERNEL_EXEC, code)
        assert result["err"] is None, f"kernel error: {result['err']}\n--- code ---\n{code}"
        return str(result["out"])

    def kernel_json(self, expression: str) -> Any:
        return json.loads(self.kernel(f"import json as _json; print(_json.dumps({expression}))"))

    def screenshot(self, stem: str, locator: Any = None) -> Path:
        path = self.artifacts / f"browser_{stem}.png"
        (locator or self.page).screenshot(path=str(path))
        self.shots.append(path)
        return path


@pytest.fixture
def lab_page(lab: Lab, browser: Any, artifacts_dir: Path) -> Iterator[LabPage]:
    """A fresh browser context on the session's JupyterLab; kernels are shut down afterwards."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    handle = LabPage(lab, page, artifacts_dir)
    page.on("requestfailed", lambda request: handle.failed_requests.append(request.url))
    try:
        yield handle
    finally:
        with contextlib.suppress(Exception):  # the page may be gone; the notebook is test input
            page.evaluate(
                "() => window.jupyterapp && window.jupyterapp.commands.execute('docmanager:save')"
            )
        context.close()
        lab.shutdown_kernels()
        if handle.name:
            shutil.copy(lab.root / handle.name, artifacts_dir / f"browser_{handle.name}")
