"""The GPU route: entry point, CPU-exercised device reads, and real GPU reads (gpu marker)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import xarray as xr

from workbench import open_datacube
from workbench.data.kvikio_engine import (
    CFDecoding,
    KvikioBackendEntrypoint,
    device_reads,
    gpu_unavailable_reason,
)
from workbench.data.synthetic import era5_like
from workbench.errors import GPUUnavailableError
from workbench.testing import has_gpu, requires_gpu


def test_entry_point_is_discoverable():
    engines = xr.backends.list_engines()
    assert "workbench_kvikio" in engines
    backend = engines["workbench_kvikio"]
    assert isinstance(backend, KvikioBackendEntrypoint)
    assert backend.guess_can_open("anything.zarr") is False
    assert KvikioBackendEntrypoint.available == (gpu_unavailable_reason() is None)


@pytest.mark.skipif(has_gpu(), reason="checks the CPU fallback")
def test_xarray_engine_without_gpu_raises(zarr_v3):
    with pytest.raises(GPUUnavailableError, match=r"pip install 'workbench\[gpu\]'"):
        xr.open_dataset(zarr_v3, engine="workbench_kvikio")


def test_disable_gpu_env_is_reported(monkeypatch):
    monkeypatch.setenv("WORKBENCH_DISABLE_GPU", "1")
    assert "WORKBENCH_DISABLE_GPU" in gpu_unavailable_reason()


def _encoded_store(tmp_path, fmt):
    ds = era5_like(time=3, lat=8, lon=8, variables=("t2m", "u10"))
    ds["t2m"] = ds.t2m.where(ds.t2m > 12)  # some missing values
    ds["flag"] = (ds.u10 > 20).astype("uint8")
    path = tmp_path / f"encoded_v{fmt}.zarr"
    encoding = {
        "t2m": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 10.0, "_FillValue": -32768},
        "u10": {"chunks": (1, 4, 4)},
    }
    ds.to_zarr(path, encoding=encoding, zarr_format=fmt, consolidated=False)
    return path


@pytest.mark.parametrize("fmt", [2, 3])
def test_device_reads_match_xarray_decoding(tmp_path, fmt):
    """The GPU code path, run with NumPy: same values as xarray's CF decoding, lazily."""
    path = _encoded_store(tmp_path, fmt)
    kw = {"engine": "zarr", "chunks": None, "cache": False, "consolidated": False}
    decoded = xr.open_dataset(path, **kw)
    raw = xr.open_dataset(path, mask_and_scale=False, **kw)
    dev = device_reads(decoded, raw, read_context=contextlib.nullcontext, to_device=np.asarray)
    assert all(not dev[v].variable._in_memory for v in dev.data_vars)
    for name in decoded.data_vars:
        assert dev[name].dtype == decoded[name].dtype
        np.testing.assert_array_equal(dev[name].values, decoded[name].values)
    sel = {"time": [0, 2], "lat": slice(1, 6), "lon": 3}
    np.testing.assert_array_equal(dev.t2m.isel(sel).values, decoded.t2m.isel(sel).values)
    assert np.isnan(dev.t2m.values).any()


def test_read_context_wraps_every_read(tmp_path):
    path = _encoded_store(tmp_path, 3)
    kw = {"engine": "zarr", "chunks": None, "cache": False, "consolidated": False}
    entered = []

    @contextlib.contextmanager
    def context():
        entered.append(1)
        yield

    dev = device_reads(
        xr.open_dataset(path, **kw),
        xr.open_dataset(path, mask_and_scale=False, **kw),
        read_context=context,
        to_device=np.asarray,
    )
    assert entered == []  # opening reads nothing
    dev.u10.isel(time=0).values
    assert len(entered) == 1


def test_cf_decoding_in_array_namespace():
    dec = CFDecoding(fill_values=(np.nan, -9), scale_factor=2.0, add_offset=1.0, dtype=np.float32)
    out = dec(np.array([1.0, np.nan, -9.0], dtype=np.float32))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [3.0, np.nan, np.nan])
    assert CFDecoding.from_encoding({"dtype": "float32"}, np.float32) is None


