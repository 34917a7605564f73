"""The SpAGAN task: cloudy/cloud-free pairs of the eo-learn Sentinel-2 series, from the catalog.

The eo-learn series (``eolearn_s2_slovenia/geotiff``) has five full-band dates with s2cloudless
masks: three clear (2015-07-11, 08-30, 09-09) and two cloudy (07-31 thin, 08-20 thick).
:func:`s2_cloud_catalog` ingests the L1C GeoTIFFs (cloud cover from the sibling masks) and the
masks themselves (dataset ``S2_CLM``) at a geohash precision. :func:`cloud_task` pairs every
clear piece with the temporally closest cloudy piece of the same geocode
(:func:`~workbench.catalog.pairs.cloud_pairs`, the paper's rule), cuts the pairs into chips with
:class:`PairChipper` (RGB digital numbers over ``scale``: reflectance 0.35 -> 1, clipped to
[0, 1]; inputs the cloudy chip, the clear chip and the cloudy date's mask:
:class:`~workbench.models.spagan.SpAGAN`'s training pack; targets the clear chip and the
mask), holds out ``fraction`` of the chip locations of every partition (all their pairs) and
augments the training chips with the 8 flips and rotations.
:func:`composite_chips` builds the temporal-composite baseline of held-out chips: the median of
the other dates' cloud-free observations (:func:`workbench.composites.composite`).

Examples
--------
>>> import numpy as np, xarray as xr
>>> bands = ["B02", "B03", "B04"]
>>> img = lambda v: xr.Dataset({"band_data": (("band", "y", "x"), np.full((3, 16, 16), v))},
...                            coords={"band": bands, "y": np.arange(16.0), "x": np.arange(16.0)})
>>> mask = xr.Dataset({"band_data": (("band", "y", "x"), np.ones((2, 16, 16)))},
...                   coords={"band": [1, 2], "y": np.arange(16.0), "x": np.arange(16.0)})
>>> chips = PairChipper(size=16, lonlat=False)((img(3500), img(350), mask))
>>> chips.x.shape, chips.y.shape, float(chips.x[0, 0, 0, 0]), round(float(chips.y[0, 0, 0, 0]), 4)
((1, 7, 16, 16), (1, 4, 16, 16), 1.0, 0.1)
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench._typing import PathLike
from workbench.catalog.pairs import cloud_pairs
from workbench.chips.staged import KEY_SEP, ChipTable, PieceChips, chip_table
from workbench.errors import CatalogError, DataReadError
from workbench.training.ndvi import RGB, holdout_split

__all__ = ["PairChipper", "CloudTask", "s2_cloud_catalog", "cloud_task", "composite_chips"]

_DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


def _rgb(piece: Any, bands: tuple[str, ...], scale: float) -> np.ndarray[Any, Any]:
    """Bands as ``value / scale`` clipped to [0, 1]."""
    data = piece["band_data"] if "band_data" in piece else piece[next(iter(piece.data_vars))]
    try:
        arr = data.sel(band=list(bands)).values
    except KeyError as exc:
        raise DataReadError(f"the piece lacks bands {bands}: {exc}") from exc
    arr = np.asarray(arr, dtype=np.float64).reshape(len(bands), *arr.shape[-2:])
    return np.clip(arr / scale, 0.0, 1.0)


def _mask(piece: Any) -> np.ndarray[Any, Any]:
    data = piece["band_data"] if "band_data" in piece else piece[next(iter(piece.data_vars))]
    arr = np.asarray(data.values, dtype=np.float64)
    arr = arr.reshape(-1, *arr.shape[-2:])[0]  # band 1: the s2cloudless mask (1 = cloud)
    out: np.ndarray[Any, Any] = (np.nan_to_num(arr) > 0).astype(np.float64)[None]
    return out


def _blocks(arr: np.ndarray[Any, Any], c: int) -> np.ndarray[Any, Any]:
    """``(C, H, W)`` -> ``(k, C, c, c)`` non-overlapping chips, row by row."""
    ch, h, w = arr.shape[0], (arr.shape[1] // c) * c, (arr.shape[2] // c) * c
    out: np.ndarray[Any, Any] = (
        arr[:, :h, :w].reshape(ch, h // c, c, w // c, c).transpose(1, 3, 0, 2, 4)
    ).reshape(-1, ch, c, c)
    return out


@dataclass(frozen=True)
class PairChipper:
    """``(cloudy, clear, mask)`` pieces -> chips (a picklable chipper; module docstring)."""

    size: int = 16
    bands: tuple[str, ...] = RGB
    scale: float = 0.35 * 10_000
    augment: bool = False
    lonlat: bool = True
    channels: tuple[str, ...] = ("cloudy", "clear", "mask")

    def __call__(self, pieces: Any) -> PieceChips:
        """Cut a pair (cloudy, clear, mask of the cloudy date) into chips, row by row."""
        if not isinstance(pieces, tuple) or len(pieces) != 3:
            raise DataReadError(
                "PairChipper chips a key of three records: cloudy|clear|mask, got "
                f"{type(pieces).__name__}"
            )
        cloudy, clear, mask = pieces
        c = self.size
        stack = np.concatenate(
            [_rgb(cloudy, self.bands, self.scale), _rgb(clear, self.bands, self.scale), _mask(mask)]
        )
        chips = _blocks(stack, c)
        ok = np.isfinite(chips).all(axis=(1, 2, 3))
        chips = chips[ok]
        lon, lat = self._centres(clear, c, ok)
        if self.augment:
            chips = np.stack(
                [
                    np.rot90(ch[:, :, ::-1] if f else ch, k, axes=(1, 2))
                    for ch in chips
                    for k, f in _DIHEDRAL
                ]
            )
            lon, lat = np.repeat(lon, len(_DIHEDRAL)), np.repeat(lat, len(_DIHEDRAL))
        n = len(self.bands)
        x = np.ascontiguousarray(chips, dtype=np.float32)
        y = np.ascontiguousarray(chips[:, n:], dtype=np.float32)
        return PieceChips(x, y, lon, lat)

    def _centres(self, piece: Any, c: int, ok: np.ndarray[Any, Any]) -> tuple[Any, Any]:
        ydim = next(d for d in piece.dims if d in ("y", "lat"))
        xdim = next(d for d in piece.dims if d in ("x", "lon"))
        ys = np.asarray(piece[ydim].values, dtype=np.float64)
        xs = np.asarray(piece[xdim].values, dtype=np.float64)
        cy = ys[: (len(ys) // c) * c].reshape(-1, c).mean(axis=1)
        cx = xs[: (len(xs) // c) * c].reshape(-1, c).mean(axis=1)
        gy, gx = np.meshgrid(cy, cx, indexing="ij")
        gx, gy = gx.ravel()[ok], gy.ravel()[ok]
        if not self.lonlat:
            return gx, gy
        from workbench.geo.crs import xy_to_lonlat

        crs = piece.attrs.get("crs")
        if not crs:
            raise DataReadError("a piece without attrs['crs']: open it with Catalog.open")
        lon, lat = xy_to_lonlat(gx, gy, crs)
        return np.asarray(lon), np.asarray(lat)


def s2_cloud_catalog(folder: PathLike, root: PathLike, *, precision: int = 6) -> Any:
    """Ingest ``S2_L1C_*.tif`` (cloud cover from the masks) and ``S2_CLM_*.tif`` at ``root``.

    Raises
    ------
    DataReadError
        If ``folder`` holds no ``S2_L1C_*.tif`` with sibling ``S2_CLM_*.tif`` masks.
    """
    from workbench.catalog import Catalog

    images = sorted(glob.glob(str(Path(folder) / "S2_L1C_*.tif")))
    masks = sorted(glob.glob(str(Path(folder) / "S2_CLM_*.tif")))
    if not images or len(masks) != len(images):
        raise DataReadError(
            f"{str(folder)!r} needs S2_L1C_<date>.tif images with S2_CLM_<date>.tif masks "
            f"(found {len(images)} images, {len(masks)} masks)"
        )
    catalog = Catalog(root)
    catalog.ingest(images, dataset="S2_L1C", precision=precision)
    catalog.ingest(masks, dataset="S2_CLM", precision=precision, cloud_mask=False)
    return catalog


@dataclass(frozen=True)
class CloudTask:
    """Pairs, the records to stage, chippers and the train / held-out chip tables."""

    catalog: Any
    pairs: pd.DataFrame
    records: pd.DataFrame
    chipper: PairChipper
    train: ChipTable
    held_out: ChipTable
    partition_precision: int


def _keys(catalog: Any, pairs: pd.DataFrame) -> list[str]:
    recs = catalog.records
    masks = recs[recs["dataset"] == "S2_CLM"].set_index(["geocode", "datetime"])["id"]
    cloudy = recs.set_index("id")
    keys = []
    for _, p in pairs.iterrows():
        when = cloudy.loc[p["cloudy_id"], "datetime"]
        try:
            mask_id = masks.loc[(p["geocode"], when)]
        except KeyError as exc:
            raise CatalogError(f"no S2_CLM mask for {p['geocode']} at {when}") from exc
        keys.append(KEY_SEP.join([p["cloudy_id"], p["clear_id"], str(mask_id)]))
    return keys


def cloud_task(
    catalog: Any, *, size: int = 16, fraction: float = 0.2, seed: int = 0, code_precision: int = 9
) -> CloudTask:
    """Pairs (paper's rule), chips, a held-out share of chip locations, augmented training chips."""
    recs = catalog.records
    pairs = cloud_pairs(recs[recs["dataset"] == "S2_L1C"])
    if not len(pairs):
        raise CatalogError("no cloudy/clear pair in the catalog: it needs clear and cloudy dates")
    keys = _keys(catalog, pairs)
    plain = PairChipper(size=size)
    table = chip_table(catalog, keys, plain, precision=code_precision)
    precision = len(str(pairs["geocode"].iloc[0]))
    locations = np.unique(table.codes)
    _, held_idx = holdout_split(
        [c[:precision] for c in locations.tolist()], fraction=fraction, seed=seed
    )
    held = np.isin(table.codes, locations[held_idx])
    augmented = replace(plain, augment=True)
    big = chip_table(catalog, keys, augmented, precision=code_precision)
    ids = {i for k in keys for i in k.split(KEY_SEP)}
    return CloudTask(
        catalog=catalog,
        pairs=pairs.assign(key=keys),
        records=recs[recs["id"].isin(ids)].reset_index(drop=True),
        chipper=augmented,
        train=big.take(np.flatnonzero(~np.isin(big.codes, locations[held_idx]))),
        held_out=table.take(np.flatnonzero(held)),
        partition_precision=precision,
    )


def composite_chips(task: CloudTask, table: ChipTable) -> np.ndarray[Any, Any]:
    """Return the temporal-composite baseline of each chip of ``table`` (same order, k x C x h x w).

    For a chip of the pair (cloudy, clear at date t), the per-pixel median of the geocode's
    other dates, each masked by its cloud mask (:func:`workbench.composites.composite`); a
    pixel no other date sees clear is 0.
    """
    import xarray as xr

    from workbench.composites import composite

    recs = task.catalog.records
    chipper = task.chipper if not task.chipper.augment else replace(task.chipper, augment=False)
    out = np.zeros((len(table), len(chipper.bands), chipper.size, chipper.size), np.float32)
    for key in dict.fromkeys(table.record_ids.tolist()):
        cloudy_id, clear_id, mask_id = key.split(KEY_SEP)
        clear = recs.set_index("id").loc[clear_id]
        others = recs[
            (recs["geocode"] == clear["geocode"]) & (recs["datetime"] != clear["datetime"])
        ]
        images = others[others["dataset"] == "S2_L1C"].sort_values("datetime")
        masks = others[others["dataset"] == "S2_CLM"].sort_values("datetime")
        stack = task.catalog.open(images, stack=True)
        cloud = task.catalog.open(masks, stack=True)["band_data"].isel(band=0, drop=True)
        cloud = xr.DataArray(cloud.values > 0, dims=cloud.dims, coords={"time": stack["time"]})
        med = composite(stack[["band_data"]], cloud_mask=cloud, method="median")
        med = med[["band_data"]].fillna(0.0).assign_attrs(stack.attrs)
        pieces = task.catalog.open(cloudy_id), med, task.catalog.open(mask_id)
        chips = chipper(pieces)
        rows = np.flatnonzero(table.record_ids == key)
        out[rows] = chips.y[table.positions[rows], : len(chipper.bands)]
    return out
