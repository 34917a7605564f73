"""GeoTIFF/COG reading for :func:`workbench.open_datacube`: single files and time stacks.

A single file opens through xarray's ``rasterio`` engine (rioxarray): one variable
``band_data (band, y, x)``, nodata masked to NaN, ``spatial_ref`` kept. When every band
has a unique description (``B01`` ... ``B12``), the ``band`` coordinate holds those
labels instead of the band numbers.

A list of per-date files is stacked on a ``time`` dim, sorted by date, without reading
pixels: a :class:`StackedArray` indexes the per-file lazy arrays, so a chip reads only
its window of the files it spans. Dates come, in this order of preference, from an
acquisition tag (``DATETIME``, ``ACQUISITIONDATETIME``, ``DATE_ACQUIRED``...), from a
``YYYY-MM-DD`` / ``YYYYMMDD`` date in the file name, or from ``TIFFTAG_DATETIME``
(often the processing time, hence last); ``times=[...]`` gives them explicitly.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from workbench._optional import lazy_import
from workbench.data.naming import date_glob, date_in_name, sibling_mask
from workbench.errors import CRSError, DataReadError, DimensionError
from workbench.geo.crs import get_crs, pixel_centers

__all__ = ["open_geotiff", "open_geotiff_stack", "StackedArray", "date_of"]

_ACQUISITION_TAGS = (
    "DATETIME",
    "ACQUISITIONDATETIME",
    "ACQUISITION_DATETIME",
    "DATE_ACQUIRED",
    "ACQUISITION_DATE",
    "datetime",
)
_PER_FILE_TAGS = {*_ACQUISITION_TAGS, "TIFFTAG_DATETIME"}


def open_geotiff(path: Path | str, **kwargs: Any) -> xr.Dataset:
    """Open one GeoTIFF/COG lazily as ``band_data (band, y, x)`` with labelled bands."""
    lazy_import("rioxarray", extra="io", purpose="reading GeoTIFF files (engine='rasterio')")
    from workbench.data.readers import backend

    ds = xr.open_dataset(path, engine=backend("rasterio"), **kwargs)
    if "band_data" in ds and "band" in ds.dims:
        names = ds["band_data"].attrs.get("long_name")
        names = [names] if isinstance(names, str) else list(names or [])
        if len(names) == ds.sizes["band"] and all(names) and len(set(names)) == len(names):
            ds = ds.assign_coords(band=[str(n) for n in names])
    return ds


def _parse_stamp(text: Any) -> pd.Timestamp | None:
    text = str(text).strip()
    tiff = re.fullmatch(r"(\d{4}):(\d{2}):(\d{2})[ T](.*)", text)  # TIFF "YYYY:MM:DD HH:MM:SS"
    if tiff:
        text = f"{tiff[1]}-{tiff[2]}-{tiff[3]}T{tiff[4]}"
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        return None
    if stamp is pd.NaT:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def date_of(ds: xr.Dataset, path: Path | str) -> pd.Timestamp | None:
    """Return the acquisition date of one opened GeoTIFF (tags, then file name), or None.

    Examples
    --------
    >>> date_of(xr.Dataset(), "S2_L1C_20150711T100008.tif")
    Timestamp('2015-07-11 10:00:08')
    """
    attrs: dict[Any, Any] = dict(ds.attrs)
    for var in ds.data_vars.values():
        attrs.update(var.attrs)
    for tag in _ACQUISITION_TAGS:
        if tag in attrs and (stamp := _parse_stamp(attrs[tag])) is not None:
            return stamp
    if (stamp := date_in_name(Path(path).name)) is not None:
        return stamp
    if "TIFFTAG_DATETIME" in attrs:
        return _parse_stamp(attrs["TIFFTAG_DATETIME"])
    return None


class StackedArray(BackendArray):
    """Lazy stack of same-shaped lazy variables along a new first axis.

    Indexing reads only the selected window of the selected members.
    """

    def __init__(self, members: Sequence[xr.Variable]) -> None:
        self.members = list(members)
        first = self.members[0]
        self.shape = (len(self.members), *first.shape)
        self.dtype = first.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._raw_indexing_method
        )

    def _raw_indexing_method(self, key: tuple[Any, ...]) -> np.ndarray[Any, Any]:
        first, rest = key[0], key[1:]
        picks = np.arange(len(self.members))[first]
        parts = [np.asarray(self.members[int(i)][rest].values) for i in np.atleast_1d(picks)]
        if np.ndim(picks) == 0:
            return parts[0]
        if not parts:
            empty_shape = self.members[0][rest].shape
            return np.empty((0, *empty_shape), dtype=self.dtype)
        return np.stack(parts)


def _describe(ds: xr.Dataset) -> str:
    x, y = pixel_centers(ds)
    return f"sizes {dict(ds.sizes)}, first pixel centre ({x[0]:.6g}, {y[0]:.6g})"


def _check_same_grid(datasets: list[xr.Dataset], paths: list[Path]) -> None:
    ref, ref_path = datasets[0], paths[0]
    ref_x, ref_y = pixel_centers(ref)
    ref_crs = get_crs(ref)
    for ds, path in zip(datasets[1:], paths[1:], strict=True):
        crs = get_crs(ds)
        if crs != ref_crs:
            raise CRSError(
                f"cannot stack GeoTIFFs with different CRSs: {ref_path.name} is "
                f"{ref_crs.to_string() if ref_crs else None}, {path.name} is "
                f"{crs.to_string() if crs else None}; reproject them to one CRS first"
            )
        x, y = pixel_centers(ds)
        same = (
            dict(ds.sizes) == dict(ref.sizes)
            and np.allclose(x, ref_x, rtol=0, atol=1e-6 * max(1.0, abs(x[-1] - x[0])))
            and np.allclose(y, ref_y, rtol=0, atol=1e-6 * max(1.0, abs(y[-1] - y[0])))
            and list(ds.data_vars) == list(ref.data_vars)
        )
        if "band" in ref.coords and same:
            mine, theirs = ds["band"].values.tolist(), ref["band"].values.tolist()
            if mine != theirs:
                raise DimensionError(
                    f"cannot stack GeoTIFFs with different bands: {ref_path.name} has "
                    f"{theirs}, {path.name} has {mine}"
                )
        if not same:
            raise DimensionError(
                f"cannot stack GeoTIFFs on different grids: {ref_path.name} has "
                f"{_describe(ref)}, {path.name} has {_describe(ds)}. Resample them to one grid "
                "first (workbench.composites.resample) or open them one by one"
            )


def _dates(datasets: list[xr.Dataset], paths: list[Path], times: Any) -> list[pd.Timestamp]:
    if times is not None:
        stamps = list(pd.to_datetime(list(times)))
        if len(stamps) != len(paths):
            raise DimensionError(f"got {len(stamps)} times for {len(paths)} files")
        return stamps
    stamps = []
    for ds, path in zip(datasets, paths, strict=True):
        stamp = date_of(ds, path)
        if stamp is None:
            raise DataReadError(
                f"cannot find the date of {str(path)!r}: no {'/'.join(_ACQUISITION_TAGS[:4])} "
                "tag and no YYYY-MM-DD or YYYYMMDD date in the file name. Fix: add a DATETIME "
                "tag, put the date in the file name, or pass times=[...] to open_datacube"
            )
        stamps.append(stamp)
    return stamps


def _image_and_mask(a: Path, b: Path) -> tuple[Path, Path | None]:
    """``(image, its cloud mask)`` when one of the two files is the other's mask."""
    if sibling_mask(a) == b:
        return a, b
    if sibling_mask(b) == a:
        return b, a
    return a, None


