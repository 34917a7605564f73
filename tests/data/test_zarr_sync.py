"""Synchronous box reads of Zarr variables give exactly what xarray gives, or step aside."""

from __future__ import annotations

import pickle
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr
from numcodecs import Blosc, Delta, Zlib
from zarr.codecs import BloscCodec, Crc32cCodec, GzipCodec, TransposeCodec, ZstdCodec

import workbench  # noqa: F401  (registers .wb)
from workbench.data.zarr_sync import box_reader
from workbench.options import set_options

RNG = np.random.default_rng(7)
SHAPE = (5, 37, 53)  # not multiples of the chunks: edge chunks are partial
CHUNKS = (2, 8, 16)


def _values(dtype: str = "float32") -> np.ndarray:
    values = RNG.normal(280, 10, SHAPE).astype(dtype)
    return values


def _open(path: Path) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(path, chunks=None, consolidated=False)


def _write_array(path: Path, values: np.ndarray, zarr_format: int, **kwargs: Any) -> None:
    """A one-variable store as xarray writes it (dimension names), with chosen codecs."""
    root = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    kwargs.setdefault("chunks", CHUNKS)
    kwargs.setdefault("fill_value", np.nan if values.dtype.kind == "f" else 0)
    if zarr_format == 3:
        kwargs["dimension_names"] = ("time", "lat", "lon")
    else:
        kwargs["attributes"] = {"_ARRAY_DIMENSIONS": ["time", "lat", "lon"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = root.create_array("v", shape=values.shape, dtype=values.dtype, **kwargs)
        arr[...] = values


Box = tuple[tuple[int, ...], tuple[int, ...]]


def _boxes(shape: tuple[int, ...], count: int = 12) -> list[Box]:
    boxes = [((0,) * len(shape), shape), ((0,) * len(shape), (1,) * len(shape))]
    boxes.append((tuple(n - 1 for n in shape), shape))  # the last edge chunk
    for _ in range(count):
        lo = tuple(int(RNG.integers(0, n)) for n in shape)
        hi = tuple(int(RNG.integers(a + 1, n + 1)) for a, n in zip(lo, shape, strict=True))
        boxes.append((lo, hi))
    return boxes


def assert_reads_like_xarray(variable: xr.Variable) -> None:
    reader = box_reader(variable)
    assert reader is not None, "expected a synchronous path"
    for lo, hi in _boxes(variable.shape):
        key = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        want = variable[key].load().data
        got = reader.read(lo, hi)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


V3_CODECS = {
    "zstd": {"compressors": [ZstdCodec(level=1)]},
    "blosc": {"compressors": [BloscCodec(cname="lz4", clevel=3, shuffle="shuffle")]},
    "gzip+crc32c": {"compressors": [GzipCodec(level=2), Crc32cCodec()]},
    "uncompressed": {"compressors": None},
    "transpose": {"filters": [TransposeCodec(order=(2, 0, 1))], "compressors": [ZstdCodec()]},
}


@pytest.mark.parametrize("codecs", list(V3_CODECS), ids=list(V3_CODECS))
def test_v3_codecs_read_like_xarray(tmp_path: Path, codecs: str) -> None:
    _write_array(tmp_path / "s.zarr", _values(), 3, **V3_CODECS[codecs])
    assert_reads_like_xarray(_open(tmp_path / "s.zarr")["v"].variable)


V2_CODECS = {
    "zlib": {"compressors": Zlib(level=1)},
    "blosc": {"compressors": Blosc(cname="zstd", clevel=1, shuffle=Blosc.BITSHUFFLE)},
    "order-F": {"compressors": Zlib(level=1), "order": "F"},
    "delta-filter": {"filters": [Delta(dtype="<i4")], "compressors": Zlib()},
    "slash-separator": {
        "compressors": None,
        "chunk_key_encoding": {"name": "v2", "separator": "/"},
    },
}


@pytest.mark.parametrize("codecs", list(V2_CODECS), ids=list(V2_CODECS))
def test_v2_codecs_read_like_xarray(tmp_path: Path, codecs: str) -> None:
    dtype = "int32" if codecs == "delta-filter" else "float64"
    values = (_values() * 100).astype(dtype)
    _write_array(tmp_path / "s.zarr", values, 2, **V2_CODECS[codecs])
    assert_reads_like_xarray(_open(tmp_path / "s.zarr")["v"].variable)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_cf_packed_masked_and_missing_chunks(tmp_path: Path, zarr_format: int) -> None:
    """int16 with scale/offset/_FillValue decodes to float with NaN; unwritten chunks fill."""
    values = _values("float64")
    values[0, :8, :16] = np.nan  # one whole chunk of fill: never written
    values[3, 5:9, 40:50] = np.nan  # masked pixels inside written chunks
    ds = xr.Dataset({"v": (("time", "lat", "lon"), values)})
    ds["v"].encoding = {
        "dtype": "int16",
        "scale_factor": 0.01,
        "add_offset": 280.0,
        "_FillValue": -32768,
        "chunks": CHUNKS,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(tmp_path / "s.zarr", zarr_format=zarr_format, consolidated=False)
    var = _open(tmp_path / "s.zarr")["v"].variable
    assert var.dtype.kind == "f"
    assert_reads_like_xarray(var)
    box = box_reader(var).read((0, 0, 0), (1, 8, 16))  # type: ignore[union-attr]
    assert np.isnan(box).all()


def test_lazily_sliced_dataset_keeps_its_offsets(tmp_path: Path) -> None:
    _write_array(tmp_path / "s.zarr", _values(), 3, compressors=[ZstdCodec()])
    ds = _open(tmp_path / "s.zarr")
    sub = ds.isel(time=slice(1, 4), lat=slice(9, 30), lon=slice(3, None))
    assert_reads_like_xarray(sub["v"].variable)
    assert_reads_like_xarray(sub.isel(lat=slice(2, 10))["v"].variable)  # slice of a slice


def test_real_v2_cube(xcube_zarr: Path) -> None:
    """The xcube OLCI cube (Zarr v2, float64, CF attributes), every data variable."""
    ds = xr.open_zarr(xcube_zarr, chunks=None)
    sub = ds.isel(lat=slice(200, 520), lon=slice(1700, 2000))  # crosses chunk edges
    for name in ds.data_vars:
        assert_reads_like_xarray(sub[name].variable)


def test_steps_dropped_dims_memory_dask_and_netcdf_step_aside(tmp_path: Path) -> None:
    _write_array(tmp_path / "s.zarr", _values(), 3, compressors=[ZstdCodec()])
    ds = _open(tmp_path / "s.zarr")
    assert box_reader(ds.isel(lon=slice(0, None, 2))["v"].variable) is None
    assert box_reader(ds.isel(time=0)["v"].variable) is None
    assert box_reader(ds["v"].load().variable) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chunked = xr.open_zarr(tmp_path / "s.zarr", consolidated=False)
    assert box_reader(chunked["v"].variable) is None
    ds[["v"]].to_netcdf(tmp_path / "s.nc", engine="h5netcdf")
    with xr.open_dataset(tmp_path / "s.nc", engine="h5netcdf") as nc:
        assert box_reader(nc["v"].variable) is None


def test_sharded_and_zip_stores_step_aside(tmp_path: Path) -> None:
    _write_array(tmp_path / "s.zarr", _values(), 3, chunks=(1, 8, 16), shards=CHUNKS)
    assert box_reader(_open(tmp_path / "s.zarr")["v"].variable) is None
    store = zarr.storage.ZipStore(tmp_path / "s.zip", mode="w")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xr.Dataset({"v": (("y", "x"), np.ones((4, 4)))}).to_zarr(store, consolidated=False)
    store.close()
    zipped = zarr.storage.ZipStore(tmp_path / "s.zip", mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(zipped, chunks=None, consolidated=False)
    reader = box_reader(ds["v"].variable)
    if reader is not None:  # a zarr that gives ZipStore sync reads must still read right
        np.testing.assert_array_equal(reader.read((0, 0), (4, 4)), np.ones((4, 4)))


def test_threads_read_concurrently(tmp_path: Path) -> None:
    values = _values()
    _write_array(tmp_path / "s.zarr", values, 3, compressors=[ZstdCodec()])
    reader = box_reader(_open(tmp_path / "s.zarr")["v"].variable)
    assert reader is not None
    errors: list[str] = []

    def work(t: int) -> None:
        for lat in range(0, 30, 3):
            got = reader.read((t, lat, 0), (t + 1, lat + 7, 53))
            if not np.array_equal(got, values[t : t + 1, lat : lat + 7]):
                errors.append(f"time {t} lat {lat}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_chip_streams_take_the_sync_route_and_give_the_same_chips(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    values = _values()
    _write_array(tmp_path / "s.zarr", values, 3, compressors=[ZstdCodec()])
    ds = _open(tmp_path / "s.zarr")
    chips = ds.wb.chips({"lat": 8, "lon": 16}, input_overlap={"lat": 3})
    loader = chips.to_torch(7, shuffle=True, seed=3, device="cpu")
    got = torch.cat(list(loader))
    assert loader.reader.stats()["read_routes"] == {"v": "zarr-sync"}
    with set_options(zarr_sync_reads=False):
        slow = chips.to_torch(7, shuffle=True, seed=3, device="cpu")
        want = torch.cat(list(slow))
        assert slow.reader.stats()["read_routes"] == {"v": "xarray"}
    assert torch.equal(got, want)
    # in index order, the chips of the in-memory cube (storage order and shuffles
    # differ by design: a store is read tile by tile)
    memory = ds.compute().wb.chips({"lat": 8, "lon": 16}, input_overlap={"lat": 3})
    in_order = torch.cat(list(chips.to_torch(7, device="cpu", order="index")))
    assert torch.equal(in_order, torch.cat(list(memory.to_torch(7, device="cpu"))))
    # a pickled loader (DataLoader worker processes) builds its own readers
    fresh = chips.to_torch(7, shuffle=True, seed=3, device="cpu")
    again = pickle.loads(pickle.dumps(fresh))
    assert torch.equal(torch.cat(list(again)), got)
