"""The chunk decoder of the GPU route, run on the host: same values as xarray, routes said.

The device is NumPy here and the "device" decoders are the codecs' own host decoders
(numcodecs), batch by batch, as nvCOMP's are called on the GPU: the code path of the GPU
route (moves, batches, byte views, transposes, assembly, CF decoding) without a GPU.
"""

from __future__ import annotations

import contextlib

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr

from workbench.data.decode_plan import codec_configs, plan_decode
from workbench.data.device_decode import ChunkDecoder, zarr_array_of
from workbench.data.kvikio_engine import decode_routes, device_reads

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KW = {"engine": "zarr", "chunks": None, "cache": False, "consolidated": False}


def _host_batch(codec):
    """A real host codec, called as the device decoders are: a batch of 1-D uint8 arrays."""

    def decode(chunks, nbytes):
        out = [np.frombuffer(codec.decode(c), np.uint8) for c in chunks]
        assert nbytes is None or all(o.size == nbytes for o in out)
        return out

    return decode


HOST_AS_DEVICE = {
    "zstd": _host_batch(numcodecs.Zstd()),
    "lz4": _host_batch(numcodecs.LZ4()),
    "gzip": _host_batch(numcodecs.GZip()),
}


def _open(path, decoders=HOST_AS_DEVICE):
    decoded = xr.open_dataset(path, **KW)
    raw = xr.open_dataset(path, mask_and_scale=False, **KW)
    dev = device_reads(
        decoded, raw, read_context=contextlib.nullcontext, to_device=np.asarray, decoders=decoders
    )
    return decoded, dev


@pytest.mark.parametrize(
    "store",
    [
        "v3-zstd",
        "v3-zstd-checksum-crc32c",
        "v3-gzip",
        "v3-blosc",
        "v3-transpose-zstd",
        "v3-uncompressed",
        "v3-sharded",
        "v2-zstd",
        "v2-lz4",
        "v2-blosc",
        "v2-delta-zlib",
    ],
)
def test_every_chain_reads_the_values_xarray_reads(decode_stores, store):
    decoded, dev = _open(decode_stores[store])
    routes = decode_routes(dev)
    assert set(routes) == {"t2m", "t2m_packed"}
    for name in ("t2m", "t2m_packed"):
        assert not dev[name].variable._in_memory
        want = decoded[name].values
        got = dev[name].values
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        assert np.isnan(got[0, 0, 0])  # the never-written chunk reads as the fill value
    reader = routes["t2m"].split(":")[0]
    assert reader == ("zarr" if store in ("v3-sharded", "v2-delta-zlib") else "chunks")
    if store in ("v3-zstd", "v2-zstd", "v2-lz4", "v3-gzip"):
        assert "@gpu > bytes@gpu" in routes["t2m"]
        assert dev.t2m.encoding["workbench_decode_reason"] == ""


@pytest.mark.parametrize("store", ["v3-transpose-zstd", "v2-lz4", "v3-zstd-checksum-crc32c"])
def test_outer_indexing_matches_xarray(decode_stores, store):
    decoded, dev = _open(decode_stores[store])
    selections = [
        {"time": 5, "latitude": slice(3, 29), "longitude": -1},
        {"time": slice(40, None, 3), "latitude": [0, 31, 7, 7], "longitude": slice(None, None, -5)},
        {"time": [-1, 0], "latitude": slice(9, 21)},
        {"time": slice(8, 8)},
    ]
    for sel in selections:
        for name in ("t2m", "t2m_packed"):
            np.testing.assert_array_equal(
                dev[name].isel(sel).values, decoded[name].isel(sel).values
            )


def test_a_device_decoder_that_fails_falls_back_to_the_host_and_says_so(decode_stores):
    # LZ4 cannot decode zstd frames: the probe at open finds it and moves zstd to the host
    wrong = {"zstd": _host_batch(numcodecs.LZ4())}
    decoded, dev = _open(decode_stores["v3-zstd"], decoders=wrong)
    assert decode_routes(dev)["t2m"] == "chunks: zstd@cpu > bytes@gpu"
    assert "the device decoder failed on chunk" in dev.t2m.encoding["workbench_decode_reason"]
    np.testing.assert_array_equal(dev.t2m.values, decoded.t2m.values)