def open_geotiff_stack(paths: Sequence[Path], times: Any = None, **kwargs: Any) -> xr.Dataset:
    """Open per-date GeoTIFFs as one lazy cube with a sorted ``time`` dim.

    Raises
    ------
    DataReadError
        If a file's date cannot be found.
    DimensionError
        If the files are on different grids or two share a date.
    CRSError
        If the files have different CRSs.
    """
    paths = [Path(p) for p in paths]
    datasets = [open_geotiff(p, **kwargs) for p in paths]
    stamps = _dates(datasets, paths, times)
    order = sorted(range(len(paths)), key=lambda i: stamps[i])
    for a, b in itertools.pairwise(order):
        if stamps[a] == stamps[b]:
            image, mask = _image_and_mask(paths[a], paths[b])
            if mask is not None:
                raise DimensionError(
                    f"{mask.name} is the cloud mask of {image.name}: a time stack takes the "
                    f"images alone (a glob of them, like {date_glob(image.name)!r}); "
                    "workbench.Catalog.ingest(folder) reads each mask as its image's cloud "
                    "cover, and {name: path} opens an image and its mask as two variables"
                )
            raise DimensionError(
                f"{paths[a].name} and {paths[b].name} have the same date {stamps[a]}: a time "
                "stack needs one file per date. Parts of one scene (bands, masks): open them as "
                "a {name: path} mapping, one variable each; tiles of one date: mosaic them first "
                "(workbench.composites.mosaic); several scenes: workbench.open_collection([...])"
            )
    datasets, paths = [datasets[i] for i in order], [paths[i] for i in order]
    _check_same_grid(datasets, paths)
    time = pd.DatetimeIndex([stamps[i] for i in order], name="time")
    ref = datasets[0]
    lazy = all(not hasattr(v.data, "dask") for v in ref.data_vars.values())
    if not lazy:  # the caller asked for dask (chunks=...): dask stacks lazily by itself
        ds = xr.concat(datasets, dim=time, coords="minimal", compat="override", join="override")
    else:
        data_vars = {}
        for name, var in ref.data_vars.items():
            stacked = StackedArray([d[name].variable for d in datasets])
            encoding = {k: v for k, v in var.encoding.items() if k != "source"}
            if "preferred_chunks" in encoding:
                encoding["preferred_chunks"] = {"time": 1, **encoding["preferred_chunks"]}
            data_vars[name] = xr.Variable(
                ("time", *var.dims), indexing.LazilyIndexedArray(stacked), var.attrs, encoding
            )
        ds = xr.Dataset(data_vars, coords={**ref.coords, "time": time}, attrs=ref.attrs)
    for attrs in (ds.attrs, *(v.attrs for v in ds.data_vars.values())):
        for tag in _PER_FILE_TAGS & set(attrs):
            del attrs[tag]

    def close() -> None:
        for member in datasets:
            member.close()

    ds.set_close(close)
    return ds
