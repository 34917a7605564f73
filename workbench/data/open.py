"""Open a datacube from Zarr, NetCDF, GRIB or GeoTIFF, on the GPU route when it can run.

:func:`open_datacube` detects the format, picks the read route with the pure function
:func:`choose_engine`, opens lazily (xarray's lazily indexed backend arrays, no dask:
``chunks=None``) and records the route in ``ds.attrs["workbench_engine"]``.

Routes
------
``"kvikio"``
    Zarr into CuPy arrays on the GPU (:mod:`workbench.data.kvikio_engine`); what
    ``engine="auto"`` takes for Zarr when a CUDA device and the ``gpu`` extra are present.
``"zarr"``
    Zarr v2 or v3 on the CPU (consolidated metadata used when present).
``"netcdf"``
    NetCDF4/HDF5 and NetCDF3 (h5netcdf, then netCDF4 and scipy if it fails).
``"cfgrib"``
    GRIB 1/2 (cfgrib, no index file written next to the data).
``"rasterio"``
    GeoTIFF/COG through rioxarray: one variable ``band_data (band, y, x)`` as xarray's
    rasterio engine names it, nodata masked to NaN (float32), ``spatial_ref`` kept and the
    ``band`` coordinate labelled with the band descriptions when every band has a unique
    one (``B01`` ... ``B12``), else band numbers 1..N. A list or glob of multi-band GeoTIFFs,
    one per date, is stacked on a sorted ``time`` dim (see
    :func:`workbench.data._geotiff.open_geotiff_stack`).

Band files
----------
A list, glob or folder of single-band files, or a ``{band: path}`` mapping, is one scene
(or several dates of it): one variable per band, named from the files (see
:mod:`workbench.data.bands`). A STAC Item (dict or JSON file) opens its raster assets that
way. Bands on different grids need ``resolution=``.

CRS
---
Whatever the source, the CRS is looked for wherever it is (:func:`workbench.geo.crs.find_crs`:
grid mappings, ``spatial_ref``, per-variable or global ``crs`` attributes...) and written once
as a ``spatial_ref`` coordinate, so every later step keeps it.

Files are read with the backend of the format they are (by class): opening a GeoTIFF never
imports the GRIB engine.

Examples
--------
>>> import tempfile, pathlib
>>> from workbench.data.synthetic import era5_like, write_zarr
>>> path = write_zarr(era5_like(time=2, lat=4, lon=8), pathlib.Path(tempfile.mkdtemp()) / "c.zarr")
>>> ds = open_datacube(path, engine="zarr", variables=["t2m"])
>>> ds.attrs["workbench_engine"], list(ds.data_vars)
('zarr', ['t2m'])
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from workbench._optional import has_module
from workbench.data import readers
from workbench.data.kvikio_engine import gpu_route_available, require_gpu
from workbench.errors import DataReadError, DimensionError, WorkbenchError
from workbench.geo.crs import find_crs, write_crs
from workbench.options import get_options

__all__ = ["ENGINES", "open_datacube", "choose_engine", "detect_format"]

#: Valid values of ``engine``.
ENGINES = ("auto", "kvikio", "zarr", "netcdf", "rasterio", "cfgrib")
_ALIASES = {
    "workbench_kvikio": "kvikio",
    "gpu": "kvikio",
    "netcdf4": "netcdf",
    "grib": "cfgrib",
    "geotiff": "rasterio",
}
_SUFFIXES = {
    ".zarr": "zarr",
    ".nc": "netcdf",
    ".nc4": "netcdf",
    ".cdf": "netcdf",
    ".h5": "netcdf",
    ".hdf5": "netcdf",
    ".tif": "rasterio",
    ".tiff": "rasterio",
    ".jp2": "rasterio",  # Sentinel-2 SAFE products
    ".grib": "cfgrib",
    ".grb": "cfgrib",
    ".grib2": "cfgrib",
    ".grb2": "cfgrib",
}
_MAGIC = {
    b"CDF\x01": "netcdf",
    b"CDF\x02": "netcdf",
    b"\x89HDF": "netcdf",
    b"GRIB": "cfgrib",
    b"II*\x00": "rasterio",
    b"MM\x00*": "rasterio",
    b"II+\x00": "rasterio",
    b"MM\x00+": "rasterio",
}
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray", ".zmetadata")


# -- format detection and route choice -----------------------------------------------
def _normalize_engine(engine: str) -> str:
    name = _ALIASES.get(str(engine).lower(), str(engine).lower())
    if name not in ENGINES:
        raise DataReadError(
            f"unknown engine {engine!r}: valid engines are {', '.join(map(repr, ENGINES))}"
        )
    return name


def _is_remote(path: str) -> bool:
    return "://" in path


def _expand(source: Any) -> Path | str | list[Path] | Any:
    """Return a single path (Path, or str for URLs), a list of paths, or a zarr store object."""
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        if _is_remote(text):
            return text
        if any(c in text for c in "*?["):
            files = sorted(glob.glob(text, recursive=True))
            if not files:
                raise DataReadError(f"no file matches the pattern {text!r}")
            return [Path(f) for f in files]
        return Path(text).expanduser()
    if isinstance(source, Sequence) and not isinstance(source, bytes):
        if len(source) == 0:
            raise DataReadError("got an empty list of files: give at least one path")
        return [Path(os.fspath(p)).expanduser() for p in source]
    if has_module("zarr"):
        from zarr.abc.store import Store

        if isinstance(source, Store):
            return source
    raise DataReadError(
        f"cannot open a {type(source).__name__}: give a path, a glob pattern, a list of "
        "GeoTIFF paths or a zarr store"
    )


def _is_zarr_dir(path: Path) -> bool:
    return any((path / m).exists() for m in _ZARR_MARKERS) or path.suffix.lower() == ".zarr"


def _folder_files(path: Path) -> list[Path]:
    """Return the raster files of a folder (not a Zarr store): its band files."""
    from workbench.data.scenes import raster_files

    files = raster_files(path)
    if files:
        return files
    subs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    hint = (
        f"; it holds the folders {sorted(p.name for p in subs)[:5]}: a folder of scenes opens "
        "with workbench.open_collection(folder)"
        if subs
        else ""
    )
    raise DataReadError(
        f"{str(path)!r} is a directory but not a Zarr store (no {', '.join(_ZARR_MARKERS)}) and "
        f"holds no raster file{hint}"
    )


def _zarr_layout(path: Path) -> tuple[int | None, bool]:
    """``(zarr_format, consolidated)`` of a local store."""
    if (path / "zarr.json").is_file():
        try:
            meta = json.loads((path / "zarr.json").read_text())
        except (OSError, ValueError):
            return 3, False
        return 3, bool(meta.get("consolidated_metadata"))
    if (path / ".zgroup").is_file() or (path / ".zarray").is_file():
        return 2, (path / ".zmetadata").is_file()
    return None, False


def detect_format(source: Any) -> str:
    """Return the reader for ``source``: ``"zarr"``, ``"netcdf"``, ``"rasterio"`` or ``"cfgrib"``.

    From the suffix, the Zarr metadata files of a directory, or the first bytes of a file.

    Raises
    ------
    DataReadError
        If the path does not exist or the format cannot be told.

    Examples
    --------
    >>> from workbench.testing import DATA_DIR
    >>> detect_format(DATA_DIR / "era5_reanalysis" / "era5-2mt-2019-03-uk.grib")
    'cfgrib'
    """
    if isinstance(source, Mapping):
        source = list(source.values())
    expanded = _expand(source)
    if isinstance(expanded, Path) and expanded.is_dir() and not _is_zarr_dir(expanded):
        expanded = _folder_files(expanded)
    if isinstance(expanded, list):
        formats = {detect_format(p) for p in expanded}
        if len(formats) != 1:
            raise DataReadError(
                f"the files are of different formats {sorted(formats)} "
                f"({[str(p) for p in expanded][:4]}); each is read by its own reader: open "
                "them with open_datacube, which does, rather than asking for one engine"
            )
        return formats.pop()
    if isinstance(expanded, str):  # URL: trust the suffix
        suffix = Path(expanded.rstrip("/")).suffix.lower()
        if suffix in _SUFFIXES:
            return _SUFFIXES[suffix]
        raise DataReadError(f"cannot tell the format of {expanded!r}: pass engine=...")
    if not isinstance(expanded, Path):
        return "zarr"  # a zarr store object
    path = expanded
    if path.is_dir():
        return "zarr"
    if not path.exists():
        raise DataReadError(f"no such file or directory: {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise DataReadError(f"cannot read {str(path)!r}: {exc}") from exc
    if head in _MAGIC:
        return _MAGIC[head]
    raise DataReadError(
        f"cannot tell the format of {str(path)!r}: the suffix {suffix!r} is none of "
        f"{sorted(_SUFFIXES)} and the first bytes {head!r} are not NetCDF, HDF5, GRIB or TIFF. "
        f"Pass engine= one of {', '.join(map(repr, ENGINES[2:]))}"
    )


def choose_engine(source: Any, engine: str = "auto", gpu_available: bool = False) -> str:
    """Return the read route for ``source``: ``engine`` resolved against the format and the GPU.

    A pure decision (it only looks at paths): ``"auto"`` takes ``"kvikio"`` for Zarr when
    ``gpu_available``, else the format's CPU reader; an explicit engine is kept.

    Parameters
    ----------
    source : path, glob pattern, list of paths or zarr store
        What to open.
    engine : str
        One of :data:`ENGINES` (or an alias: ``"workbench_kvikio"``, ``"netcdf4"``...).
    gpu_available : bool
        Whether a CUDA device and the ``gpu`` extra are present.

    Returns
    -------
    str
        ``"kvikio"``, ``"zarr"``, ``"netcdf"``, ``"rasterio"`` or ``"cfgrib"``.

    Raises
    ------
    DataReadError
        For an unknown engine, a missing path, an undetectable format, or
        ``engine="kvikio"`` on something that is not Zarr.
    GPUUnavailableError
        For ``engine="kvikio"`` when ``gpu_available`` is False.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "cube.zarr"
    >>> store.mkdir()
    >>> choose_engine(store, "auto", gpu_available=False), choose_engine(store, "auto", True)
    ('zarr', 'kvikio')
    """
    name = _normalize_engine(engine)
    fmt = detect_format(source)
    if name == "auto":
        return "kvikio" if fmt == "zarr" and gpu_available else fmt
    if name == "kvikio":
        if fmt != "zarr":
            raise DataReadError(
                f"engine='kvikio' reads Zarr stores only, but {source!s:.120} looks like "
                f"{fmt!r} data: use engine='auto' or engine={fmt!r}"
            )
        if not gpu_available:
            require_gpu()
            raise AssertionError("unreachable: require_gpu raises without a GPU")
    return name


# -- readers -----------------------------------------------------------------------------
def _open_file(path: Any, route: str, kwargs: dict[str, Any]) -> xr.Dataset:
    if route in ("zarr", "kvikio"):
        layout = _zarr_layout(path) if isinstance(path, Path) else None
        return readers.open_zarr(path, route == "kvikio", kwargs, layout)
    if route == "netcdf":
        return readers.open_netcdf(path, kwargs)
    if route == "cfgrib":
        return readers.open_grib(path, kwargs)
    from workbench.data._geotiff import open_geotiff

    return open_geotiff(path, **kwargs)


def _select(ds: xr.Dataset, variables: Any, source: Any) -> xr.Dataset:
    if variables is None:
        return ds
    names = [variables] if isinstance(variables, str) else list(variables)
    missing = [v for v in names if v not in ds.data_vars]
    if missing:
        raise DimensionError(
            f"variables {missing} are not in {source!s:.160}; available data variables: "
            f"{sorted(map(str, ds.data_vars))}"
        )
    return ds[names]


def _multi_band_stack(files: list[Path]) -> bool:
    """Whether every file is a multi-band GeoTIFF: one file per date, not one per band."""
    if not all(p.suffix.lower() in (".tif", ".tiff") for p in files):
        return False
    from workbench._optional import lazy_import

    rasterio = lazy_import("rasterio", extra="io", purpose="reading GeoTIFF files")
    for path in files:
        try:
            with rasterio.open(path) as src:
                if src.count < 2:
                    return False
        except rasterio.errors.RasterioIOError:
            return False
    return True


def _finish(ds: xr.Dataset, bands: Any, resolution: Any, resampling: Any) -> xr.Dataset:
    """Write the CRS once as ``spatial_ref``; select ``bands``; put the data on ``resolution``."""
    crs, where = find_crs(ds)
    if crs is not None and where not in ("lonlat", "grid_mapping:spatial_ref"):
        ds = write_crs(ds, crs)
    if bands is not None:
        from workbench.data.bands import select_bands

        ds = select_bands(ds, bands)
    if resolution is not None:
        from workbench.data.bands import regrid

        ds = regrid(ds, resolution, resampling)
    return ds


def open_datacube(
    sources: Any,
    *,
    bands: Sequence[str] | None = None,
    resolution: float | str | None = None,
    resampling: str | Mapping[str, str] | None = None,
    engine: str = "auto",
    variables: str | Sequence[str] | None = None,
    **kwargs: Any,
) -> xr.Dataset:
    """Open a datacube lazily, on the GPU route when it can run, and say which route it took.

    Parameters
    ----------
    sources : str, path, list of paths, mapping, STAC Item, Dataset or zarr store
        A Zarr store (v2 or v3; a directory or a ``zarr.abc.store.Store``), a NetCDF, GRIB or
        GeoTIFF/COG file; a list, glob pattern or folder of single-band files of one scene
        (or of several dates: ``…_B04.tif``, ``red_band.nc``; see :mod:`workbench.data.bands`);
        a ``{band: path}`` mapping; a STAC Item (dict or JSON file) whose raster assets are
        the bands; a list or glob of multi-band GeoTIFFs, one per date, to stack on ``time``
        (dates from a ``DATETIME`` tag or the file name; ``times=[...]`` gives them); or an
        open Dataset (its CRS written, bands and resolution applied).
    bands : sequence of str, optional
        Bands to keep, in this order: band files, variables, or labels of a ``band`` dim.
    resolution : float or str, optional
        One grid for bands of different resolutions or extents: the pixel size (in the CRS's
        units, metres for UTM), a band name (that band's grid) or ``"finest"``. Bands are
        resampled with ``nearest`` (masks, classes), ``bilinear`` (to a finer grid) or
        ``average`` (to a coarser grid).
    resampling : str or mapping of band to str, optional
        Override those methods, for all bands or per band.
    engine : {"auto", "kvikio", "zarr", "netcdf", "rasterio", "cfgrib"}
        ``"auto"`` reads Zarr into CuPy on the GPU when a CUDA device and the ``gpu``
        extra are present (``workbench.set_options(device="cpu")`` forces the CPU,
        ``device="cuda"`` requires the GPU), else on the CPU; other formats are read on
        the CPU with the reader of the format. ``"kvikio"`` demands the GPU route.
    variables : str or sequence of str, optional
        Data variables to keep (coordinates, ``spatial_ref`` included, are kept).
    **kwargs
        Passed to :func:`xarray.open_dataset` (e.g. ``chunks={}`` for dask arrays,
        ``mask_and_scale=False`` to keep GeoTIFF integers); ``chunks`` defaults to None:
        lazily indexed arrays without dask, with ``encoding["preferred_chunks"]`` kept.
        ``times=[...]`` dates a GeoTIFF time stack; ``when=`` dates band files.

    Returns
    -------
    xarray.Dataset
        With ``attrs["workbench_engine"]`` set to the route taken and the CRS (when one is
        found) as a ``spatial_ref`` coordinate.

    Raises
    ------
    DataReadError
        Unknown engine; missing, unreadable or undetectable file (the message names the
        path and what was tried); GeoTIFFs whose dates cannot be found; a truncated GRIB file.
    GPUUnavailableError
        ``engine="kvikio"`` (or ``device="cuda"``) without a usable GPU route.
    DimensionError
        Unknown ``variables`` or ``bands`` (the message lists the available ones); stacked
        GeoTIFFs whose grids differ; band files on different grids without ``resolution=``
        (the message lists the grids); a band twice on one date.
    CRSError
        Files in different CRSs.
    MissingDependencyError
        The reader of the format is not installed.

    Examples
    --------
    >>> from workbench.testing import DATA_DIR
    >>> ds = open_datacube(DATA_DIR / "era5_reanalysis" / "era5_t2m_uk_2019-03.nc")
    >>> ds.attrs["workbench_engine"], dict(ds.sizes)
    ('netcdf', {'time': 744, 'latitude': 33, 'longitude': 49})
    """
    from workbench.data.bands import open_band_files
    from workbench.data.stac import is_item, read_item

    kwargs = dict(kwargs)
    kwargs.setdefault("chunks", None)
    times = kwargs.pop("times", None)
    when = kwargs.pop("when", None)
    band_options: dict[str, Any] = {
        "bands": bands, "resolution": resolution, "resampling": resampling,
    }  # fmt: skip
    if isinstance(sources, xr.DataArray):
        sources = sources.to_dataset(name=sources.name or "data")
    if isinstance(sources, xr.Dataset):
        out = _finish(sources, bands, resolution, resampling)
        return _select(out, variables, "the Dataset")
    if is_item(sources) or (
        isinstance(sources, str | os.PathLike) and str(sources).lower().endswith(".json")
    ):
        item = read_item(sources)
        ds = open_band_files(item.assets, when=item.when, engine=engine, **band_options, **kwargs)
        ds.attrs.update(scene_id=item.id, properties=json.dumps(item.properties, default=str))
        return _select(ds, variables, sources)
    if isinstance(sources, Mapping):
        ds = open_band_files(sources, when=when, engine=engine, **band_options, **kwargs)
        return _select(ds, variables, "the band files")
    expanded = _expand(sources)
    if isinstance(expanded, Path) and expanded.is_dir() and not _is_zarr_dir(expanded):
        expanded = _folder_files(expanded)
    if isinstance(expanded, list):
        if times is not None or _multi_band_stack(expanded):
            route = choose_engine(expanded, engine, False)
            from workbench.data._geotiff import open_geotiff_stack

            ds = _guarded(
                lambda: open_geotiff_stack(expanded, times=times, **kwargs), sources, route
            )
            ds.attrs["workbench_engine"] = route
            return _select(_finish(ds, bands, resolution, resampling), variables, sources)
        ds = open_band_files(expanded, when=when, engine=engine, **band_options, **kwargs)
        return _select(ds, variables, sources)
    device = get_options()["device"]
    gpu_available = device != "cpu" and gpu_route_available()
    requested = engine
    if _normalize_engine(engine) == "auto" and device == "cuda":
        requested = "kvikio" if detect_format(expanded) == "zarr" else "auto"
    route = choose_engine(expanded, requested, gpu_available)
    ds = _guarded(lambda: _open_file(expanded, route, kwargs), sources, route)
    ds = _finish(ds, bands, resolution, resampling)
    ds = _select(ds, variables, sources)
    ds.attrs["workbench_engine"] = route
    return ds


def _guarded(open_fn: Any, source: Any, route: str) -> xr.Dataset:
    """Run a reader; its own exceptions become a DataReadError naming the source and route."""
    try:
        ds: xr.Dataset = open_fn()
    except WorkbenchError:
        raise
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise
        raise DataReadError(f"could not open {source!s:.200} with engine={route!r}: {exc}") from exc
    except Exception as exc:  # every reader has its own exception types
        raise DataReadError(
            f"could not open {source!s:.200} with engine={route!r} "
            f"(format detected from the path: {route!r}): {type(exc).__name__}: {exc}"
        ) from exc
    return ds
