"""A read-only file service for the hosts of a cluster: one folder, one address, one token.

:class:`FileService` serves a folder over HTTP from the controller host, as shared storage does
for a distributed job: bound to one address (loopback by default; the cluster's bridge address
for namespaced hosts), every request carrying ``Authorization: Bearer <token>`` (compared in
constant time), paths confined to the folder, nothing writable. Endpoints:

* ``GET /file/<path>``: a file's bytes;
* ``GET /tree/<path>``: a folder as an uncompressed tar stream (staging a host's partitions);
* ``POST /rows/<path>.npy`` with a body of little-endian int64 row indices: those rows of a
  ``.npy`` array (memory-mapped on the server), with ``X-Dtype`` and ``X-Shape`` headers.

:class:`FileClient` is the other end (a persistent connection, re-opened after errors), used on
the hosts: :meth:`~FileClient.fetch_tree` stages a folder, :meth:`~FileClient.rows` reads array
rows. Both ends use only the standard library and numpy.

Examples
--------
>>> import tempfile, numpy as np
>>> root = tempfile.mkdtemp(); np.save(f"{root}/x.npy", np.arange(12.0).reshape(6, 2))
>>> with FileService(root) as service:
...     client = FileClient(service.url, service.token)
...     client.rows("x.npy", [4, 1]).tolist()
[[8.0, 9.0], [2.0, 3.0]]
"""

from __future__ import annotations

import hmac
import http.client
import io
import json
import secrets
import shutil
import tarfile
import threading
import urllib.parse
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from workbench._typing import PathLike
from workbench.errors import DataReadError, LaunchError

__all__ = ["FileService", "FileClient"]

_MAX_ROWS_BODY = 64 * 2**20


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None

    def _deny(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _target(self, kind: str) -> Path | None:
        auth = self.headers.get("Authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.server.token}".encode()):
            self._deny(403, "missing or wrong token")
            return None
        parsed = urllib.parse.urlsplit(self.path)
        head, _, rel = parsed.path.lstrip("/").partition("/")
        if head != kind:
            self._deny(404, f"unknown endpoint {parsed.path!r}")
            return None
        root = self.server.root
        path = (root / urllib.parse.unquote(rel)).resolve()
        if path != root and root not in path.parents:
            self._deny(403, "path outside the served folder")
            return None
        if not path.exists():
            self._deny(404, f"{rel!r} not found")
            return None
        return path

    def do_GET(self) -> None:
        kind = self.path.lstrip("/").partition("/")[0]
        path = self._target(kind if kind in ("file", "tree") else "file")
        if path is None:
            return
        if kind == "tree" and path.is_dir():
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                tar.add(path, arcname=".")
            body = buf.getvalue()
            ctype = "application/x-tar"
        elif path.is_file():
            body = path.read_bytes()
            ctype = "application/octet-stream"
        else:
            self._deny(400, "a folder needs /tree/, a file /file/")
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        path = self._target("rows")
        if path is None:
            return
        size = int(self.headers.get("Content-Length", "0"))
        if size % 8 or size > _MAX_ROWS_BODY:
            self._deny(400, "the body must be int64 row indices (at most 64 MiB)")
            return
        idx = np.frombuffer(self.rfile.read(size), dtype="<i8")
        try:
            arr = self.server.array(path)
            rows = np.ascontiguousarray(arr[idx])
        except (ValueError, IndexError, OSError) as exc:
            self._deny(400, f"cannot read rows of {path.name}: {exc}")
            return
        body = rows.tobytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("X-Dtype", rows.dtype.str)
        self.send_header("X-Shape", json.dumps(list(rows.shape)))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], root: Path, token: str) -> None:
        super().__init__(addr, _Handler)
        self.root = root
        self.token = token
        self._arrays: dict[Path, Any] = {}
        self._lock = threading.Lock()

    def array(self, path: Path) -> Any:
        with self._lock:
            if path not in self._arrays:
                self._arrays[path] = np.load(path, mmap_mode="r", allow_pickle=False)
            return self._arrays[path]


class FileService:
    """Serve ``root`` read-only on ``host:port`` behind a token (see the module docstring).

    Parameters
    ----------
    root : path
        The folder to serve.
    host : str
        Address to bind (loopback by default; never all interfaces unless told).
    port : int
        Port (0: a free one).
    token : str, optional
        The bearer token (default: 32 random bytes, URL-safe).
    """

    def __init__(
        self, root: PathLike, host: str = "127.0.0.1", port: int = 0, token: str | None = None
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise LaunchError(f"a file service serves a folder; {str(root)!r} is not one")
        self.token = token or secrets.token_urlsafe(32)
        self._server = _Server((host, port), self.root, self.token)
        self.host, self.port = (
            str(self._server.server_address[0]),
            int(self._server.server_address[1]),
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"file-service:{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FileService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileService({str(self.root)!r} at {self.url})"


class FileClient:
    """Client of a :class:`FileService`: one persistent connection per process.

    Picklable (the connection is made on first use where it is used).
    """

    def __init__(self, url: str, token: str, *, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise LaunchError(f"a file service URL looks like http://10.0.0.1:8000, got {url!r}")
        self.url = url
        self.token = token
        self.timeout = timeout
        self._host, self._port = parts.hostname, parts.port
        self._conn: http.client.HTTPConnection | None = None
        self.bytes_received = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_conn"] = None
        state["bytes_received"] = 0
        return state

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[Any, bytes]:
        headers = {"Authorization": f"Bearer {self.token}"}
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout
                )
            try:
                self._conn.request(method, urllib.parse.quote(path), body=body, headers=headers)
                resp = self._conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._conn.close()
                self._conn = None
                if attempt:
                    raise DataReadError(f"file service {self.url} unreachable: {exc}") from exc
                continue
            if resp.status != 200:
                raise DataReadError(
                    f"file service {self.url} refused {method} {path}: {resp.status} "
                    f"{data.decode(errors='replace')}"
                )
            self.bytes_received += len(data)
            return resp, data
        raise AssertionError("unreachable")

    def read(self, rel: str) -> bytes:
        """Return the bytes of the file ``rel`` (relative to the served folder)."""
        return self._request("GET", f"/file/{rel}")[1]

    def fetch_tree(self, rel: str, dest: PathLike) -> int:
        """Copy the folder ``rel`` into ``dest`` (replacing it); return the bytes received."""
        _, data = self._request("GET", f"/tree/{rel}")
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        return len(data)

    def rows(self, rel: str, indices: Sequence[int] | np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Rows ``indices`` of the ``.npy`` array ``rel``, in that order."""
        body = np.ascontiguousarray(np.asarray(indices, dtype="<i8")).tobytes()
        resp, data = self._request("POST", f"/rows/{rel}", body)
        shape = tuple(json.loads(resp.getheader("X-Shape")))
        return np.frombuffer(data, dtype=np.dtype(resp.getheader("X-Dtype"))).reshape(shape)

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