@pytest.mark.gpu
@requires_gpu()
def test_gpu_route_reads_cupy(tmp_path, zarr_v3):
    import cupy

    ds = open_datacube(zarr_v3)
    assert ds.attrs["workbench_engine"] == "kvikio"
    cpu = open_datacube(zarr_v3, engine="zarr")
    assert isinstance(ds.t2m.data, cupy.ndarray)
    window = ds.t2m.isel(time=1, lat=slice(0, 8)).data
    assert isinstance(window, cupy.ndarray)
    np.testing.assert_array_equal(window.get(), cpu.t2m.isel(time=1, lat=slice(0, 8)).values)
    path = _encoded_store(tmp_path, 3)
    encoded = open_datacube(path, engine="kvikio", consolidated=False)
    reference = xr.open_dataset(path, engine="zarr", consolidated=False)
    np.testing.assert_array_equal(encoded.t2m.data.get(), reference.t2m.values)
    np.testing.assert_array_equal(encoded.flag.data.get(), reference.flag.values)


@pytest.mark.gpu
@requires_gpu()
def test_gpu_clip_masks_on_device(zarr_v3):
    import cupy

    ds = open_datacube(zarr_v3, engine="kvikio")
    tri = {"type": "Polygon", "coordinates": [[[-9, 51], [0, 51], [-9, 57], [-9, 51]]]}
    sub = ds.wb.clip(tri)
    data = sub.t2m.data
    assert isinstance(data, cupy.ndarray)
    assert bool(cupy.isnan(data).any())


@pytest.mark.gpu
@requires_gpu()
@pytest.mark.parametrize(
    ("fmt", "compressors", "codec"),
    [
        (3, "zstd", "zstd"),
        (3, "zstd+crc32c", "zstd"),
        (3, "gzip", "gzip"),
        (2, "zstd", "zstd"),
        (2, "lz4", "lz4"),
        (3, "blosc", "blosc"),
    ],
)
def test_gpu_decode_route_equals_the_cpu_read(tmp_path, fmt, compressors, codec):
    """nvCOMP decodes what it can on the device; what it cannot falls back, saying why."""
    import cupy
    import numcodecs
    import zarr.codecs

    from workbench.data.kvikio_engine import decode_routes

    chains = {
        (3, "zstd"): [zarr.codecs.ZstdCodec(level=1)],
        (3, "zstd+crc32c"): [zarr.codecs.ZstdCodec(checksum=True), zarr.codecs.Crc32cCodec()],
        (3, "gzip"): [zarr.codecs.GzipCodec()],
        (3, "blosc"): [zarr.codecs.BloscCodec(cname="lz4", shuffle="bitshuffle")],
        (2, "zstd"): numcodecs.Zstd(level=1),
        (2, "lz4"): numcodecs.LZ4(),
    }
    ds = era5_like(time=6, lat=40, lon=72, variables=("t2m", "u10"))
    path = tmp_path / f"{compressors}_v{fmt}.zarr"
    chunks = (2, 16, 32)
    encoding = {
        v: {"chunks": chunks, "compressors": chains[fmt, compressors]} for v in ds.data_vars
    }
    ds.to_zarr(path, zarr_format=fmt, encoding=encoding, consolidated=False)
    gpu = open_datacube(path, engine="kvikio", consolidated=False)
    cpu = xr.open_dataset(path, engine="zarr", consolidated=False)
    routes = decode_routes(gpu)
    for name in ds.data_vars:
        assert isinstance(gpu[name].data, cupy.ndarray)
        np.testing.assert_array_equal(gpu[name].data.get(), cpu[name].values)
        window = gpu[name].isel(time=3, lat=slice(5, 37)).data.get()
        np.testing.assert_array_equal(window, cpu[name].isel(time=3, lat=slice(5, 37)).values)
    route, reason = routes["t2m"], gpu.t2m.encoding["workbench_decode_reason"]
    if codec == "blosc":
        assert route == "chunks: blosc@cpu > bytes@gpu"
    elif codec == "zstd":
        assert f"{codec}@gpu" in route, reason  # nvCOMP decodes standard zstd frames
    else:
        assert f"{codec}@gpu" in route or reason, route  # a fallback always says why
