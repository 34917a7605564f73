"""Fixtures for the data tests: paths of the real sample files and small synthetic stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr
import zarr.codecs

from workbench.data.synthetic import era5_like, write_zarr
from workbench.testing import shared_data


@pytest.fixture(scope="session")
def era5_nc() -> Path:
    return shared_data("era5_reanalysis/era5_t2m_uk_2019-03.nc")


@pytest.fixture(scope="session")
def era5_grib() -> Path:
    return shared_data("era5_reanalysis/era5-2mt-2019-03-uk.grib")


@pytest.fixture(scope="session")
def xcube_zarr() -> Path:
    return shared_data("xcube_olci_northsea/cube-1-250-250.zarr")


@pytest.fixture(scope="session")
def s2_geotiffs() -> list[Path]:
    folder = shared_data("eolearn_s2_slovenia/geotiff")
    files = sorted(folder.glob("S2_L1C_*.tif"))
    assert len(files) == 5
    return files


@pytest.fixture(scope="session")
def s2_nc() -> Path:
    return shared_data("eolearn_s2_slovenia/eolearn_s2_slovenia.nc")


@pytest.fixture(scope="session")
def zarr_v3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ERA5-like Zarr v3 store (consolidated, chunked 1 x 8 x 16)."""
    path = tmp_path_factory.mktemp("zarr") / "era5_like_v3.zarr"
    ds = era5_like(time=4, lat=16, lon=32)
    return write_zarr(ds, path, chunks={"time": 1, "lat": 8, "lon": 16}, zarr_format=3)


# -- stores written from the real ERA5 pixels, one per codec chain (GPU decode tests) ---------
DECODE_CHUNKS = (7, 10, 16)  # does not divide (48, 33, 49): edge chunks everywhere

#: name -> (zarr format, per-variable encoding)
DECODE_STORES: dict[str, tuple[int, dict[str, Any]]] = {
    "v3-zstd": (3, {"compressors": [zarr.codecs.ZstdCodec(level=1)]}),
    "v3-zstd-checksum-crc32c": (
        3,
        {"compressors": [zarr.codecs.ZstdCodec(level=3, checksum=True), zarr.codecs.Crc32cCodec()]},
    ),
    "v3-gzip": (3, {"compressors": [zarr.codecs.GzipCodec(level=5)]}),
    "v3-blosc": (3, {"compressors": [zarr.codecs.BloscCodec(cname="lz4", shuffle="bitshuffle")]}),
    "v3-transpose-zstd": (
        3,
        {
            "filters": [zarr.codecs.TransposeCodec(order=(2, 0, 1))],
            "compressors": [zarr.codecs.ZstdCodec(level=1)],
        },
    ),
    "v3-uncompressed": (3, {"compressors": None}),
    "v3-sharded": (3, {"shards": (14, 20, 32), "compressors": [zarr.codecs.ZstdCodec(level=1)]}),
    "v2-zstd": (2, {"compressors": numcodecs.Zstd(level=1)}),
    "v2-lz4": (2, {"compressors": numcodecs.LZ4()}),
    "v2-blosc": (
        2,
        {"compressors": numcodecs.Blosc(cname="zstd", shuffle=numcodecs.Blosc.SHUFFLE)},
    ),
    "v2-delta-zlib": (2, {"filters": [numcodecs.Delta("<f4")], "compressors": numcodecs.Zlib()}),
}


def era5_cube(era5_nc: Path) -> xr.Dataset:
    """The first 48 hours of the real ERA5 cube, one chunk's worth of it set to NaN."""
    with xr.open_dataset(era5_nc) as src:
        ds = src[["t2m"]].isel(time=slice(0, 48)).load()
    ds["t2m"][: DECODE_CHUNKS[0], : DECODE_CHUNKS[1], : DECODE_CHUNKS[2]] = np.nan
    ds["t2m_packed"] = ds["t2m"].copy()
    ds.attrs.clear()
    for name in ds.variables:
        ds[name].encoding.clear()
    return ds


def write_stores(ds: xr.Dataset, root: Path) -> dict[str, Path]:
    """Write ``ds`` once per chain of :data:`DECODE_STORES` under ``root``."""
    paths = {}
    for name, (fmt, codecs) in DECODE_STORES.items():
        path = root / f"{name}.zarr"
        encoding = {
            "t2m": {"chunks": DECODE_CHUNKS, **codecs},
            "t2m_packed": {
                "chunks": DECODE_CHUNKS,
                "dtype": "int16",
                "scale_factor": 0.01,
                "add_offset": 273.15,
                "_FillValue": -32768,
                **{k: v for k, v in codecs.items() if k != "filters"},
            },
        }
        ds.to_zarr(path, zarr_format=fmt, encoding=encoding, consolidated=False, mode="w")
        paths[name] = path
    return paths


@pytest.fixture(scope="session")
def decode_stores(era5_nc: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One store per chain of ``DECODE_STORES``: ``t2m`` (float32, one chunk all-NaN, so never
    written) and ``t2m_packed`` (int16 with scale, offset and fill), from the real ERA5 cube."""
    return write_stores(era5_cube(era5_nc), tmp_path_factory.mktemp("decode"))


@pytest.fixture(scope="session")
def band_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Band-per-file products written once from the real Sentinel-2 / Landsat pixels.

    ``s2``: two dates of 13 single-band GeoTIFFs (10/20/60 m on their own grids);
    ``s2_34``: the first date reprojected into EPSG:32634 with SCL and MSK_CLDPRB (L2A names);
    ``nc``: one NetCDF per band, CRS only as a per-variable PROJ attribute;
    ``landsat``: Landsat 7 Collection 2 names with a QA_PIXEL band.
    """
    from workbench.data import examples

    root = tmp_path_factory.mktemp("band_files")
    s2 = examples.sentinel2_scenes(root / "s2", dates=[0, 1])
    s2_34 = examples.sentinel2_scenes(
        root / "s2_34", dates=[0], crs="EPSG:32634", provider_masks=True, level="L2A"
    )
    return {
        "s2": s2[0],
        "s2_second": s2[1],
        "s2_root": root / "s2",
        "s2_34": s2_34[0],
        "nc": examples.sentinel2_netcdf_bands(root / "nc"),
        "landsat": examples.landsat_scene(root / "landsat"),
    }