def test_decode_zarr_reads_through_zarrs_pipeline(decode_stores):
    decoded, dev = _open(decode_stores["v3-zstd"], decoders=None)
    assert decode_routes(dev)["t2m"] == "zarr: zstd@cpu > bytes@cpu"
    assert "decode='zarr'" in dev.t2m.encoding["workbench_decode_reason"]
    np.testing.assert_array_equal(dev.t2m_packed.values, decoded.t2m_packed.values)


def test_no_device_decoders_decodes_every_compressor_on_the_host(decode_stores):
    decoded, dev = _open(decode_stores["v2-lz4"], decoders={})
    assert decode_routes(dev)["t2m"] == "chunks: lz4@cpu > bytes@gpu"
    np.testing.assert_array_equal(dev.t2m.values, decoded.t2m.values)


def test_real_xcube_cube_decodes_blosc_on_the_host(xcube_zarr):
    kw = {**KW, "consolidated": True}
    decoded = xr.open_dataset(xcube_zarr, **kw)
    raw = xr.open_dataset(xcube_zarr, mask_and_scale=False, **kw)
    dev = device_reads(
        decoded,
        raw,
        read_context=contextlib.nullcontext,
        to_device=np.asarray,
        decoders=HOST_AS_DEVICE,
    )
    routes = decode_routes(dev)
    assert set(routes.values()) == {"chunks: blosc@cpu > bytes@gpu"}
    sel = {"time": [0, 4], "lat": slice(200, 700), "lon": slice(1500, 2000)}
    for name in ("conc_chl", "quality_flags"):
        np.testing.assert_array_equal(dev[name].isel(sel).values, decoded[name].isel(sel).values)


def test_chunk_decoder_reads_boxes_across_chunk_edges(decode_stores):
    array = zarr.open_array(decode_stores["v3-gzip"] / "t2m", mode="r")
    fmt, chain = codec_configs(array)
    reader = ChunkDecoder(array, plan_decode(chain, gpu_codecs=(), zarr_format=fmt))
    full = array[:]
    for lo, hi in [
        ((0, 0, 0), (48, 33, 49)),
        ((6, 9, 15), (8, 11, 17)),
        ((47, 32, 48), (48, 33, 49)),
    ]:
        box = reader.read_box(lo, hi)
        want = full[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        np.testing.assert_array_equal(box, want)
    sharded = zarr.open_array(decode_stores["v3-sharded"] / "t2m", mode="r")
    fmt, chain = codec_configs(sharded)
    plan = plan_decode(chain, gpu_codecs=(), zarr_format=fmt)
    with pytest.raises(ValueError, match="needs a 'chunks' plan"):
        ChunkDecoder(sharded, plan)


def test_zarr_array_of_only_unindexed_lazy_variables(decode_stores):
    ds = xr.open_dataset(decode_stores["v3-zstd"], **KW)
    assert zarr_array_of(ds.t2m.variable).shape == (48, 33, 49)
    assert zarr_array_of(ds.t2m.isel(time=slice(1, 3)).variable) is None
    assert zarr_array_of(ds.t2m.load().variable) is None


def test_the_cpu_route_says_zarr_decodes_on_the_host_and_writes_still_work(xcube_zarr, tmp_path):
    from workbench import open_datacube

    ds = open_datacube(xcube_zarr, engine="zarr")
    routes = decode_routes(ds)
    assert routes["conc_chl"] == "zarr: blosc@cpu > bytes@cpu"
    assert set(routes) == set(ds.data_vars)
    small = ds.isel(time=[0], lat=slice(0, 20), lon=slice(0, 30))
    small.to_zarr(tmp_path / "copy.zarr", zarr_format=2, consolidated=False)  # keys not written
    back = xr.open_dataset(tmp_path / "copy.zarr", **KW)
    assert "workbench_decode" not in back.conc_chl.encoding
    np.testing.assert_array_equal(back.conc_chl.values, small.conc_chl.values)
    small.to_netcdf(tmp_path / "copy.nc")
