"""Training data read over the network: chips on shared storage, fetched batch by batch.

A data-parallel job reads its shard of the whole training set from shared storage: here the
controller host exports a chip table as one ``.npy`` file of float32 rows (inputs and targets
of a chip side by side, :func:`export_chips`) and serves it with a
:class:`~workbench.cluster.fileserve.FileService`; :class:`RemoteChips` is a map-style torch
dataset whose batches are fetched from it (one request per batch through ``__getitems__``, no
caching: every epoch reads its shard again, as from a network file system without a local
cache). Pickling it ships the service's address, the token and the shapes, not pixels.

Examples
--------
>>> import tempfile, numpy as np
>>> from workbench.chips.staged import ChipTable
>>> from workbench.cluster.fileserve import FileClient, FileService
>>> t = ChipTable(np.ones((4, 2, 2, 2), "f4"), np.zeros((4, 2, 2), "f4"), *[np.zeros(4)] * 2,
...               np.array(["r"] * 4), np.arange(4), np.array(["u0bh"] * 4))
>>> root = tempfile.mkdtemp(); spec = export_chips(t, root, "train")
>>> with FileService(root) as service:
...     data = RemoteChips(FileClient(service.url, service.token), **spec)
...     x, y = data.__getitems__([0, 3])[1]
>>> len(data), tuple(x.shape), tuple(y.shape)
(4, (2, 2, 2), (2, 2))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workbench._files import atomic_write
from workbench._optional import lazy_import
from workbench._typing import PathLike
from workbench.chips.staged import ChipTable
from workbench.cluster.fileserve import FileClient

__all__ = ["export_chips", "RemoteChips"]


def export_chips(table: ChipTable, root: PathLike, name: str) -> dict[str, Any]:
    """Write ``table`` as ``root/<name>.npy`` (float32 rows: inputs, then targets).

    ``name`` may hold folders (``"ddp/train"``).

    Returns the keyword arguments of :class:`RemoteChips` other than the client.
    """
    n = len(table)
    x = np.asarray(table.x, dtype=np.float32).reshape(n, -1)
    y = np.asarray(table.y, dtype=np.float32).reshape(n, -1)
    path = Path(root) / f"{name}.npy"
    with atomic_write(path) as fh:
        np.save(fh, np.concatenate([x, y], axis=1))
    return {
        "rel": f"{name}.npy",
        "x_shape": tuple(int(s) for s in table.x.shape[1:]),
        "y_shape": tuple(int(s) for s in table.y.shape[1:]),
        "n": n,
    }


class RemoteChips:
    """Chips ``(x, y)`` fetched from a file service batch by batch (see the module docstring).

    Parameters
    ----------
    client : FileClient
        Client of the service holding ``rel``.
    rel : str
        Path of the exported ``.npy`` inside the served folder.
    x_shape, y_shape : tuple of int
        Shapes of one chip's inputs and targets.
    n : int
        Number of chips.
    """

    def __init__(
        self,
        client: FileClient,
        rel: str,
        x_shape: Sequence[int],
        y_shape: Sequence[int],
        n: int,
    ) -> None:
        self.client = client
        self.rel = rel
        self.x_shape = tuple(x_shape)
        self.y_shape = tuple(y_shape)
        self.n = int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, Any]]:
        """Fetch the chips ``indices`` in one request; a list of ``(x, y)`` tensor pairs."""
        torch = lazy_import("torch", purpose="RemoteChips")
        rows = self.client.rows(self.rel, list(indices))
        k = int(np.prod(self.x_shape))
        x = torch.from_numpy(rows[:, :k].copy()).reshape(len(rows), *self.x_shape)
        y = torch.from_numpy(rows[:, k:].copy()).reshape(len(rows), *self.y_shape)
        return list(zip(x, y, strict=True))

    def __repr__(self) -> str:
        return f"RemoteChips({self.n} chips of {self.rel} at {self.client.url})"
