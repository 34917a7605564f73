"""to_torch / torch_dataset: shapes, order, shuffles, DDP shards, DataLoader workers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench  # noqa: F401
from workbench.chips.plan import shard
from workbench.errors import ChipSpecError, EmptyChipError, GPUUnavailableError

pytestmark = pytest.mark.torch

VARS = ["t2m", "u10", "v10", "msl"]


@pytest.fixture
def chips(era5):
    return era5.wb.chips({"time": 1, "lat": 16, "lon": 16}, variables=VARS)


def test_shapes_dtypes_and_index_order(chips) -> None:
    loader = chips.to_torch(batch_size=100, device="cpu")
    batches = list(loader)
    assert len(batches) == len(loader) == -(-len(chips) // 100)
    assert all(isinstance(b, torch.Tensor) and b.dtype == torch.float32 for b in batches)
    assert tuple(batches[0].shape) == (100, 4, 1, 16, 16)
    assert batches[-1].shape[0] == len(chips) - 100 * (len(batches) - 1)
    # in memory, storage order is index order: exactly chips.to_numpy()
    np.testing.assert_array_equal(torch.cat(batches).numpy(), chips.to_numpy())
    assert [b.tolist() for b in loader.batch_indices(0)] == [
        list(range(i, min(i + 100, len(chips)))) for i in range(0, len(chips), 100)
    ]


def test_tensors_share_memory_with_the_gathered_batch(chips) -> None:
    """Zero copy: the tensor is the NumPy batch (torch.from_numpy), owned by no one else."""
    batch = next(iter(chips.to_torch(8, device="cpu")))
    assert batch.is_contiguous()
    arr = batch.numpy()
    arr[0, 0, 0, 0, 0] = 123.0
    assert batch[0, 0, 0, 0, 0].item() == 123.0


def test_drop_last(chips) -> None:
    loader = chips.to_torch(100, drop_last=True, device="cpu")
    sizes = [len(b) for b in loader]
    assert sizes == [100] * (len(chips) // 100)


def test_targets_split_inputs_and_outputs(era5) -> None:
    chips = era5.wb.chips({"lat": 8, "lon": 8}, variables=["t2m", "u10", "v10"])
    x, y = next(iter(chips.to_torch(4, targets=["msl"], device="cpu")))
    assert tuple(x.shape) == (4, 3 * 48, 8, 8)
    assert tuple(y.shape) == (4, 48, 8, 8)
    full = era5.wb.chips({"lat": 8, "lon": 8}, variables=["t2m", "u10", "v10", "msl"]).to_numpy(
        range(4)
    )
    np.testing.assert_array_equal(x.numpy(), full[:, : 3 * 48])
    np.testing.assert_array_equal(y.numpy(), full[:, 3 * 48 :])
    # a target that is also listed in variables is removed from the inputs
    x2, y2 = next(iter(chips.to_torch(4, targets="v10", device="cpu")))
    assert x2.shape[1] == 2 * 48
    assert y2.shape[1] == 48
    with pytest.raises(ChipSpecError, match="unknown target"):
        chips.to_torch(4, targets=["nope"])
    only = era5.wb.chips({"lat": 8, "lon": 8}, variables=["msl"])
    with pytest.raises(ChipSpecError, match="no input variable"):
        only.to_torch(4, targets=["msl"])


def test_shuffle_reproducible_and_different_per_epoch(chips) -> None:
    a = chips.to_torch(32, shuffle=True, seed=7, device="cpu")
    b = chips.to_torch(32, shuffle=True, seed=7, device="cpu")
    e0 = np.concatenate(a.batch_indices(0))
    assert np.array_equal(e0, np.concatenate(b.batch_indices(0)))
    assert not np.array_equal(e0, np.concatenate(a.batch_indices(1)))
    assert sorted(e0.tolist()) == list(range(len(chips)))
    assert not np.array_equal(e0, np.arange(len(chips)))
    # iterating advances the epoch; set_epoch rewinds it (like DistributedSampler)
    first = torch.cat(list(a))
    second = torch.cat(list(a))
    assert a.epoch == 2
    assert not torch.equal(first, second)
    a.set_epoch(0)
    assert torch.equal(torch.cat(list(a)), first)
    c = chips.to_torch(32, shuffle=True, seed=8, device="cpu")
    assert not np.array_equal(e0, np.concatenate(c.batch_indices(0)))
    reference = chips.to_numpy()
    np.testing.assert_array_equal(first.numpy(), reference[e0])


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("world_size", [2, 3, 5])
def test_ddp_shards(chips, world_size, shuffle, drop_last) -> None:
    loaders = [
        chips.to_torch(
            16,
            shuffle=shuffle,
            seed=1,
            rank=r,
            world_size=world_size,
            drop_last=drop_last,
            device="cpu",
        )
        for r in range(world_size)
    ]
    spans = [np.concatenate(ld.batch_indices(3)) for ld in loaders]
    lengths = {len(ld) for ld in loaders}
    assert len(lengths) == 1  # every rank the same number of batches: DDP never hangs
    assert {len(ld.batch_indices(3)) for ld in loaders} == lengths
    union = np.concatenate(spans)
    n = len(chips)
    if drop_last:
        assert len(set(union.tolist())) == len(union)  # disjoint
        assert all(len(s) % 16 == 0 for s in spans)
        assert n - len(union) < world_size * 16
    else:
        assert set(union.tolist()) == set(range(n))  # union == all
        assert len(union) - n < world_size  # at most world_size - 1 repeats
        if n % world_size == 0:
            assert len(set(union.tolist())) == len(union)
    for ld in loaders:
        ld.set_epoch(3)
    got = [torch.cat(list(ld)) for ld in loaders[:2]]
    reference = chips.to_numpy()
    for tensor, span in zip(got, spans, strict=False):
        np.testing.assert_array_equal(tensor.numpy(), reference[span])


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 300), world=st.integers(1, 9), batch=st.integers(1, 40), drop=st.booleans())
def test_shard_policy_property(n: int, world: int, batch: int, drop: bool) -> None:
    if drop and n < world * batch:
        with pytest.raises(EmptyChipError):
            shard(np.arange(n), world_size=world, batch_size=batch, drop_last=drop)
        return
    spans = shard(np.arange(n), world_size=world, batch_size=batch, drop_last=drop)
    counts = [(len(s) + batch - 1) // batch if not drop else len(s) // batch for s in spans]
    assert (len(set(counts)) == 1 and counts[0] >= 1) or n < world
    union = np.concatenate(spans)
    if drop:
        assert len(np.unique(union)) == len(union)
    else:
        assert set(union.tolist()) == set(range(n))
        assert len(union) - n < world


def test_rank_and_batch_validation(chips) -> None:
    with pytest.raises(ChipSpecError, match="rank"):
        chips.to_torch(8, rank=2, world_size=2)
    with pytest.raises(ChipSpecError, match="batch_size"):
        chips.to_torch(0)
    with pytest.raises(ChipSpecError, match="order"):
        chips.to_torch(8, order="random")
    with pytest.raises(EmptyChipError):
        chips.select([]).to_torch(8)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_without_gpu_is_a_typed_error(chips) -> None:
    with pytest.raises(GPUUnavailableError, match="device='cpu'"):
        chips.to_torch(8, device="cuda")
    assert chips.to_torch(8).device.type == "cpu"  # auto


def test_torch_dataset_with_dataloader_workers(era5_lazy) -> None:
    """Map-style view over a lazily opened store, two worker processes, default collate."""
    chips = era5_lazy.wb.chips({"time": 1, "lat": 16, "lon": 16}, variables=VARS)
    dataset = chips.torch_dataset()
    assert len(dataset) == len(chips)
    assert tuple(dataset[3].shape) == (4, 1, 16, 16)
    pickle.loads(pickle.dumps(dataset))
    loader = torch.utils.data.DataLoader(dataset, batch_size=10, num_workers=2, shuffle=False)
    got = torch.cat(list(loader))
    np.testing.assert_array_equal(got.numpy(), chips.to_numpy())
    with pytest.raises(IndexError):
        dataset[len(chips)]


def test_torch_dataset_targets(era5) -> None:
    chips = era5.wb.chips({"lat": 8, "lon": 8}, variables=["t2m", "u10"])
    x, y = chips.torch_dataset(targets=["msl"])[0]
    assert tuple(x.shape) == (2 * 48, 8, 8)
    assert tuple(y.shape) == (48, 8, 8)
    xb, yb = next(
        iter(torch.utils.data.DataLoader(chips.torch_dataset(targets=["msl"]), batch_size=3))
    )
    assert tuple(xb.shape) == (3, 96, 8, 8)
    assert tuple(yb.shape) == (3, 48, 8, 8)


def test_chip_loader_in_a_dataloader_with_workers(era5_lazy) -> None:
    """The loader is an IterableDataset: workers split its batches, order is kept."""
    chips = era5_lazy.wb.chips({"time": 1, "lat": 16, "lon": 16}, variables=VARS)
    loader = chips.to_torch(20, shuffle=True, seed=5, device="cpu")
    dl = torch.utils.data.DataLoader(loader, batch_size=None, num_workers=2)
    got = torch.cat(list(dl))
    np.testing.assert_array_equal(
        got.numpy(), chips.to_numpy(np.concatenate(loader.batch_indices(0)))
    )


def test_float64_data_reaches_the_models_as_float32(era5) -> None:
    """Float64 sources become float32 tensors, which the bundled models take as they are."""
    from workbench.models import NDVIRegressor

    ds = era5[["t2m", "u10", "v10", "msl"]].astype("float64")
    chips = ds.wb.chips({"time": 1, "lat": 8, "lon": 8}, variables=["t2m", "u10", "v10"])
    x, y = next(iter(chips.to_torch(4, targets=["msl"], device="cpu")))
    assert (x.dtype, y.dtype) == (torch.float32, torch.float32)
    assert NDVIRegressor(in_channels=3)(x).dtype == torch.float32
    x64 = next(iter(chips.to_torch(4, device="cpu", dtype=None)))
    assert x64.dtype == torch.float64
    xd, _ = chips.torch_dataset(targets=["msl"])[0]
    assert xd.dtype == torch.float32


def test_transform_runs_on_the_tensor_batch(chips) -> None:
    mean = chips.to_numpy().mean(axis=(0, 2, 3, 4), keepdims=True)[0]
    centre = torch.from_numpy(mean)

    def normalise(x):
        assert isinstance(x, torch.Tensor)
        return {"x": x - centre}

    out = next(iter(chips.to_torch(8, device="cpu", transform=normalise)))
    np.testing.assert_allclose(out["x"].numpy(), chips.to_numpy(range(8)) - mean, rtol=1e-6)
