"""One reader per format, each calling its xarray backend by class, never by name.

xarray resolves an engine *name* by loading every installed backend plugin: with cfgrib
installed, opening a GeoTIFF imports ecCodes (and prints its version warning). The
readers here hand :func:`xarray.open_dataset` the backend class of the format the file is
(:func:`backend`), so only that backend is imported: cfgrib only for GRIB.

A GRIB file is checked message by message before cfgrib reads it (:func:`check_grib`):
cfgrib stops quietly at a truncated message and returns the complete ones, which would
look like a shorter time series.
"""

from __future__ import annotations

import atexit
import functools
import mmap
from pathlib import Path
from typing import Any

import xarray as xr

from workbench._optional import has_module, lazy_import
from workbench.errors import DataReadError

__all__ = ["backend", "open_zarr", "open_netcdf", "open_grib", "check_grib", "NETCDF_READERS"]

# h5netcdf first, and the `io` extra installs no netCDF4-python: netCDF4-C crashes the process
# (SIGSEGV, not an exception) when a file with string variables held open is closed and opened
# again (pydata/xarray#8289), which a notebook does all the time. netCDF4 stays a fallback for
# users who have it.
NETCDF_READERS = (("h5netcdf", "h5py"), ("netcdf4", "netCDF4"), ("scipy", "scipy"))

_BACKENDS = {
    "zarr": ("xarray.backends.zarr", "ZarrBackendEntrypoint", None),
    "h5netcdf": ("xarray.backends.h5netcdf_", "H5netcdfBackendEntrypoint", None),
    "netcdf4": ("xarray.backends.netCDF4_", "NetCDF4BackendEntrypoint", None),
    "scipy": ("xarray.backends.scipy_", "ScipyBackendEntrypoint", None),
    "rasterio": ("rioxarray.xarray_plugin", "RasterioBackend", "io"),
    "cfgrib": ("cfgrib.xarray_plugin", "CfGribBackend", "grib"),
}


def backend(name: str) -> Any:
    """Return the xarray backend class of ``name`` (importing only that backend).

    Examples
    --------
    >>> backend("zarr").__name__
    'ZarrBackendEntrypoint'
    """
    module, cls, extra = _BACKENDS[name]
    found = lazy_import(module, extra=extra, purpose=f"reading {name} files")
    if name == "rasterio":
        _close_files_before_exit()
    return getattr(found, cls)


@functools.cache
def _close_files_before_exit() -> None:
    """Close xarray's cached open files at exit, while the interpreter is still whole.

    A rasterio (>= 1.5) dataset still open when the interpreter tears itself down prints
    ``Error in sys.excepthook`` to stderr (rioxarray#929, rasterio#3563): every script that
    opened a GeoTIFF and kept it ended with that noise. xarray's own exit hook only stops its
    file managers from closing during teardown, so the files are closed here first, through
    xarray's eviction (which leaves a file that another thread is reading open). ``atexit``
    runs hooks in reverse order, so this one (registered after xarray's) runs before it.
    """
    try:
        from xarray.backends.file_manager import FILE_CACHE
    except ImportError:  # an xarray without the shared file cache: nothing to close
        return

    def close() -> None:
        FILE_CACHE.maxsize = 0  # evicts, and so closes, every cached file

    atexit.register(close)


def open_zarr(source: Any, gpu: bool, kwargs: dict[str, Any], layout: Any = None) -> xr.Dataset:
    """Open a Zarr store (``gpu``: into CuPy through the kvikIO engine)."""
    lazy_import("zarr")
    if layout is not None:
        zarr_format, consolidated = layout
        kwargs.setdefault("consolidated", consolidated)
        if zarr_format is not None:
            kwargs.setdefault("zarr_format", zarr_format)
    kwargs.setdefault("decode_coords", "all")
    if gpu:
        from workbench.data.kvikio_engine import KvikioBackendEntrypoint

        # the GPU route records each variable's decode route itself
        return xr.open_dataset(source, engine=KvikioBackendEntrypoint, **kwargs)
    from workbench.data.kvikio_engine import mark_zarr_routes

    return mark_zarr_routes(xr.open_dataset(source, engine=backend("zarr"), **kwargs))


