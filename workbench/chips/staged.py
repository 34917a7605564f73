"""Chips of catalog pieces, indexed where the catalog is and read where the pieces are.

A *chipper* turns one catalog piece (an ``xarray.Dataset`` from
:meth:`~workbench.catalog.Catalog.open`) into :class:`PieceChips`: inputs, targets and chip
centres, always the same chips in the same order for the same piece. :func:`chip_table` runs it
over catalog records and keeps, for every chip, the record it came from and its position
there: the index of the chips, as small as the catalog. A key of several record ids joined by
``|`` hands the chipper a tuple of pieces (a training pair and its mask, say).

:class:`HostChips` is a view on some rows of such an index that reads pixels on the host that
holds them: on a worker, it opens the staged catalog in its own data folder
(``$WORKBENCH_HOST_DATA/<subdir>``, filled by :meth:`~workbench.catalog.Catalog.stage`), chips
the pieces it needs with the same chipper and picks its rows. Pickling it ships record ids,
positions and geocodes, never pixels. It behaves like a :class:`~workbench.chips.ChipSet` where
training code looks (``len``, ``select``, ``geocodes``, ``to_torch``), so partitioned workers
read it once into memory (``materialize``) and train from local files only.

Examples
--------
>>> import numpy as np
>>> refs = HostChips(["a", "a", "b"], [0, 1, 0], ["u0bh5", "u0bh7", "u0bk1"], chipper=None)
>>> len(refs), refs.geocodes("geohash", 4).tolist(), len(refs.select([2]))
(3, ['u0bh', 'u0bh', 'u0bk'], 1)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from workbench._optional import lazy_import
from workbench.errors import CatalogError, GeocodeError
from workbench.geo.geohash import encode

__all__ = [
    "PieceChips",
    "ChipTable",
    "chip_table",
    "HostChips",
    "HostBatches",
    "HOST_DATA_ENV",
    "KEY_SEP",
]

#: Environment variable holding a host's own data folder (set on engines of a HostCluster).
HOST_DATA_ENV = "WORKBENCH_HOST_DATA"
#: Joins the record ids of a key whose chips need several pieces (e.g. cloudy|clear|mask).
KEY_SEP = "|"


class PieceChips(NamedTuple):
    """The chips of one piece: inputs ``(k, C, h, w)``, targets ``(k, ...)``, centre lon/lat."""

    x: np.ndarray[Any, Any]
    y: np.ndarray[Any, Any]
    lon: np.ndarray[Any, Any]
    lat: np.ndarray[Any, Any]


#: A chipper: one catalog piece -> its chips (deterministic).
Chipper = Callable[[Any], PieceChips]


@dataclass(frozen=True)
class ChipTable:
    """Chips of many records with their origin: ``record_ids[i]``, ``positions[i]``, codes."""

    x: np.ndarray[Any, Any]
    y: np.ndarray[Any, Any]
    lon: np.ndarray[Any, Any]
    lat: np.ndarray[Any, Any]
    record_ids: np.ndarray[Any, Any]
    positions: np.ndarray[Any, Any]
    codes: np.ndarray[Any, Any]

    def __len__(self) -> int:
        return len(self.x)

    def take(self, index: Sequence[int] | np.ndarray[Any, Any]) -> ChipTable:
        """Return the rows ``index`` of the table."""
        idx = np.asarray(index, dtype=np.int64)
        return ChipTable(*(np.asarray(getattr(self, f))[idx] for f in self.__dataclass_fields__))

    def refs(self, chipper: Chipper, *, subdir: str = "") -> HostChips:
        """Return a :class:`HostChips` view of the rows (read from a host's staged copy)."""
        return HostChips(self.record_ids, self.positions, self.codes, chipper, subdir=subdir)


def _open_piece(catalog: Any, key: str) -> Any:
    """One record's piece, or a tuple of pieces for a key of ids joined by ``|``."""
    if KEY_SEP in key:
        return tuple(_open_piece(catalog, k) for k in key.split(KEY_SEP))
    piece = catalog.open(key)
    return piece.load() if hasattr(piece, "load") else piece


def chip_table(
    catalog: Any, records: pd.DataFrame | Sequence[str], chipper: Chipper, *, precision: int = 7
) -> ChipTable:
    """Chip every record with ``chipper``; codes are geohashes of the chip centres.

    Parameters
    ----------
    catalog : Catalog
        Where the pieces are.
    records : DataFrame or sequence of str
        Records (rows of a query) or record ids, chipped in this order.
    chipper : callable
        ``chipper(piece) -> PieceChips``.
    precision : int
        Geohash length of the chip codes (at least the partition precision used later).
    """
    ids = [str(i) for i in (records["id"] if isinstance(records, pd.DataFrame) else records)]
    parts: list[PieceChips] = []
    rid: list[np.ndarray[Any, Any]] = []
    pos: list[np.ndarray[Any, Any]] = []
    for record_id in ids:
        chips = chipper(_open_piece(catalog, record_id))
        parts.append(chips)
        rid.append(np.full(len(chips.x), record_id, dtype=object))
        pos.append(np.arange(len(chips.x), dtype=np.int64))
    if not parts or not sum(len(p.x) for p in parts):
        raise CatalogError(f"no chips in the {len(ids)} records given: {ids[:3]}")
    lon = np.concatenate([p.lon for p in parts])
    lat = np.concatenate([p.lat for p in parts])
    return ChipTable(
        x=np.concatenate([p.x for p in parts]),
        y=np.concatenate([p.y for p in parts]),
        lon=lon,
        lat=lat,
        record_ids=np.concatenate(rid).astype(str),
        positions=np.concatenate(pos),
        codes=np.asarray(encode(lat, lon, precision=precision)),
    )


class HostChips:
    """Rows of a chip index, read from the staged pieces of the host that runs it.

    Parameters
    ----------
    record_ids, positions, codes : sequences
        Per chip: the catalog record it comes from, its position among that piece's chips,
        and its geocode (partitioned training groups by a prefix of it).
    chipper : callable
        The chipper that made the index (run again on the host's copy of the piece).
    subdir : str
        Folder of the staged catalog inside the host's data folder.
    root : path, optional
        The host's data folder; default ``$WORKBENCH_HOST_DATA`` where the chips are read.
    """

    def __init__(
        self,
        record_ids: Sequence[str] | np.ndarray[Any, Any],
        positions: Sequence[int] | np.ndarray[Any, Any],
        codes: Sequence[str] | np.ndarray[Any, Any],
        chipper: Chipper | None,
        *,
        subdir: str = "",
        root: str | None = None,
    ) -> None:
        self.record_ids = np.asarray(record_ids, dtype=str)
        self.positions = np.asarray(positions, dtype=np.int64)
        self.codes = np.asarray(codes, dtype=str)
        if not len(self.record_ids) == len(self.positions) == len(self.codes):
            raise GeocodeError(
                f"HostChips needs one record id, position and code per chip; got "
                f"{len(self.record_ids)}, {len(self.positions)}, {len(self.codes)}"
            )
        self.chipper = chipper
        self.subdir = subdir
        self.root = root

    def __len__(self) -> int:
        return len(self.record_ids)

    def __repr__(self) -> str:
        return f"HostChips({len(self)} chips of {len(set(self.record_ids.tolist()))} pieces)"

    @property
    def channel_names(self) -> list[str]:
        """Input channel names of the chipper (if it has them)."""
        return list(getattr(self.chipper, "channels", ()))

    @property
    def dims(self) -> dict[str, int]:
        """Chip size ``{"y": h, "x": w}`` of the chipper (if it says)."""
        size = int(getattr(self.chipper, "size", 1))
        return {"y": size, "x": size}

    def geocodes(self, scheme: str = "geohash", precision: int = 5) -> np.ndarray[Any, Any]:
        """Geocodes of the chips cut to ``precision`` (geohash only)."""
        if scheme != "geohash":
            raise GeocodeError(f"HostChips hold geohash codes; scheme {scheme!r} is not one")
        short = [c for c in self.codes[:1].tolist() if len(c) < precision]
        if short:
            raise GeocodeError(
                f"chip codes have {len(short[0])} characters, fewer than precision {precision}; "
                "build the chip table with a larger precision"
            )
        return np.asarray([c[:precision] for c in self.codes.tolist()], dtype=str)

    def select(self, indices: Sequence[int] | np.ndarray[Any, Any]) -> HostChips:
        """Return a view on the chips ``indices``."""
        idx = np.asarray(indices, dtype=np.int64)
        return HostChips(
            self.record_ids[idx],
            self.positions[idx],
            self.codes[idx],
            self.chipper,
            subdir=self.subdir,
            root=self.root,
        )

    def folder(self) -> Path:
        """Return the staged catalog's folder on this host."""
        root = self.root or os.environ.get(HOST_DATA_ENV)
        if not root:
            raise CatalogError(
                f"HostChips read the host's staged pieces, but ${HOST_DATA_ENV} is not set here: "
                "run on an engine of a HostCluster, or pass root=<folder of the staged catalog>"
            )
        return Path(root) / self.subdir

    def to_numpy(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Read the chips ``(x, y)`` from this host's staged pieces (local files only)."""
        from workbench.catalog import Catalog

        if self.chipper is None:
            raise CatalogError("HostChips without a chipper cannot read pixels")
        folder = self.folder()
        catalog = Catalog(folder)
        known = set(catalog.records["id"].tolist())
        wanted = list(dict.fromkeys(self.record_ids.tolist()))
        missing = [r for key in wanted for r in key.split(KEY_SEP) if r not in known]
        if missing:
            raise CatalogError(
                f"{len(missing)} record(s) (e.g. {missing[0]!r}) are not staged in {folder}; "
                "this host does not own their partitions: stage with Catalog.stage(ring, root) "
                "using the ring the training places partitions with"
            )
        xs: list[Any] = [None] * len(self)
        ys: list[Any] = [None] * len(self)
        for record_id in wanted:
            chips = self.chipper(_open_piece(catalog, record_id))
            rows = np.flatnonzero(self.record_ids == record_id)
            for i in rows:
                xs[i], ys[i] = chips.x[self.positions[i]], chips.y[self.positions[i]]
        return np.stack(xs), np.stack(ys)

    def to_torch(
        self,
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        device: Any = "cpu",
        drop_last: bool = False,
        targets: Sequence[str] | None = None,
        transform: Callable[..., Any] | None = None,
        **_: Any,
    ) -> HostBatches:
        """Batches ``(x, y)`` of the chips, read once from this host's staged pieces.

        Takes the arguments of :meth:`ChipSet.to_torch <workbench.chips.ChipSet.to_torch>`;
        epochs (``set_epoch``) reorder the chips in memory with the planner of
        :mod:`workbench.chips.plan`. The chipper decides inputs and targets: any ``targets``
        gives ``(x, y)`` pairs, none gives ``x`` alone (self-supervised), as a ChipSet does.
        """
        x, y = self.to_numpy()
        return HostBatches(
            x, y if targets else None, batch_size,
            shuffle=shuffle, seed=seed or 0, rank=rank, world_size=world_size,
            device="cpu" if device == "auto" else device, drop_last=drop_last,
            transform=transform,
        )  # fmt: skip


class HostBatches:
    """Iterable of tensor batches of in-memory chips, one epoch order per :meth:`set_epoch`."""

    def __init__(
        self,
        x: np.ndarray[Any, Any],
        y: np.ndarray[Any, Any] | None,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: Any = "cpu",
        drop_last: bool = False,
        transform: Callable[..., Any] | None = None,
    ) -> None:
        torch = lazy_import("torch", purpose="HostChips.to_torch")
        self.x = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        self.y = None if y is None else torch.from_numpy(np.ascontiguousarray(y)).to(device)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.transform = transform
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def _batches(self) -> list[np.ndarray[Any, Any]]:
        from workbench.chips.plan import epoch_order, epoch_rng, shard, split_batches

        order = epoch_order(
            np.zeros(len(self.x), dtype=np.int64),
            shuffle=self.shuffle,
            rng=epoch_rng(self.seed, self.epoch) if self.shuffle else None,
            order="index",
        )
        spans = shard(order, world_size=self.world_size, batch_size=self.batch_size,
                      drop_last=self.drop_last)  # fmt: skip
        return list(split_batches(spans[self.rank], self.batch_size, self.drop_last))

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self) -> Iterator[Any]:
        for b in self._batches():
            idx = lazy_import("torch").from_numpy(np.asarray(b, dtype=np.int64))
            batch = (self.x[idx], self.y[idx]) if self.y is not None else self.x[idx]
            if self.transform is not None:
                batch = (
                    self.transform(*batch) if isinstance(batch, tuple) else self.transform(batch)
                )
            yield batch
