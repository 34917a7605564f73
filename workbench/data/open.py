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
    one (``B01`` ... ``B12``), else band numbers 1..N. A list or glob of GeoTIFFs is
    stacked on a sorted ``time`` dim (see :func:`workbench.data._geotiff.open_geotiff_stack`).

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from workbench._optional import has_module, lazy_import
from workbench.data.kvikio_engine import (
    KvikioBackendEntrypoint,
    gpu_route_available,
    mark_zarr_routes,
    require_gpu,
)
from workbench.errors import DataReadError, DimensionError, WorkbenchError
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
    expanded = _expand(source)
    if isinstance(expanded, list):
        formats = {detect_format(p) for p in expanded}
        if formats != {"rasterio"}:
            raise DataReadError(
                f"a list of files is stacked on time only for GeoTIFFs; got formats "
                f"{sorted(formats)} for {[str(p) for p in expanded][:4]}"
            )
        return "rasterio"
    if isinstance(expanded, str):  # URL: trust the suffix
        suffix = Path(expanded.rstrip("/")).suffix.lower()
        if suffix in _SUFFIXES:
            return _SUFFIXES[suffix]
        raise DataReadError(f"cannot tell the format of {expanded!r}: pass engine=...")
    if not isinstance(expanded, Path):
        return "zarr"  # a zarr store object
    path = expanded
    if path.is_dir():
        if any((path / m).exists() for m in _ZARR_MARKERS) or path.suffix.lower() == ".zarr":
            return "zarr"
        raise DataReadError(
            f"{str(path)!r} is a directory but not a Zarr store (no {', '.join(_ZARR_MARKERS)})"
        )
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
def _open_zarr(source: Any, gpu: bool, kwargs: dict[str, Any]) -> xr.Dataset:
    lazy_import("zarr")
    if isinstance(source, Path):
        zarr_format, consolidated = _zarr_layout(source)
        kwargs.setdefault("consolidated", consolidated)
        if zarr_format is not None:
            kwargs.setdefault("zarr_format", zarr_format)
    kwargs.setdefault("decode_coords", "all")
    engine: Any = KvikioBackendEntrypoint if gpu else "zarr"
    ds = xr.open_dataset(source, engine=engine, **kwargs)
    return ds if gpu else mark_zarr_routes(ds)  # the GPU route records its own decode routes


# h5netcdf first, and the `io` extra installs no netCDF4-python: netCDF4-C crashes the process
# (SIGSEGV, not an exception) when a file with string variables held open is closed and opened
# again (pydata/xarray#8289), which a notebook does all the time. netCDF4 stays a fallback for
# users who have it.
_NETCDF_READERS = (("h5netcdf", "h5py"), ("netcdf4", "netCDF4"), ("scipy", "scipy"))


