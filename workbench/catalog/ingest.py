"""Turn files and cubes into catalog records: partition, then measure each piece.

For every scene (one date of one source) the pixels are read once; then for every geocode
piece of its grid (:func:`workbench.geo.partition.partition`):

* **pixel coverage** (percent) = share of the geocode cell the data's footprint covers
  (:meth:`Partitions.coverage`) x share of valid values among the piece's own pixels (those whose
  centre lies in the cell) across all bands; a value is valid when finite and not the nodata
  value. 100 means every band has data everywhere in the cell.
* **cloud cover** (percent) = cloudy pixels among the piece's own pixels that are valid in every
  band. The cloud flags come from a mask when there is one (a sibling ``*_CLM_*`` GeoTIFF whose
  band 1 is the mask, or a mask variable of a cube; non-zero = cloud), else from the spectral
  test :func:`workbench.composites.clouds.spectral_cloud_mask` (Fmask potential cloud pixels),
  else NaN (no reflectance bands to test).

Files are referenced where they are (absolute path + pixel window). In-memory cubes are first
written once to a content-addressed Zarr store in the catalog's ``assets/`` folder, so that
:meth:`Catalog.open` can read them back and ingesting the same cube twice gives the same ids.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from workbench.catalog.records import Location, PartitionRecord, record_id
from workbench.composites.clouds import spectral_cloud_mask
from workbench.data import open_datacube
from workbench.errors import CatalogError, DataReadError, DimensionError
from workbench.geo.crs import require_crs, spatial_dims, xy_to_lonlat
from workbench.geo.partition import partition

__all__ = ["Scene", "IngestOptions", "scenes_of", "scene_records", "sibling_mask", "dataset_name"]

_GEOTIFF = (".tif", ".tiff")
_DATE = re.compile(r"[_\-.]?\d{4}-?\d{2}-?\d{2}(?:T[\d:]+)?")
_PRODUCT = re.compile(r"_(L1C|L2A|L1TP|L2SP|SR|TOA|BOA)_", re.IGNORECASE)


@dataclass(frozen=True)
class IngestOptions:
    """Options of :meth:`Catalog.ingest` (see there)."""

    dataset: str | None = None
    scheme: str = "geohash"
    precision: int = 6
    cloud_mask: Any = "auto"
    variables: tuple[str, ...] | None = None
    time_dim: str = "time"
    datetime: Any = None
    spectral: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, eq=False)
class Scene:
    """One date of one source: lazily opened data, where it lives, and its cloud flags."""

    data: xr.Dataset  # spatial variables only, no time dim
    when: pd.Timestamp | None
    dataset: str
    href: str
    format: str
    variables: tuple[str, ...]
    time_index: tuple[str, int] | None  # (dim, position) in the source, if it has a time dim
    cloud: Callable[[], tuple[np.ndarray | None, str]]


def dataset_name(path: Path) -> str:
    """Return the default dataset name of a file: its stem without the date.

    Examples
    --------
    >>> dataset_name(Path("S2_L1C_2015-07-11.tif")), dataset_name(Path("L7_ETMs.tif"))
    ('S2_L1C', 'L7_ETMs')
    """
    stem = _DATE.sub("", path.stem).strip("_-.")
    return stem or path.stem


def sibling_mask(path: Path) -> Path | None:
    """Find the cloud-mask GeoTIFF beside ``path``, if any.

    Tried in order: the product token replaced by ``CLM`` (``S2_L1C_<date>.tif`` ->
    ``S2_CLM_<date>.tif``), then ``<stem>_CLM<suffix>``.

    Examples
    --------
    >>> sibling_mask(Path("/nowhere/S2_L1C_2015-07-11.tif")) is None
    True
    """
    candidates = []
    if _PRODUCT.search(path.name):
        candidates.append(path.with_name(_PRODUCT.sub("_CLM_", path.name, count=1)))
    candidates.append(path.with_name(f"{path.stem}_CLM{path.suffix}"))
    return next((c for c in candidates if c.is_file() and c != path), None)


def _band_names(ds: xr.Dataset, ydim: str, xdim: str) -> tuple[str, ...]:
    names: list[str] = []
    single = len(ds.data_vars) == 1
    for name, var in ds.data_vars.items():
        extra = [d for d in var.dims if d not in (ydim, xdim)]
        if len(extra) == 1 and extra[0] in ds.coords:
            labels = [str(v) for v in ds[extra[0]].values.tolist()]
            names += labels if single else [f"{name}:{lab}" for lab in labels]
        else:
            names.append(str(name))
    return tuple(names)


def _spectral(data: xr.Dataset, options: IngestOptions) -> tuple[np.ndarray | None, str]:
    try:
        flags = spectral_cloud_mask(data, **dict(options.spectral))
    except DimensionError:
        return None, "none"
    ydim, xdim = spatial_dims(data)
    return np.asarray(flags.transpose(..., ydim, xdim).values).reshape(flags.shape[-2:]), "spectral"


def _file_scenes(path: Path, options: IngestOptions) -> Iterator[Scene]:
    href = str(path.resolve())
    dataset = options.dataset or dataset_name(path)
    if path.suffix.lower() in _GEOTIFF:
        if options.cloud_mask not in ("auto", None, False):
            raise CatalogError(
                f"cloud_mask={options.cloud_mask!r} does not apply to the GeoTIFF {path.name}: use "
                "'auto' (a sibling *_CLM_* file), None (spectral test) or False (no cloud cover)"
            )
        ds = open_datacube(path)
        when = options.datetime
        if when is None:
            try:
                when = open_datacube([path]).indexes["time"][0]
            except DataReadError:  # no acquisition date in the tags or the name
                when = None
        mask_path = sibling_mask(path) if options.cloud_mask == "auto" else None

        def cloud(ds: xr.Dataset = ds) -> tuple[np.ndarray | None, str]:
            if options.cloud_mask is False:
                return None, "none"
            if mask_path is not None:
                band = open_datacube(mask_path).band_data.isel(band=0).values
                if band.shape != (ds.sizes["y"], ds.sizes["x"]):
                    raise CatalogError(
                        f"cloud mask {mask_path} has shape {band.shape}, {path} {dict(ds.sizes)}"
                    )
                return np.isfinite(band) & (band != 0), f"mask:{mask_path.name}"
            return _spectral(ds, options)

        variables = tuple(map(str, ds.data_vars))
        yield Scene(ds, _timestamp(when), dataset, href, "geotiff", variables, None, cloud)
        return
    wanted = None
    if options.variables:
        wanted = list(options.variables)
        if isinstance(options.cloud_mask, str) and options.cloud_mask != "auto":
            wanted.append(options.cloud_mask)
    ds = open_datacube(path, variables=wanted)
    fmt = ds.attrs.get("workbench_engine", "netcdf")
    yield from _cube_scenes(
        ds, options, dataset, href, "zarr" if fmt in ("zarr", "kvikio") else fmt
    )


def _timestamp(when: Any) -> pd.Timestamp | None:
    if when is None or (not isinstance(when, str) and pd.isna(when)):
        return None
    ts = pd.Timestamp(when)
    return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")


def _cube_scenes(
    ds: xr.Dataset, options: IngestOptions, dataset: str, href: str, fmt: str
) -> Iterator[Scene]:
    ydim, xdim = spatial_dims(ds)
    mask_name = (
        options.cloud_mask
        if isinstance(options.cloud_mask, str) and options.cloud_mask != "auto"
        else None
    )
    if options.cloud_mask == "auto" and "cloud_mask" in ds.data_vars:
        mask_name = "cloud_mask"
    if mask_name is not None and mask_name not in ds.data_vars:
        raise CatalogError(
            f"cloud_mask={mask_name!r} is not a variable of the cube: "
            f"{sorted(map(str, ds.data_vars))}"
        )
    names = [
        str(n) for n, v in ds.data_vars.items() if {ydim, xdim} <= set(v.dims) and n != mask_name
    ]
    if options.variables:
        names = [n for n in names if n in options.variables]
    if not names:
        raise CatalogError(
            f"no variable with spatial dims ({ydim}, {xdim}) to catalogue in "
            f"{sorted(map(str, ds.data_vars))}"
        )
    tdim = options.time_dim
    for n in names:
        other = [d for d in ds[n].dims if d not in (ydim, xdim, tdim)]
        dated = [d for d in other if d in ds.coords and ds[d].dtype.kind == "M"]
        if dated:
            raise CatalogError(
                f"variable {n!r} has the time dimension {dated[0]!r} but time_dim={tdim!r}; "
                f"pass time_dim={dated[0]!r} (or rename it)"
            )
    steps = range(ds.sizes[tdim]) if tdim in ds.dims else [None]
    for t in steps:
        sel = {tdim: t} if t is not None else {}
        data = ds[names].isel(sel)
        if t is not None and tdim in ds.coords:
            when = _timestamp(ds[tdim].values[t])
        else:
            when = _timestamp(options.datetime)

        def cloud(
            data: xr.Dataset = data, sel: dict[str, Any] = sel
        ) -> tuple[np.ndarray | None, str]:
            if options.cloud_mask is False:
                return None, "none"
            if mask_name is not None:
                m = ds[mask_name].isel(sel).transpose(..., ydim, xdim).values
                m = np.asarray(m).reshape(m.shape[-2:])
                return np.isfinite(m) & (m != 0), f"mask:{mask_name}"
            return _spectral(data, options)

        data = data.drop_vars([tdim], errors="ignore")
        yield Scene(
            data,
            when,
            dataset,
            href,
            fmt,
            tuple(names),
            (tdim, t) if t is not None else None,
            cloud,
        )


def _content_hash(ds: xr.Dataset) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        h.update(
            json.dumps([name, list(map(str, var.dims)), str(var.dtype), list(var.shape)]).encode()
        )
        h.update(
            np.ascontiguousarray(var.values).tobytes()
            if var.dtype.kind != "O"
            else repr(var.values.tolist()).encode()
        )
        h.update(json.dumps(var.attrs, sort_keys=True, default=str).encode())
    h.update(json.dumps(ds.attrs, sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


def materialize(ds: xr.Dataset, assets: Path) -> Path:
    """Write ``ds`` once to ``assets/<content hash>.zarr`` (Zarr v2, atomic rename).

    Returns the store's path; an existing store of the same content is reused.
    """
    clean = ds.copy()
    for var in clean.variables.values():
        var.encoding = {}
    target = assets / f"{_content_hash(clean)}.zarr"
    if target.exists():
        return target
    assets.mkdir(parents=True, exist_ok=True)
    tmp = assets / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        clean.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True)
        tmp.rename(target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.exists():  # else: written meanwhile by another ingest of the same cube
            raise CatalogError(f"could not write the cube to {target}: {exc}") from exc
    return target


def scenes_of(source: Any, options: IngestOptions, assets: Path, root: Path) -> Iterator[Scene]:
    """Scenes of one source: a file path or an xarray cube (materialised under ``assets``)."""
    if isinstance(source, xr.DataArray):
        source = source.to_dataset(name=source.name or "data")
    if isinstance(source, xr.Dataset):
        dataset = options.dataset or source.attrs.get("dataset")
        if not dataset:
            raise CatalogError(
                "an in-memory cube needs a dataset name: pass dataset='...' to ingest"
            )
        store = materialize(source, assets)
        ds = open_datacube(store, engine="zarr")
        yield from _cube_scenes(
            ds, options, str(dataset), store.relative_to(root).as_posix(), "zarr"
        )
        return
    path = Path(source)
    if not path.exists():
        raise DataReadError(f"cannot ingest {source!s}: no such file or store")
    yield from _file_scenes(path, options)


def _window_footprint(x: np.ndarray, y: np.ndarray, crs: Any, n: int = 8) -> Any:
    from shapely.geometry import Polygon

    dx = (x[1] - x[0]) if len(x) > 1 else 0.0
    dy = (y[1] - y[0]) if len(y) > 1 else 0.0
    xe = np.linspace(x[0] - dx / 2, x[-1] + dx / 2, n)
    ye = np.linspace(y[0] - dy / 2, y[-1] + dy / 2, n)
    ring_x = np.concatenate([xe, np.full(n, xe[-1]), xe[::-1], np.full(n, xe[0])])
    ring_y = np.concatenate([np.full(n, ye[0]), ye, np.full(n, ye[-1]), ye[::-1]])
    lon, lat = xy_to_lonlat(ring_x, ring_y, crs) if crs is not None else (ring_x, ring_y)
    return Polygon(np.column_stack([lon, lat])).buffer(0)


def scene_records(scene: Scene, options: IngestOptions) -> list[PartitionRecord]:
    """Partition one scene and measure every piece (reads the scene's pixels once)."""
    import shapely
    from shapely.geometry import box

    data = scene.data
    ydim, xdim = (str(d) for d in spatial_dims(data))
    crs = require_crs(data, "cataloguing by geocode")
    lonlat = crs.is_geographic
    parts = partition(data, options.scheme, options.precision)
    arrays = [np.asarray(v.transpose(..., ydim, xdim).values) for v in data.data_vars.values()]
    stacked = [a.reshape(-1, *a.shape[-2:]) for a in arrays]
    fills = [
        v.attrs.get("_FillValue", v.encoding.get("_FillValue")) for v in data.data_vars.values()
    ]
    n_valid = np.zeros(stacked[0].shape[-2:], dtype=np.int64)
    all_valid = np.ones(stacked[0].shape[-2:], dtype=bool)
    n_bands = 0
    for arr, fill in zip(stacked, fills, strict=True):
        ok = np.isfinite(arr) if arr.dtype.kind in "fc" else np.ones(arr.shape, bool)
        if fill is not None and not (isinstance(fill, float) and np.isnan(fill)):
            ok &= arr != fill
        n_valid += ok.sum(axis=0)
        all_valid &= ok.all(axis=0)
        n_bands += arr.shape[0]
    cloud, cloud_source = scene.cloud()
    bands = _band_names(data, ydim, xdim)
    xs, ys = data[xdim].values, data[ydim].values
    records = []
    for code in parts.codes:
        sl = parts.slices(code)
        rows, cols = sl[ydim], sl[xdim]
        inside = parts.mask(code).values
        own = int(inside.sum())
        valid_share = n_valid[rows, cols][inside].sum() / (own * n_bands) if own else 0.0
        pixel_coverage = min(100.0, 100.0 * parts.coverage(code) * float(valid_share))
        good = all_valid[rows, cols] & inside
        if cloud is None or not good.any():
            cloud_cover = float("nan")
        else:
            cloud_cover = 100.0 * float((cloud[rows, cols] & good).sum()) / float(good.sum())
        isel = {ydim: (rows.start, rows.stop), xdim: (cols.start, cols.stop)}
        if scene.time_index is not None:
            tdim, t = scene.time_index
            isel[tdim] = (t, t + 1)
        loc = Location(
            scene.href, scene.format, isel, scene.variables if scene.format != "geotiff" else ()
        )
        cell = box(*parts.bounds(code))
        foot = _window_footprint(xs[cols], ys[rows], None if lonlat else crs).intersection(cell)
        geom = foot if not foot.is_empty else cell
        records.append(
            PartitionRecord(
                id=record_id(scene.dataset, code, scene.when, loc),
                geocode=code,
                scheme=options.scheme,
                datetime=scene.when,
                dataset=scene.dataset,
                bands=bands,
                bbox=tuple(float(v) for v in geom.bounds),  # type: ignore[arg-type]
                crs=crs.to_string(),
                resolution=float(abs(xs[1] - xs[0])) if len(xs) > 1 else float("nan"),
                width=cols.stop - cols.start,
                height=rows.stop - rows.start,
                cloud_cover=cloud_cover,
                pixel_coverage=pixel_coverage,
                cloud_source=cloud_source,
                location=loc,
                geometry=shapely.to_wkb(geom),
            )
        )
    return records


def expand_sources(sources: Any) -> list[Any]:
    """Return a list of sources from one source, a list, or a glob pattern string."""
    import glob

    if isinstance(sources, (xr.Dataset, xr.DataArray, str, Path)):
        sources = [sources]
    out: list[Any] = []
    for src in sources if isinstance(sources, Sequence) else list(sources):
        if isinstance(src, str) and any(c in src for c in "*?[") and not Path(src).exists():
            matches = sorted(glob.glob(src))
            if not matches:
                raise DataReadError(f"the pattern {src!r} matches no file")
            out += [Path(m) for m in matches]
        else:
            out.append(src)
    return out
