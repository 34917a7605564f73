"""Stage a catalog onto the nodes of a hash ring: each node its own folder, pieces and catalog.

The paper's storage layer (section II-A) disperses geocode pieces over the cluster with a DHT:
all pieces whose geocodes share their first ``k`` characters go to the node that owns that
prefix on the ring, so a partitioned model finds its data on its own machine.
:func:`stage_plan` is that placement, a pure function of the records and the ring;
:func:`stage_catalog` carries it out: for every node it copies the pixels of the node's pieces
into ``root/<node>/assets/<dataset>/<geocode>.zarr`` (one Zarr store per geocode, its dates
stacked along ``time``, written atomically) and writes ``root/<node>/catalog.parquet``, a
catalog of the same records (same ids) pointing at the local copies. A node opens its folder
with :class:`~workbench.catalog.Catalog` and reads only local files.

Examples
--------
>>> import tempfile
>>> from workbench.catalog import Catalog
>>> from workbench.data.synthetic import s2_like
>>> from workbench.geo import HashRing
>>> cat = Catalog(tempfile.mkdtemp())
>>> _ = cat.ingest(s2_like(time=2, y=32, x=32), dataset="demo", precision=6)
>>> ring = HashRing(["host-0", "host-1"], tokens_per_node=64)
>>> staged = stage_catalog(cat, ring, tempfile.mkdtemp(), prefix_len=5)
>>> sum(s.records for s in staged.values()) == len(cat)
True
>>> local = Catalog(staged["host-0"].catalog)
>>> set(ring.nodes_for(local.records.geocode.tolist(), prefix_len=5)) <= {"host-0"}
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._files import atomic_folder
from workbench._typing import PathLike
from workbench.catalog.records import Location
from workbench.errors import CatalogError, GeocodeError

if TYPE_CHECKING:
    from workbench.catalog.catalog import Catalog
    from workbench.geo.dht import HashRing

__all__ = ["StagedNode", "stage_plan", "stage_catalog"]


@dataclass(frozen=True)
class StagedNode:
    """What one node received: its folder, catalog file, record and partition counts, bytes."""

    node: str
    path: Path
    catalog: Path
    records: int
    partitions: tuple[str, ...]
    nbytes: int


def stage_plan(
    records: pd.DataFrame, ring: HashRing, prefix_len: int | None = None
) -> dict[str, pd.DataFrame]:
    """Return the records each node of ``ring`` owns, by their first ``prefix_len`` characters.

    Every node appears (possibly with no records). ``prefix_len=None`` uses the ring's own
    prefix length, else whole geocodes.

    Raises
    ------
    GeocodeError
        If a geocode is shorter than ``prefix_len``.
    """
    codes = np.asarray(records["geocode"].astype(str).tolist(), dtype=np.str_)
    if prefix_len is not None and len(codes) and min(len(c) for c in codes) < prefix_len:
        short = next(c for c in codes if len(c) < prefix_len)
        raise GeocodeError(
            f"geocode {short!r} is shorter than prefix_len={prefix_len}; ingest at a precision "
            f">= {prefix_len} or stage with a shorter prefix"
        )
    owners = ring.nodes_for(codes, prefix_len=prefix_len) if len(codes) else np.array([])
    return {n: records[owners == n].reset_index(drop=True) for n in ring.nodes}


def _write_store(ds: Any, target: Path) -> None:
    clean = ds.drop_vars([v for v in ("id", "geocode") if v in ds.variables])
    clean.attrs.pop("workbench_engine", None)
    for var in clean.variables.values():
        var.encoding = {}
    try:
        with atomic_folder(target) as tmp:
            clean.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True)
    except OSError as exc:
        raise CatalogError(f"could not write the staged pieces to {target}: {exc}") from exc


def _stage_node(catalog: Catalog, rows: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """Copy the pieces of ``rows`` under ``folder``; return the rows pointing at the copies."""
    out = []
    for (dataset, code), group in rows.groupby(["dataset", "geocode"], sort=True):
        group = group.sort_values(["datetime", "id"]).reset_index(drop=True)
        pieces = catalog.open(group, stack=True)
        rel = Path("assets") / str(dataset) / f"{code}.zarr"
        _write_store(pieces, folder / rel)
        staged = group.copy()
        for k, row in group.iterrows():
            src = Location.from_json(row["location"])
            loc = Location(rel.as_posix(), "zarr", {"time": (int(k), int(k) + 1)}, src.variables)
            staged.at[k, "location"] = loc.to_json()
        out.append(staged)
    return pd.concat(out, ignore_index=True) if out else rows.iloc[0:0]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def stage_catalog(
    catalog: Catalog,
    ring: HashRing,
    root: PathLike,
    *,
    records: pd.DataFrame | None = None,
    prefix_len: int | None = None,
) -> dict[str, StagedNode]:
    """Copy each node's pieces (:func:`stage_plan`) to ``root/<node>`` with a local catalog.

    Parameters
    ----------
    catalog : Catalog
        The catalog whose pieces to stage.
    ring : HashRing
        Placement ring; its node names name the folders.
    root : path
        Parent folder of the node folders (created; a node folder is replaced).
    records : DataFrame, optional
        Rows of ``catalog`` to stage (a query result); default all.
    prefix_len : int, optional
        Geocode characters that decide the owner (co-located partitions); default the ring's.

    Returns
    -------
    dict of str to StagedNode
        Per node: folder, catalog path, records, partition prefixes, bytes written.

    Raises
    ------
    CatalogError
        A piece could not be read or written (the node's folder is left as it was before).
    """
    from workbench.catalog.catalog import Catalog

    rows = catalog.records if records is None else records
    unknown = set(rows["id"]) - set(catalog.records["id"])
    if unknown:
        raise CatalogError(f"records {sorted(unknown)[:3]} are not in {catalog!r}")
    plan = stage_plan(rows, ring, prefix_len)
    out: dict[str, StagedNode] = {}
    root = Path(root)
    for node, node_rows in plan.items():
        folder = root / node
        with atomic_folder(folder) as tmp:
            staged = _stage_node(catalog, node_rows, tmp)
            Catalog(tmp).add(staged)
        width = prefix_len if prefix_len is not None else None
        parts = sorted({str(c)[:width] if width else str(c) for c in node_rows["geocode"]})
        out[node] = StagedNode(
            node, folder, folder / "catalog.parquet", len(node_rows), tuple(parts), _size(folder)
        )
    return out