def _open_netcdf(source: Any, kwargs: dict[str, Any]) -> xr.Dataset:
    kwargs.setdefault("decode_coords", "all")
    tried: list[str] = []
    for engine, module in _NETCDF_READERS:
        if not has_module(module):
            tried.append(f"{engine} (not installed)")
            continue
        try:
            return xr.open_dataset(source, engine=engine, **kwargs)
        except TypeError as exc:
            if "unexpected keyword" in str(exc):
                raise
            tried.append(f"{engine}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # each reader fails in its own way on a foreign file
            tried.append(f"{engine}: {type(exc).__name__}: {exc}")
    raise DataReadError(f"could not open {str(source)!r} as NetCDF; tried " + "; ".join(tried))


def _open_grib(source: Any, kwargs: dict[str, Any]) -> xr.Dataset:
    lazy_import("cfgrib", extra="grib", purpose="reading GRIB files (engine='cfgrib')")
    backend_kwargs = {"indexpath": "", **dict(kwargs.pop("backend_kwargs", None) or {})}
    return xr.open_dataset(source, engine="cfgrib", backend_kwargs=backend_kwargs, **kwargs)


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


def open_datacube(
    source: Any,
    engine: str = "auto",
    variables: str | Sequence[str] | None = None,
    **kwargs: Any,
) -> xr.Dataset:
    """Open a datacube lazily, on the GPU route when it can run, and say which route it took.

    Parameters
    ----------
    source : str, path, list of paths or zarr store
        A Zarr store (v2 or v3; a directory or a ``zarr.abc.store.Store``), a NetCDF,
        GRIB or GeoTIFF/COG file, or a list / glob pattern of per-date GeoTIFFs to stack on
        ``time`` (dates from a ``DATETIME`` tag or a ``YYYY-MM-DD`` / ``YYYYMMDD`` date in the
        file name; pass ``times=[...]`` to give them).
    engine : {"auto", "kvikio", "zarr", "netcdf", "rasterio", "cfgrib"}
        ``"auto"`` reads Zarr into CuPy on the GPU when a CUDA device and the ``gpu``
        extra are present (``workbench.set_options(device="cpu")`` forces the CPU,
        ``device="cuda"`` requires the GPU), else on the CPU; other formats are read on
        the CPU. ``"kvikio"`` demands the GPU route.
    variables : str or sequence of str, optional
        Data variables to keep (coordinates, ``spatial_ref`` included, are kept).
    **kwargs
        Passed to :func:`xarray.open_dataset` (e.g. ``chunks={}`` for dask arrays,
        ``mask_and_scale=False`` to keep GeoTIFF integers); ``chunks`` defaults to None:
        lazily indexed arrays without dask, with ``encoding["preferred_chunks"]`` kept.

    Returns
    -------
    xarray.Dataset
        With ``attrs["workbench_engine"]`` set to the route taken.

    Raises
    ------
    DataReadError
        Unknown engine; missing, unreadable or undetectable file (the message names the
        path and what was tried); GeoTIFFs whose dates cannot be found.
    GPUUnavailableError
        ``engine="kvikio"`` (or ``device="cuda"``) without a usable GPU route.
    DimensionError
        Unknown ``variables`` (the message lists the available ones); stacked GeoTIFFs
        whose grids differ.
    MissingDependencyError
        The reader of the format is not installed.

    Examples
    --------
    >>> from workbench.testing import DATA_DIR
    >>> ds = open_datacube(DATA_DIR / "era5_reanalysis" / "era5_t2m_uk_2019-03.nc")
    >>> ds.attrs["workbench_engine"], dict(ds.sizes)
    ('netcdf', {'time': 744, 'latitude': 33, 'longitude': 49})
    """
    device = get_options()["device"]
    gpu_available = device != "cpu" and gpu_route_available()
    requested = engine
    if _normalize_engine(engine) == "auto" and device == "cuda":
        requested = "kvikio" if detect_format(source) == "zarr" else "auto"
    route = choose_engine(source, requested, gpu_available)
    expanded = _expand(source)
    kwargs = dict(kwargs)
    kwargs.setdefault("chunks", None)
    try:
        if isinstance(expanded, list):
            from workbench.data._geotiff import open_geotiff_stack

            ds = open_geotiff_stack(expanded, **kwargs)
        elif route in ("zarr", "kvikio"):
            ds = _open_zarr(expanded, route == "kvikio", kwargs)
        elif route == "netcdf":
            ds = _open_netcdf(expanded, kwargs)
        elif route == "cfgrib":
            ds = _open_grib(expanded, kwargs)
        else:
            from workbench.data._geotiff import open_geotiff

            ds = open_geotiff(expanded, **kwargs)
    except WorkbenchError:
        raise
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise
        raise DataReadError(f"could not open {source!s:.200} with engine={route!r}: {exc}") from exc
    except Exception as exc:  # every reader has its own exception types
        raise DataReadError(
            f"could not open {source!s:.200} with engine={route!r} "
            f"(format detected from the path: {detect_format(source)!r}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    ds = _select(ds, variables, source)
    ds.attrs["workbench_engine"] = route
    return ds
