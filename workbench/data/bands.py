"""Band-per-file scenes: single-band files of one scene (or of several dates) as one Dataset.

:func:`open_band_files` takes files (a list, a folder's rasters) or a ``{band: path}``
mapping and returns one Dataset, one variable per band:

* **Names** come from the mapping's keys, else from the file names' convention (Sentinel-2,
  Landsat; :mod:`workbench.data.naming`), else from the part of the names that differs
  (``red_band.nc`` -> ``red``), else from the band's own metadata (a meaningful variable
  name, a GeoTIFF band description), else the file's stem.
* **Dates** come from the names (Sentinel-2's sensing date *and* time), else the file's
  metadata (acquisition tags, a ``time`` coordinate of length one). Files of one date are
  bands of one scene; several dates stack on a sorted ``time`` dim (one date: a scalar
  ``time`` coordinate); files without a date are time-invariant variables (a label map, a
  DEM). A band given twice for one date is an error (tiles, or scenes of a collection).
* **Grids**: bands on different grids (resolutions or extents) are never outer-joined.
  Without ``resolution=`` the error lists the grids found; with it (metres, or a band name)
  every band lands on one grid (:func:`workbench.data.lattice.target_lattice`), resampled
  with ``nearest`` for masks and classes, ``bilinear`` to a finer grid and ``average`` to a
  coarser one (``resampling=`` overrides, for all bands or per band). Bands already on that
  grid stay lazy; resampled ones are read (the window needed) when opened.
* **CRS** is found wherever each file has it and written once as ``spatial_ref``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from xarray.core import indexing

from workbench.data._geotiff import StackedArray, date_of
from workbench.data.lattice import Lattice, choose_method, describe_lattices, onto, target_lattice
from workbench.data.naming import common_name, differing_parts, parse_name
from workbench.errors import BandFilesWarning, CRSError, DataReadError, DimensionError
from workbench.geo.crs import spatial_dims, write_crs

__all__ = [
    "open_band_files",
    "is_time_stack",
    "band_plan",
    "select_bands",
    "regrid",
    "GENERIC_NAMES",
]

#: Variable names that say nothing about the band (what writers use by default).
GENERIC_NAMES = frozenset(
    {
        "band_data", "__xarray_dataarray_variable__", "band", "band1", "band_1", "data",
        "variable", "layer", "layer1", "values", "value", "z", "image", "array", "raster",
    }
)  # fmt: skip
_DROP_ATTRS = (
    "grid_mapping", "crs", "crs_wkt", "spatial_ref", "proj4", "proj4text", "DATETIME",
    "TIFFTAG_DATETIME", "ACQUISITIONDATETIME", "ACQUISITION_DATETIME", "DATE_ACQUIRED",
)  # fmt: skip
_TIME_ATTRS = ("time_coverage_start", "acquisition_time", "sensing_time", "SENSING_TIME")


@dataclass
class _Member:
    path: Path
    band: str | None
    when: pd.Timestamp | None
    sensor: str | None = None
    data: xr.DataArray | None = None
    lattice: Lattice | None = None
    series: bool = False
    meta_name: str | None = None
    route: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)


def _natural(name: str) -> list[tuple[int, Any]]:
    """Sort key of band names: B01 .. B08, B8A, B09 .. B12 (numbers as numbers)."""
    return [(1, int(t)) if t.isdigit() else (0, t.lower()) for t in re.split(r"(\d+)", name) if t]


def band_plan(files: Sequence[Path | str]) -> list[tuple[Path, str | None, pd.Timestamp | None]]:
    """Band name (None: not told by the names) and date of each file, from the names only.

    Examples
    --------
    >>> [(p.name, b) for p, b, _ in band_plan(["T33TWM_20150711T100006_B04_10m.tif", "red.tif"])]
    [('T33TWM_20150711T100006_B04_10m.tif', 'B04'), ('red.tif', 'red')]
    """
    parsed = [parse_name(f) for f in files]
    loose = [i for i, p in enumerate(parsed) if p.band is None]
    parts = differing_parts([parsed[i].path.name for i in loose]) if loose else []
    names: list[str | None] = [p.band for p in parsed]
    for i, part in zip(loose, parts, strict=True):
        names[i] = part or None
    return [(p.path, n, p.when) for p, n in zip(parsed, names, strict=True)]


def is_time_stack(files: Sequence[Path | str]) -> bool:
    """Whether the names differ only in their dates (one file per date, not one per band).

    Examples
    --------
    >>> is_time_stack(["S2_L1C_2015-07-11.tif", "S2_L1C_2015-07-31.tif"])
    True
    >>> is_time_stack(["T33TWM_20150711T100006_B04.tif", "T33TWM_20150711T100006_B08.tif"])
    False
    """
    plan = band_plan(files)
    return len(plan) > 1 and all(band is None for _, band, _ in plan)


def _read(member: _Member, engine: str, kwargs: dict[str, Any]) -> None:
    """Open one file lazily and keep its one spatial variable (or the one named by its band)."""
    from workbench.data.open import open_datacube

    ds = open_datacube(member.path, engine=engine, **kwargs)
    member.route = str(ds.attrs.get("workbench_engine", ""))
    try:
        ydim, xdim = spatial_dims(ds)
    except DimensionError as exc:
        raise DimensionError(f"{member.path.name}: {exc}") from exc
    spatial = [n for n, v in ds.data_vars.items() if {ydim, xdim} <= set(v.dims)]
    if not spatial:
        raise DimensionError(f"{member.path.name} has no variable with dims ({ydim}, {xdim})")
    if len(spatial) > 1:
        if member.band not in spatial:
            raise DimensionError(
                f"{member.path.name} holds several variables {[str(n) for n in spatial]}: a band "
                "file holds one; open it on its own, or name its bands with a {band: path} mapping"
            )
        spatial = [member.band]
    arr = ds[spatial[0]]
    name = str(spatial[0])
    if name not in GENERIC_NAMES:
        member.meta_name = name
    for dim in [d for d in arr.dims if d not in (ydim, xdim)]:
        if arr.sizes[dim] != 1:
            if str(dim) == "time" or (dim in arr.coords and arr[dim].dtype.kind == "M"):
                member.series = True
            continue
        if dim in arr.coords and arr[dim].dtype.kind in "UO" and member.meta_name is None:
            label = str(arr[dim].values[0])
            if label and label not in GENERIC_NAMES and not label.isdigit():
                member.meta_name = label  # a GeoTIFF band description
        if dim in arr.coords and arr[dim].dtype.kind == "M" and member.when is None:
            member.when = pd.Timestamp(arr[dim].values[0])
        arr = arr.isel({dim: 0}, drop=True)
    if member.when is None and not member.series:
        if "time" in arr.coords and arr["time"].ndim == 0 and arr["time"].dtype.kind == "M":
            member.when = pd.Timestamp(arr["time"].values)
        else:
            member.when = date_of(ds, member.path) or _time_attr(ds)
    keep = {n: c for n, c in arr.coords.items() if set(c.dims) <= set(arr.dims) and c.ndim > 0}
    member.data = arr.reset_coords(drop=True).assign_coords(keep)
    member.lattice = Lattice.of(ds[spatial[0]])
    member.attrs = {k: v for k, v in arr.attrs.items() if k not in _DROP_ATTRS}


def _time_attr(ds: xr.Dataset) -> pd.Timestamp | None:
    for key in _TIME_ATTRS:
        value = ds.attrs.get(key)
        if isinstance(value, str):
            try:
                stamp = pd.Timestamp(value)
            except ValueError:
                continue
            return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp
    return None


def _members(source: Sequence[Path | str] | Mapping[str, Any], when: Any) -> list[_Member]:
    if isinstance(source, Mapping):
        out = [_Member(Path(str(p)), str(b), None) for b, p in source.items()]
        for m in out:
            m.sensor = parse_name(m.path).sensor
    else:
        out = []
        for path, band, stamp in band_plan(list(source)):
            out.append(_Member(path, band, stamp, parse_name(path).sensor))
    if when is not None:
        stamp = pd.Timestamp(when)
        stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp
        for m in out:
            m.when = stamp
    return out


def _file_name(member: _Member, explicit: bool) -> str | None:
    """Return the band name the file (or the mapping) gives, or None: its metadata must say."""
    if explicit or parse_name(member.path).band:
        return member.band
    told = member.band
    return told if told and not told.replace("_", "").isdigit() else None


def _metadata_name(member: _Member) -> str:
    """Return the band's own name (variable, band description), else the file name's."""
    return member.meta_name or member.band or parse_name(member.path).scene or member.path.stem


def _finest_copies(members: list[_Member]) -> list[_Member]:
    """Keep the finest file of a band given at several resolutions (``B04_10m``, ``B04_20m``).

    Sentinel-2 L2A products hold most bands again at 20 and 60 m (``R20m``, ``R60m``); a glob
    over all of them gives each such band several times. The finest is kept, with a warning.
    """
    groups: dict[tuple[str, Any], list[_Member]] = {}
    for m in members:
        groups.setdefault((str(m.band), m.when), []).append(m)
    keep: list[_Member] = []
    for (band, _), group in groups.items():
        res = [parse_name(m.path).resolution for m in group]
        if len(group) > 1 and None not in res and len(set(res)) == len(res):
            best = group[int(np.argmin([r or 0.0 for r in res]))]
            warnings.warn(
                f"band {band} is given at {sorted(r for r in res if r is not None)} m "
                f"({', '.join(m.path.name for m in group)}): the finest, {best.path.name}, is "
                "used; pass only one resolution's files (e.g. the R10m folder) to choose",
                BandFilesWarning,
                stacklevel=4,
            )
            keep.append(best)
        else:
            keep.extend(group)
    return [m for m in members if m in keep]


def _check_dates(members: list[_Member]) -> None:
    seen: dict[tuple[str, Any], Path] = {}
    for m in members:
        key = (str(m.band), m.when)
        if key in seen:
            date = "no date" if m.when is None else str(m.when)
            raise DimensionError(
                f"{seen[key].name} and {m.path.name} are both band {m.band!r} of {date}: one "
                "scene has each band once. Tiles of one date: mosaic them first "
                "(workbench.composites.mosaic); several scenes: workbench.open_collection([...]); "
                "bands the names do not tell apart: pass a {band: path} mapping"
            )
        seen[key] = m.path
    dated = [m for m in members if m.when is not None and not m.series]
    dates = sorted({m.when for m in dated if m.when is not None})
    if len(dates) > 1:
        bands = sorted({str(m.band) for m in dated}, key=_natural)
        have = {d: {str(m.band) for m in dated if m.when == d} for d in dates}
        missing = {str(d): sorted(set(bands) - b) for d, b in have.items() if set(bands) - b}
        if missing:
            raise DimensionError(
                f"the dates do not all have the same bands {bands}: missing {missing}. Select "
                "the bands every date has (bands=[...]) or open the dates one by one"
            )
    names = {str(m.band) for m in dated}
    both = sorted({str(m.band) for m in members if m.when is None} & names)
    if both:
        raise DimensionError(
            f"band(s) {both} have files with and without a date; give every file of a band "
            "its date (in the name, or a DATETIME tag)"
        )


def _grid(members: list[_Member], resolution: float | str | None) -> Lattice:
    labels: dict[str, Lattice] = {}
    several = len({m.when for m in members if m.when is not None and not m.series}) > 1
    for m in members:
        assert m.lattice is not None
        dated = several and m.when is not None and not m.series
        label = f"{m.band} ({m.when:%Y-%m-%d})" if dated else str(m.band)
        labels.setdefault(label, m.lattice)
    first = next(iter(labels.values()))
    if resolution is None:
        if any(not lat.same_crs(first) for lat in labels.values()):
            crss = {n: lat.crs.to_string() if lat.crs else None for n, lat in labels.items()}
            raise CRSError(
                f"the band files are in different CRSs {crss}: open them as scenes of "
                "workbench.open_collection(..., crs=...), which warps them to one CRS"
            )
        if any(lat != first for lat in labels.values()):
            raise DimensionError(
                "the band files are on different grids, and bands are never outer-joined onto "
                f"a NaN-padded grid: {describe_lattices(labels)}. Choose the grid: "
                "resolution=<metres> (e.g. resolution=10) or resolution='<band>' (that band's "
                "grid); every band is then resampled onto it over the extent all bands cover"
            )
        return first
    if isinstance(resolution, str) and resolution not in labels:
        named = next((m.lattice for m in members if m.band == resolution), None)
        if named is not None:
            labels = {resolution: named, **labels}
    return target_lattice(labels, resolution)


def _stack(parts: list[xr.DataArray]) -> Any:
    lazy = all(not p.variable._in_memory and p.variable.chunks is None for p in parts)
    if lazy:
        return indexing.LazilyIndexedArray(StackedArray([p.variable for p in parts]))
    return np.stack([np.asarray(p.values) for p in parts])


def open_band_files(
    source: Sequence[Path | str] | Mapping[str, Any],
    *,
    bands: Sequence[str] | None = None,
    resolution: float | str | None = None,
    resampling: str | Mapping[str, str] | None = None,
    when: Any = None,
    engine: str = "auto",
    **kwargs: Any,
) -> xr.Dataset:
    """Open band files of one scene (or of several dates) as one Dataset; see the module docs.

    Parameters
    ----------
    source : sequence of paths or mapping of band name to path
        The band files.
    bands : sequence of str, optional
        Bands to keep, in this order (default: all, in natural order: B01 .. B08, B8A, B09).
    resolution : float or str, optional
        Common pixel size in the data's CRS units, or the name of the band whose grid to take.
        Needed when the bands are on different grids.
    resampling : str or mapping, optional
        Method for every resampled band, or per band (others: the default choice).
    when : optional
        Acquisition time of all files (e.g. from a STAC item).
    engine : str
        Reader of each file (see :func:`workbench.open_datacube`).
    **kwargs
        Passed to the reader.

    Raises
    ------
    DimensionError
        Unknown ``bands``; a band twice on one date; dates with different bands; bands on
        different grids without ``resolution=``; bands that do not overlap.
    CRSError
        Files in different CRSs.
    DataReadError
        A file cannot be read.
    """
    explicit = isinstance(source, Mapping)
    members = _members(source, when)
    if not members:
        raise DataReadError("no band file to open: give at least one path")
    known = {id(m): _file_name(m, explicit) for m in members}
    skipped = [
        m for m in members if bands is not None and known[id(m)] not in (None, *bands)
    ]  # named by their files and not wanted: never opened
    wanted = [m for m in members if m not in skipped]
    for m in wanted:
        _read(m, engine, dict(kwargs))
        m.band = known[id(m)] or _metadata_name(m)
    if bands is not None:
        available = sorted(
            {str(m.band) for m in wanted} | {str(known[id(m)]) for m in skipped}, key=_natural
        )
        unknown = [b for b in bands if b not in available]
        if unknown:
            raise DimensionError(f"bands {unknown} are not among the files' bands {available}")
        wanted = [m for m in wanted if m.band in bands]
    wanted = _finest_copies(wanted)
    _check_dates(wanted)
    target = _grid(wanted, resolution)
    if bands is not None:
        names = list(bands)
    elif explicit:
        names = [str(m.band) for m in wanted]
    else:
        names = sorted({str(m.band) for m in wanted}, key=_natural)
    return _assemble(wanted, list(dict.fromkeys(names)), target, resampling)


def _assemble(
    members: list[_Member], names: list[str], target: Lattice, resampling: Any
) -> xr.Dataset:
    ydim, xdim = target.ydim, target.xdim
    dates = sorted({m.when for m in members if m.when is not None and not m.series})
    stacked = len(dates) > 1
    data_vars: dict[Hashable, xr.Variable] = {}
    coords: dict[Hashable, Any] = {}
    for name in names:
        group = [m for m in members if m.band == name]
        parts, methods = [], set()
        for m in sorted(group, key=lambda m: (m.when is None, m.when or pd.Timestamp(0))):
            assert m.data is not None
            assert m.lattice is not None
            arr = m.data.rename({m.lattice.ydim: ydim, m.lattice.xdim: xdim})
            src = Lattice(
                m.lattice.crs, m.lattice.x0, m.lattice.y0, m.lattice.dx, m.lattice.dy,
                m.lattice.nx, m.lattice.ny, ydim, xdim,
            )  # fmt: skip
            method = choose_method(name, m.attrs, src, target, resampling)
            out, resampled = onto(arr, src, target, method)
            if resampled:
                methods.add(method)
            if out.ndim > 2 and not m.series:  # a multi-band file: its own band dim
                extra = [d for d in out.dims if d not in (ydim, xdim)]
                out = out.rename({d: f"{name}_{d}" for d in extra})
            parts.append(out)
        first = group[0]
        assert first.lattice is not None
        attrs = dict(first.attrs)
        attrs.setdefault("resolution", round(float(first.lattice.res), 6))
        common = common_name(name, first.sensor)
        if common:
            attrs.setdefault("common_name", common)
        if methods:
            attrs["resampling"] = ",".join(sorted(methods))
        encoding: dict[str, Any] = {"source": str(first.path)}
        chunks = parts[0].encoding.get("preferred_chunks")
        if chunks:
            encoding["preferred_chunks"] = {d: c for d, c in chunks.items() if d in parts[0].dims}
        timed = stacked and first.when is not None and not first.series
        if timed:
            if chunks:
                encoding["preferred_chunks"] = {"time": 1, **encoding["preferred_chunks"]}
            var = xr.Variable(("time", *parts[0].dims), _stack(parts), attrs, encoding)
        else:
            var = parts[0].variable.copy(deep=False)
            var.attrs, var.encoding = attrs, encoding
            for n, c in parts[0].coords.items():
                if n not in (ydim, xdim) and n not in coords:
                    coords[n] = c.variable
        data_vars[name] = var
    grid = target.template()
    coords.update({ydim: grid[ydim].variable, xdim: grid[xdim].variable})
    if stacked:
        coords["time"] = pd.DatetimeIndex(dates, name="time")
    elif dates:
        coords["time"] = xr.Variable((), np.datetime64(dates[0], "ns"))
    ds = xr.Dataset(data_vars, coords=coords)
    if target.crs is not None:
        ds = write_crs(ds, target.crs)
    if any(m.series for m in members) and stacked:
        raise DimensionError(
            "some band files hold a time series and others one date each; open them apart"
        )
    routes = sorted({m.route for m in members if m.route})
    ds.attrs["workbench_engine"] = routes[0] if len(routes) == 1 else ",".join(routes)
    ds.attrs["band_files"] = len(members)
    return ds


def select_bands(ds: xr.Dataset, bands: Sequence[str]) -> xr.Dataset:
    """Keep ``bands`` of a Dataset: variables, or labels of a ``band`` dimension.

    Raises
    ------
    DimensionError
        A band that is neither (the message lists what there is).
    """
    names = [str(b) for b in bands]
    if all(n in ds.data_vars for n in names):
        kept = ds[names]
        extra = {n: c for n, c in ds.coords.items() if n not in kept.coords}
        return kept.assign_coords(extra)
    if "band" in ds.coords and ds["band"].ndim == 1:
        labels = [str(v) for v in ds["band"].values.tolist()]
        if all(n in labels for n in names):
            return ds.isel(band=[labels.index(n) for n in names])
    else:
        labels = []
    raise DimensionError(
        f"bands {[n for n in names if n not in ds.data_vars and n not in labels]} are not in the "
        f"data: its variables are {sorted(map(str, ds.data_vars))}"
        + (f" and its band labels {labels}" if labels else "")
    )


def regrid(
    ds: xr.Dataset, resolution: float | str, resampling: str | Mapping[str, str] | None = None
) -> xr.Dataset:
    """Put every spatial variable of ``ds`` on the grid of ``resolution`` (see ``target_lattice``).

    A no-op when the data is already on it; otherwise each variable is read (the window
    needed) and resampled, ``nearest`` for masks and classes.
    """
    src = Lattice.of(ds)
    names = [str(n) for n in ds.data_vars if {src.ydim, src.xdim} <= set(ds[n].dims)]
    choice = src if isinstance(resolution, str) and resolution in (*names, "finest") else None
    target = choice or target_lattice({"data": src}, resolution)
    if target == src:
        return ds
    out = {}
    for name in names:
        method = choose_method(name, ds[name].attrs, src, target, resampling)
        arr, resampled = onto(ds[name], src, target, method)
        if resampled:
            arr.attrs["resampling"] = method
        out[name] = arr
    grid = target.template()
    result = ds.drop_dims([src.ydim, src.xdim]).assign(out)
    result = result.assign_coords({src.ydim: grid[src.ydim], src.xdim: grid[src.xdim]})
    return write_crs(result, target.crs) if target.crs is not None else result