def open_netcdf(source: Any, kwargs: dict[str, Any]) -> xr.Dataset:
    """Open a NetCDF4/HDF5 or NetCDF3 file with the first reader that can."""
    kwargs.setdefault("decode_coords", "all")
    tried: list[str] = []
    for engine, module in NETCDF_READERS:
        if not has_module(module):
            tried.append(f"{engine} (not installed)")
            continue
        try:
            return xr.open_dataset(source, engine=backend(engine), **kwargs)
        except TypeError as exc:
            if "unexpected keyword" in str(exc):
                raise
            tried.append(f"{engine}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # each reader fails in its own way on a foreign file
            tried.append(f"{engine}: {type(exc).__name__}: {exc}")
    raise DataReadError(f"could not open {str(source)!r} as NetCDF; tried " + "; ".join(tried))


def check_grib(path: Path | str) -> int:
    """Walk the messages of a GRIB file; return their number, or raise if one is cut short.

    Each message starts with ``GRIB``, declares its length (GRIB 1: octets 5-7, GRIB 2:
    octets 9-16) and ends with ``7777``. (A file cut exactly between two messages is a valid
    GRIB file with fewer messages: nothing in the format can tell.)

    Raises
    ------
    DataReadError
        If a message runs past the end of the file or does not end with ``7777`` (a
        truncated download or copy), naming the message, its offset and what is missing.

    Examples
    --------
    >>> from workbench.testing import DATA_DIR
    >>> check_grib(DATA_DIR / "era5_reanalysis" / "era5-2mt-2019-03-uk.grib")
    744
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise DataReadError(f"{str(path)!r} is empty: no GRIB message")
    count = 0
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = data.find(b"GRIB")
        while pos >= 0:
            if pos + 16 > size:
                raise _truncated(path, count, pos, None, size)
            edition = data[pos + 7]
            if edition == 1:
                length = int.from_bytes(data[pos + 4 : pos + 7], "big")
                large = bool(length & 0x800000)  # ECMWF's large-message convention: no check
            else:
                length = int.from_bytes(data[pos + 8 : pos + 16], "big")
                large = False
            end = pos + length
            if not large:
                if end > size or data[end - 4 : end] != b"7777":
                    raise _truncated(path, count, pos, length, size)
                count += 1
                pos = data.find(b"GRIB", end)
            else:
                count += 1
                pos = data.find(b"GRIB", pos + 8)
    if count == 0:
        raise DataReadError(f"{str(path)!r} holds no GRIB message (no 'GRIB' marker)")
    return count


def _truncated(path: Path, count: int, pos: int, length: int | None, size: int) -> DataReadError:
    declared = "a header" if length is None else f"{length} bytes"
    return DataReadError(
        f"{str(path)!r} is a truncated GRIB file: message {count + 1} at byte {pos} declares "
        f"{declared} but the file ends {size - pos} bytes after its start (or the message does "
        f"not end with '7777'); only the {count} messages before it are complete, and cfgrib "
        "would quietly return those alone. Download or copy the file again"
    )


def open_grib(source: Any, kwargs: dict[str, Any]) -> xr.Dataset:
    """Open a GRIB 1/2 file with cfgrib, after checking that no message is truncated."""
    lazy_import("cfgrib", extra="grib", purpose="reading GRIB files (engine='cfgrib')")
    if isinstance(source, str | Path) and Path(source).is_file():
        check_grib(source)
    backend_kwargs = {"indexpath": "", **dict(kwargs.pop("backend_kwargs", None) or {})}
    return xr.open_dataset(
        source, engine=backend("cfgrib"), backend_kwargs=backend_kwargs, **kwargs
    )
