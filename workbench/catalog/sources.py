"""What a catalog ingests: sources turned into scenes (one date of one source each).

Sources are found with :func:`workbench.data.scenes.find_scenes`, so band files of one scene are
one source (never one dataset per band) and a STAC Item is one source whose properties come
along. A scene here is one date of one source:

* a multi-band GeoTIFF (one date): its bands; cloud flags from a sibling ``*_CLM_*`` mask;
* band files or a STAC Item (:mod:`workbench.data.bands`): one variable per band, put on the
  finest band's grid unless ``resolution=`` says otherwise; the pixels stay in their files (the
  record's location lists them);
* a NetCDF/Zarr cube: one scene per step of its time dim;
* an in-memory cube: written once to a content-addressed Zarr store under ``assets/``.

Cloud and snow flags come, in this order, from the provider's mask in the scene
(:func:`workbench.composites.qa.provider_masks`: SCL, QA_PIXEL, QA60, MSK_CLDPRB, a
``cloud_mask`` variable), a sibling mask file, or the spectral tests (Fmask potential cloud
pixels with snow apart, :mod:`workbench.composites.clouds`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time as _time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from workbench._files import pid_alive, temporary_path, writer_pid
from workbench.composites.clouds import spectral_cloud_mask, spectral_snow_mask
from workbench.composites.qa import mask_variables, provider_masks
from workbench.data import open_datacube
from workbench.data._geotiff import date_of
from workbench.data.naming import parse_name, sibling_mask
from workbench.data.scenes import SceneRef, raster_files
from workbench.errors import BandFilesWarning, CatalogError, DataReadError, DimensionError
from workbench.geo.crs import spatial_dims

__all__ = [
    "Scene",
    "IngestOptions",
    "scenes_of",
    "sibling_mask",
    "dataset_name",
    "materialize",
    "clean_assets",
]

_GEOTIFF = (".tif", ".tiff")
_DATE = re.compile(r"[_\-.]?\d{4}-?\d{2}-?\d{2}(?:T[\d:]+)?")
#: A half-written asset store older than this (seconds), or whose writer is gone, is removed.
STALE_AFTER = 3600.0

Flags = tuple["np.ndarray[Any, Any] | None", "np.ndarray[Any, Any] | None", str]


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
    properties: str = "{}"  # JSON
    resolution: Any = None
    bands: tuple[str, ...] | None = None


@dataclass(frozen=True, eq=False)
class Scene:
    """One date of one source: lazily opened data, where it lives, its cloud and snow flags."""

    data: xr.Dataset  # spatial variables only, no time dim
    when: pd.Timestamp | None
    dataset: str
    href: str
    format: str
    variables: tuple[str, ...]
    time_index: tuple[str, int] | None  # (dim, position) in the source, if it has a time dim
    flags: Callable[[], Flags]  # (cloud, snow, source)
    scene_id: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    assets: dict[str, str] = field(default_factory=dict)
    open_options: dict[str, Any] = field(default_factory=dict)
    masks: tuple[str, ...] = ()  # variables that are flags, not bands, for pixel coverage


def dataset_name(path: Path) -> str:
    """Return the default dataset name of a file: its stem without the date.

    Examples
    --------
    >>> dataset_name(Path("S2_L1C_2015-07-11.tif")), dataset_name(Path("L7_ETMs.tif"))
    ('S2_L1C', 'L7_ETMs')
    """
    stem = _DATE.sub("", path.stem).strip("_-.")
    return stem or path.stem


def _band_dataset(ref: SceneRef, first: Path | None) -> str:
    """Default dataset of a band scene: the product (``sentinel-2``, ``LE07_L2SP``...)."""
    if first is not None:
        parsed = parse_name(first)
        if parsed.convention == "landsat":
            return "_".join(parsed.scene.split("_")[:2]).upper()
        if parsed.convention == "sentinel-2":
            level = re.search(r"(L1C|L2A)", parsed.path.name, re.IGNORECASE)
            return f"sentinel-2-{level[1].lower()}" if level else "sentinel-2"
    collection = ref.properties.get("collection")
    return str(collection) if collection else dataset_name(Path(ref.id or "scene"))


def _timestamp(when: Any) -> pd.Timestamp | None:
    if when is None or (not isinstance(when, str) and pd.isna(when)):
        return None
    ts = pd.Timestamp(when)
    return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")


# -- cloud and snow flags ------------------------------------------------------------------------
def _plane(arr: xr.DataArray, ydim: str, xdim: str) -> np.ndarray[Any, Any]:
    values = np.asarray(arr.transpose(..., ydim, xdim).values)
    return values.reshape(values.shape[-2:])


def _spectral(data: xr.Dataset, options: IngestOptions) -> Flags:
    """Spectral cloud flags (snow apart) and snow flags, or no flags without the bands."""
    ydim, xdim = (str(d) for d in spatial_dims(data))
    try:
        cloud = _plane(spectral_cloud_mask(data, **dict(options.spectral)), ydim, xdim)
    except DimensionError:
        return None, None, "none"
    try:
        snow = _plane(spectral_snow_mask(data, **dict(options.spectral)), ydim, xdim)
    except DimensionError:
        snow = None
    return cloud, snow, "spectral"


def _provider(data: xr.Dataset, options: IngestOptions, name: str | None) -> Flags | None:
    found = provider_masks(data, name)
    if found is None:
        return None
    ydim, xdim = (str(d) for d in spatial_dims(data))
    cloud = _plane(found.cloud, ydim, xdim)
    if found.snow is not None:
        snow: np.ndarray[Any, Any] | None = _plane(found.snow, ydim, xdim)
    else:
        bands = data.drop_vars([v for v in found.variables if v in data.data_vars])
        snow = _spectral(bands, options)[1]
    return cloud, snow, found.source


def scene_flags(data: xr.Dataset, options: IngestOptions, sibling: Path | None = None) -> Flags:
    """Cloud and snow flags of one scene (see the module docs for the order), and their source."""
    if options.cloud_mask is False:
        return None, None, "none"
    if isinstance(options.cloud_mask, str) and options.cloud_mask != "auto":
        if options.cloud_mask not in data.data_vars:
            raise CatalogError(
                f"cloud_mask={options.cloud_mask!r} is not a variable of the scene: "
                f"{sorted(map(str, data.data_vars))}"
            )
        found = _provider(data, options, options.cloud_mask)
        assert found is not None
        return found
    if options.cloud_mask == "auto":
        found = _provider(data, options, None)
        if found is not None:
            return found
        if sibling is not None:
            band = open_datacube(sibling).band_data.isel(band=0).values
            ydim, xdim = (str(d) for d in spatial_dims(data))
            if band.shape != (data.sizes[ydim], data.sizes[xdim]):
                raise CatalogError(
                    f"cloud mask {sibling} has shape {band.shape}, the scene {dict(data.sizes)}"
                )
            return (
                np.isfinite(band) & (band != 0),
                _spectral(data, options)[1],
                f"mask:{sibling.name}",
            )
    return _spectral(data, options)


# -- assets ----------------------------------------------------------------------------------
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


def clean_assets(assets: Path) -> list[Path]:
    """Remove what interrupted ingests left in ``assets/``; return what was removed.

    A temporary store ``.<name>.<pid>.<token>.tmp`` is half-written when its writer process
    is gone (or, for older names without a pid, after :data:`STALE_AFTER` seconds); a final
    ``<hash>.zarr`` without its consolidated metadata never finished either.
    """
    removed: list[Path] = []
    if not assets.is_dir():
        return removed
    now = _time.time()
    for path in assets.iterdir():
        stale = False
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            pid = writer_pid(path)
            age = now - path.stat().st_mtime
            stale = (pid is not None and not pid_alive(pid)) or (pid is None and age > STALE_AFTER)
        elif path.suffix == ".zarr" and path.is_dir():
            stale = not (path / ".zmetadata").is_file() and not (path / "zarr.json").is_file()
        if stale:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
            removed.append(path)
    return removed


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
    tmp = temporary_path(target)
    try:
        clean.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True)
        tmp.rename(target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.exists():  # else: written meanwhile by another ingest of the same cube
            raise CatalogError(f"could not write the cube to {target}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# -- sources -> scenes -----------------------------------------------------------------------
def _lonely_band(path: Path) -> None:
    """Warn when a file is one band of a scene whose other bands lie beside it."""
    parsed = parse_name(path)
    if not parsed.convention or parsed.band is None or not path.parent.is_dir():
        return
    siblings = [
        p for p in raster_files(path.parent)
        if p != path and parse_name(p).scene == parsed.scene and parse_name(p).band
    ]  # fmt: skip
    if siblings:
        bands = sorted({str(parse_name(p).band) for p in siblings})
        warnings.warn(
            f"{path.name} is band {parsed.band} of scene {parsed.scene}, whose other bands "
            f"{bands} are beside it: ingested alone it becomes a dataset of one band. Ingest the "
            f"scene's folder (or the list of its files) to catalogue its bands together",
            BandFilesWarning,
            stacklevel=4,
        )


def _geotiff_scene(path: Path, options: IngestOptions, props: dict[str, Any]) -> Iterator[Scene]:
    if options.cloud_mask not in ("auto", None, False):
        raise CatalogError(
            f"cloud_mask={options.cloud_mask!r} does not apply to the GeoTIFF {path.name}: use "
            "'auto' (a sibling *_CLM_* file), None (spectral test) or False (no cloud cover)"
        )
    _lonely_band(path)
    ds = open_datacube(path)
    when = options.datetime if options.datetime is not None else date_of(ds, path)
    mask_path = sibling_mask(path) if options.cloud_mask == "auto" else None
    dataset = options.dataset or dataset_name(path)

    def flags(ds: xr.Dataset = ds) -> Flags:
        return scene_flags(ds, options, mask_path)

    variables = tuple(map(str, ds.data_vars))
    yield Scene(
        ds, _timestamp(when), dataset, str(path.resolve()), "geotiff", variables, None, flags,
        scene_id=path.stem, properties=props,
    )  # fmt: skip


def _band_scenes(ref: SceneRef, options: IngestOptions, props: dict[str, Any]) -> Iterator[Scene]:
    """Band files or a STAC Item: one scene per date, the pixels left in their files."""
    if ref.assets is not None:
        assets = dict(ref.assets)
        source: Any = assets
    else:
        assert ref.files is not None
        source = list(ref.files)
        assets = {}
        if len(source) == 1:
            _lonely_band(Path(source[0]))
    opened = {k: v for k, v in ref.options.items() if k in ("resolution", "bands", "resampling")}
    open_options = {
        **opened,
        "resolution": options.resolution or opened.get("resolution") or "finest",
    }
    if options.bands:
        open_options["bands"] = list(options.bands)
    open_options = {k: v for k, v in open_options.items() if v is not None}
    ds = open_datacube(source, when=ref.when, **open_options)
    if not assets:  # name each file by the band it became
        assets = {str(n): str(v.encoding.get("source", "")) for n, v in ds.data_vars.items()}
    first = Path(next(iter(assets.values()))) if assets else None
    dataset = options.dataset or _band_dataset(ref, first)
    href = str(first.parent.resolve()) if first is not None and "://" not in str(first) else ""
    yield from _cube_scenes(
        ds, options, dataset, href, "bands", scene_id=ref.id, properties=props,
        assets={k: str(Path(v).resolve()) if "://" not in v else v for k, v in assets.items()},
        open_options=open_options,
    )  # fmt: skip


def _cube_scenes(
    ds: xr.Dataset,
    options: IngestOptions,
    dataset: str,
    href: str,
    fmt: str,
    *,
    scene_id: str = "",
    properties: dict[str, Any] | None = None,
    assets: dict[str, str] | None = None,
    open_options: dict[str, Any] | None = None,
) -> Iterator[Scene]:
    ydim, xdim = spatial_dims(ds)
    explicit = options.cloud_mask if isinstance(options.cloud_mask, str) else None
    explicit = None if explicit == "auto" else explicit
    if explicit is not None and explicit not in ds.data_vars:
        raise CatalogError(
            f"cloud_mask={explicit!r} is not a variable of the cube: "
            f"{sorted(map(str, ds.data_vars))}"
        )
    masks = mask_variables(ds, explicit) if options.cloud_mask not in (None, False) else ()
    names = [str(n) for n, v in ds.data_vars.items() if {ydim, xdim} <= set(v.dims)]
    if fmt != "bands":
        names = [n for n in names if n not in masks]
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
    keep = list(dict.fromkeys([*names, *masks]))
    steps = range(ds.sizes[tdim]) if tdim in ds.dims else [None]
    for t in steps:
        sel = {tdim: t} if t is not None else {}
        data = ds[keep].isel(sel)
        if t is not None and tdim in ds.coords:
            when = _timestamp(ds[tdim].values[t])
        elif tdim in ds.coords and ds[tdim].ndim == 0:
            when = _timestamp(options.datetime or ds[tdim].values)
        else:
            when = _timestamp(options.datetime)

        def flags(data: xr.Dataset = data) -> Flags:
            return scene_flags(data, options)

        data = data.drop_vars([tdim], errors="ignore")
        yield Scene(
            data, when, dataset, href, fmt, tuple(names), (tdim, t) if t is not None else None,
            flags, scene_id=scene_id, properties=dict(properties or {}),
            assets=dict(assets or {}), open_options=dict(open_options or {}), masks=masks,
        )  # fmt: skip


def _merge_properties(ref: SceneRef, options: IngestOptions) -> dict[str, Any]:
    return {**ref.properties, **json.loads(options.properties)}


def scenes_of(ref: SceneRef, options: IngestOptions, assets: Path, root: Path) -> Iterator[Scene]:
    """Scenes of one source found by :func:`workbench.data.scenes.find_scenes`."""
    props = _merge_properties(ref, options)
    if ref.data is not None:
        source = ref.data
        dataset = options.dataset or source.attrs.get("dataset")
        if not dataset:
            raise CatalogError(
                "an in-memory cube needs a dataset name: pass dataset='...' to ingest"
            )
        store = materialize(source, assets)
        ds = open_datacube(store, engine="zarr")
        yield from _cube_scenes(
            ds, options, str(dataset), store.relative_to(root).as_posix(), "zarr",
            scene_id=str(source.attrs.get("scene_id", "")), properties=props,
        )  # fmt: skip
        return
    if ref.assets is not None or ref.files is not None:
        yield from _band_scenes(ref, options, props)
        return
    assert ref.path is not None
    path = Path(ref.path)
    if not path.exists():
        raise DataReadError(f"cannot ingest {ref.path!s}: no such file or store")
    if path.suffix.lower() in _GEOTIFF:
        yield from _geotiff_scene(path, options, props)
        return
    wanted = list(options.variables) if options.variables else None
    if wanted and isinstance(options.cloud_mask, str) and options.cloud_mask != "auto":
        wanted.append(options.cloud_mask)
    ds = open_datacube(path, variables=wanted)
    fmt = ds.attrs.get("workbench_engine", "netcdf")
    yield from _cube_scenes(
        ds, options, options.dataset or dataset_name(path), str(path.resolve()),
        "zarr" if fmt in ("zarr", "kvikio") else fmt, scene_id=path.stem, properties=props,
    )  # fmt: skip
