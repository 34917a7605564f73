"""A task where regions differ: water clarity (``kd489``) from chlorophyll and suspended matter.

The xcube Sentinel-3 OLCI cube of the southern North Sea (``xcube_olci_northsea``: C2RCC
products at 250 m, five dates of January 2017) holds chlorophyll (``conc_chl``), total
suspended matter (``conc_tsm``) and the diffuse attenuation coefficient at 489 nm (``kd489``).
Attenuation follows from what is in the water, but not from chlorophyll and sediment alone:
dissolved organic matter, sediment type and the optics of coastal plumes vary from place to
place, so the mapping from (chl, TSM) to kd489 differs between the Thames estuary, the Flemish
banks and open water. The task: predict the mean ``log(kd489)`` of an 8 x 8 chip (2 x 2 km)
from the chip's ``log(conc_chl)`` and ``log(conc_tsm)``.

* :func:`olci_catalog` ingests the cube into a catalog at a geohash precision (pieces of cells);
* :class:`WaterChipper` cuts a piece into chips whose pixels are all valid water (clouds and
  land are NaN in C2RCC products), standardised with constants of the training chips;
* :func:`water_task` builds the chip index, holds out whole geohash-5 blocks (~5 x 5 km) of
  every partition, and keeps the partitions with enough training chips.

Examples
--------
>>> import numpy as np, xarray as xr
>>> v = np.full((1, 16, 8), 2.0)
>>> piece = xr.Dataset({n: (("time", "lat", "lon"), v) for n in WATER_VARIABLES},
...                    coords={"lat": np.linspace(52, 51.9, 16), "lon": np.linspace(2, 2.05, 8)})
>>> chips = WaterChipper(size=8)(piece)
>>> chips.x.shape, chips.y.shape, round(float(chips.y[0].mean()), 3)
((2, 2, 8, 8), (2, 8, 8), 0.693)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from workbench._typing import PathLike
from workbench.chips.staged import ChipTable, PieceChips, chip_table
from workbench.errors import DataReadError
from workbench.training.ndvi import holdout_split

__all__ = ["WATER_VARIABLES", "WaterChipper", "WaterTask", "olci_catalog", "water_task"]

#: Inputs (chlorophyll, suspended matter) and target (attenuation at 489 nm).
WATER_VARIABLES = ("conc_chl", "conc_tsm", "kd489")


@dataclass(frozen=True)
class WaterChipper:
    """Piece -> chips of ``size`` px with every pixel valid water (a picklable chipper).

    Inputs are ``(log(chl) - mean) / std`` and ``(log(tsm) - mean) / std`` (identity until
    :meth:`fitted`), the target the chip's ``log(kd489)`` pixels.
    """

    size: int = 8
    mean: tuple[float, float] = (0.0, 0.0)
    std: tuple[float, float] = (1.0, 1.0)
    channels: tuple[str, ...] = ("log_conc_chl", "log_conc_tsm")

    def __call__(self, piece: Any) -> PieceChips:
        """Cut ``piece`` (one date of a catalog piece) into its valid chips, row by row."""
        c = self.size
        try:
            arrs = [np.asarray(piece[v].values, dtype=np.float64) for v in WATER_VARIABLES]
        except KeyError as exc:
            raise DataReadError(f"a water piece needs variables {WATER_VARIABLES}: {exc}") from exc
        arrs = [a.reshape(a.shape[-2:]) for a in arrs]
        h, w = (arrs[0].shape[0] // c) * c, (arrs[0].shape[1] // c) * c
        blocks = np.stack(
            [a[:h, :w].reshape(h // c, c, w // c, c).transpose(0, 2, 1, 3) for a in arrs]
        ).reshape(3, -1, c, c)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(blocks).all(axis=(0, 2, 3)) & (blocks > 0).all(axis=(0, 2, 3))
        logs = np.log(blocks[:, ok])
        x = _standardise(np.stack([logs[0], logs[1]], axis=1).astype(np.float32), self)
        lat = np.asarray(piece["lat"].values, dtype=np.float64)[:h].reshape(-1, c).mean(axis=1)
        lon = np.asarray(piece["lon"].values, dtype=np.float64)[:w].reshape(-1, c).mean(axis=1)
        grid_lat, grid_lon = np.meshgrid(lat, lon, indexing="ij")
        return PieceChips(x, logs[2].astype(np.float32), grid_lon.ravel()[ok], grid_lat.ravel()[ok])

    def fitted(self, table: ChipTable) -> WaterChipper:
        """Return this chipper standardising with the input means and spreads of ``table``."""
        raw = table.x.astype(np.float64) * np.asarray(self.std)[None, :, None, None]
        raw += np.asarray(self.mean)[None, :, None, None]
        mean = raw.mean(axis=(0, 2, 3))
        std = raw.std(axis=(0, 2, 3))
        return replace(
            self, mean=(float(mean[0]), float(mean[1])), std=(float(std[0]), float(std[1]))
        )


def olci_catalog(path: PathLike, root: PathLike, *, precision: int = 4) -> Any:
    """Ingest the OLCI cube's water variables into a catalog at ``root`` (geohash pieces).

    Raises
    ------
    DataReadError
        If ``path`` is not a cube with :data:`WATER_VARIABLES` and lat/lon.
    """
    from workbench.catalog import Catalog

    catalog = Catalog(root)
    try:
        catalog.ingest(
            str(path), dataset="olci", precision=precision, variables=list(WATER_VARIABLES),
            cloud_mask=False,
        )  # fmt: skip
    except (KeyError, ValueError) as exc:
        raise DataReadError(f"{str(path)!r} is not an OLCI water cube: {exc}") from exc
    return catalog


@dataclass(frozen=True)
class WaterTask:
    """The chips of the task and how they are split and partitioned."""

    catalog: Any
    records: pd.DataFrame
    chipper: WaterChipper
    train: ChipTable
    held_out: ChipTable
    partition_precision: int
    block_precision: int


def water_task(
    catalog: Any,
    *,
    size: int = 8,
    partition_precision: int = 4,
    block_precision: int = 5,
    min_chips: int = 150,
    fraction: float = 0.2,
    seed: int = 0,
    max_records: int | None = None,
) -> WaterTask:
    """Chip the catalog, hold out blocks, keep partitions with ``min_chips`` training chips.

    Held out: ``fraction`` of the geohash cells of length ``block_precision`` of every
    partition (all their chips, on every date), so held-out chips are at least a block away
    from most training chips. Partitions (geohash of length ``partition_precision``) with
    fewer than ``min_chips`` training chips are dropped from both sets (every strategy trains
    and is scored on the same chips). ``max_records`` keeps the records with the most valid
    pixels (notebook-sized runs).
    """
    records = catalog.records
    records = records[records["pixel_coverage"] > 0].sort_values(["geocode", "datetime"])
    if max_records is not None:
        records = records.nlargest(max_records, "pixel_coverage").sort_values(
            ["geocode", "datetime"]
        )
    raw = WaterChipper(size=size)
    table = chip_table(catalog, records, raw, precision=max(7, block_precision + 1))
    chipper = raw.fitted(table)
    table = replace(table, x=_standardise(table.x, chipper))
    blocks = np.asarray([c[:block_precision] for c in table.codes.tolist()])
    unique = np.unique(blocks)
    _, held_blocks = holdout_split(
        [b[:partition_precision] for b in unique.tolist()], fraction=fraction, seed=seed
    )
    held = np.isin(blocks, unique[held_blocks])
    parts = np.asarray([c[:partition_precision] for c in table.codes.tolist()])
    counts = pd.Series(parts[~held]).value_counts()
    keep = np.isin(parts, counts[counts >= min_chips].index.to_numpy())
    kept_ids = set(table.record_ids[keep].tolist())
    return WaterTask(
        catalog=catalog,
        records=records[records["id"].isin(kept_ids)].reset_index(drop=True),
        chipper=chipper,
        train=table.take(np.flatnonzero(keep & ~held)),
        held_out=table.take(np.flatnonzero(keep & held)),
        partition_precision=partition_precision,
        block_precision=block_precision,
    )


def _standardise(x: np.ndarray[Any, Any], chipper: WaterChipper) -> np.ndarray[Any, Any]:
    mean = np.asarray(chipper.mean, dtype=np.float32)[None, :, None, None]
    std = np.asarray(chipper.std, dtype=np.float32)[None, :, None, None]
    out: np.ndarray[Any, Any] = ((x - mean) / std).astype(np.float32)
    return out
