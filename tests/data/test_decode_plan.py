"""Where each codec decodes: the pure decision, on the codec configs of real stores."""

from __future__ import annotations

import numcodecs
import pytest
import zarr
import zarr.codecs

from workbench.data.decode_plan import (
    GPU_ALGORITHMS,
    codec_configs,
    codec_name,
    plan_decode,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ALL_GPU = frozenset(GPU_ALGORITHMS)


@pytest.fixture(scope="module")
def stores(decode_stores):
    return decode_stores


def _plan(path, gpu=ALL_GPU, var="t2m"):
    fmt, chain = codec_configs(zarr.open_array(path / var, mode="r"))
    return plan_decode(chain, gpu_codecs=gpu, zarr_format=fmt)


@pytest.mark.parametrize(
    ("store", "with_gpu", "without_gpu"),
    [
        ("v3-zstd", "chunks: zstd@gpu > bytes@gpu", "chunks: zstd@cpu > bytes@gpu"),
        (
            "v3-zstd-checksum-crc32c",
            "chunks: crc32c@cpu > zstd@gpu > bytes@gpu",
            "chunks: crc32c@cpu > zstd@cpu > bytes@gpu",
        ),
        ("v3-gzip", "chunks: gzip@gpu > bytes@gpu", "chunks: gzip@cpu > bytes@gpu"),
        ("v3-blosc", "chunks: blosc@cpu > bytes@gpu", "chunks: blosc@cpu > bytes@gpu"),
        (
            "v3-transpose-zstd",
            "chunks: zstd@gpu > bytes@gpu > transpose@gpu",
            "chunks: zstd@cpu > bytes@gpu > transpose@gpu",
        ),
        ("v3-uncompressed", "chunks: bytes@gpu", "chunks: bytes@gpu"),
        ("v2-zstd", "chunks: zstd@gpu > bytes@gpu", "chunks: zstd@cpu > bytes@gpu"),
        ("v2-lz4", "chunks: lz4@gpu > bytes@gpu", "chunks: lz4@cpu > bytes@gpu"),
        ("v2-blosc", "chunks: blosc@cpu > bytes@gpu", "chunks: blosc@cpu > bytes@gpu"),
    ],
)
def test_codecs_decode_where_the_device_can(stores, store, with_gpu, without_gpu):
    for var in ("t2m", "t2m_packed"):
        if var == "t2m_packed" and "transpose" in store:
            continue  # the packed variable carries no filter
        assert _plan(stores[store], ALL_GPU, var).route == with_gpu
        assert _plan(stores[store], (), var).route == without_gpu


def test_one_copy_to_the_device_whatever_the_chain(stores):
    # the compressed bytes cross once where the compressor is on the device, the decoded
    # bytes cross once where it is on the host; the checksum is checked before either
    for store in ("v3-zstd", "v3-zstd-checksum-crc32c", "v3-blosc", "v2-lz4", "v3-transpose-zstd"):
        for gpu in (ALL_GPU, frozenset()):
            assert _plan(stores[store], gpu).transfers == 1


def test_reasons_say_why_a_codec_stays_on_the_host(stores):
    plan = _plan(stores["v3-blosc"])
    assert plan.gpu_compressors == ()
    assert "nvCOMP does not decode 'blosc'" in plan.reason
    crc = _plan(stores["v3-zstd-checksum-crc32c"])
    assert crc.gpu_compressors == ("zstd",)
    assert "checksum" in crc.steps[0].reason
    assert "no device decoder for 'zstd'" in _plan(stores["v3-zstd"], ()).reason
    # only the codecs nvCOMP decodes count as device codecs, whatever the caller claims
    assert _plan(stores["v3-blosc"], {"blosc", "zstd"}).route == "chunks: blosc@cpu > bytes@gpu"


def test_chains_the_chunk_decoder_does_not_know_go_to_zarr(stores, tmp_path):
    sharded = _plan(stores["v3-sharded"])
    assert (sharded.reader, sharded.transfers) == ("zarr", 1)
    assert "sharding_indexed" in sharded.reason
    filtered = _plan(stores["v2-delta-zlib"])
    assert filtered.reader == "zarr"
    assert "filters ['delta']" in filtered.reason
    # a numcodecs array-to-array codec through zarr v3 (its name has the numcodecs prefix)
    pixels = zarr.open_array(stores["v3-zstd"] / "t2m", mode="r")[:4]
    quantized = zarr.create_array(
        tmp_path / "q.zarr",
        data=pixels,
        chunks=(2, 10, 16),
        filters=[zarr.codecs.numcodecs.Quantize(digits=3, dtype="<f4")],
    )
    fmt, chain = codec_configs(quantized)
    assert codec_name(chain[0]) == "quantize"
    plan = plan_decode(chain, gpu_codecs=ALL_GPU, zarr_format=fmt)
    assert plan.reader == "zarr"
    assert "'quantize'" in plan.reason


def test_big_endian_views_keep_the_whole_chain_on_the_host(stores, tmp_path):
    pixels = zarr.open_array(stores["v3-zstd"] / "t2m", mode="r")[:4]
    v3 = zarr.create_array(
        tmp_path / "be3.zarr",
        data=pixels,
        chunks=(2, 10, 16),
        serializer=zarr.codecs.BytesCodec(endian="big"),
        compressors=[zarr.codecs.ZstdCodec()],
    )
    fmt, chain = codec_configs(v3)
    plan = plan_decode(chain, gpu_codecs=ALL_GPU, zarr_format=fmt)
    assert plan.route == "chunks: zstd@cpu > bytes@cpu"
    assert plan.transfers == 1
    assert "byte-swapped on the host" in plan.reason
    v2 = zarr.create_array(
        tmp_path / "be2.zarr",
        data=pixels.astype(">f4"),
        chunks=(2, 10, 16),
        zarr_format=2,
        compressors=numcodecs.LZ4(),
    )
    fmt, chain = codec_configs(v2)
    assert chain[0] == {"name": "bytes", "configuration": {"endian": "big"}}
    assert plan_decode(chain, gpu_codecs=ALL_GPU, zarr_format=fmt).route == (
        "chunks: lz4@cpu > bytes@cpu"
    )


def test_real_xcube_store_is_blosc_on_the_host(xcube_zarr):
    group = zarr.open_group(xcube_zarr, mode="r")
    for name in ("conc_chl", "conc_tsm", "kd489", "c2rcc_flags", "quality_flags"):
        fmt, chain = codec_configs(group[name])
        assert fmt == 2
        assert chain[1] == {
            "id": "blosc",
            "cname": "lz4",
            "clevel": 5,
            "shuffle": 1,
            "blocksize": 0,
        }
        plan = plan_decode(chain, gpu_codecs=ALL_GPU, zarr_format=fmt)
        assert plan.route == "chunks: blosc@cpu > bytes@gpu"


def test_a_probe_failure_moves_one_codec_to_the_host(stores):
    plan = _plan(stores["v3-zstd-checksum-crc32c"])
    moved = plan.on_host("zstd", "zstd: the device decoder failed")
    assert moved.route == "chunks: crc32c@cpu > zstd@cpu > bytes@gpu"
    assert moved.gpu_compressors == ()
    assert "the device decoder failed" in moved.reason
    assert plan.route == "chunks: crc32c@cpu > zstd@gpu > bytes@gpu"  # plans are values
