"""FSDP wraps the MAE per :class:`MAEBlock` and trains it under every sharding strategy.

The Frontier workflow of Tsaris et al. (2024) scaled down to CPU ``gloo`` groups with a
file-store rendezvous (no port needed):

* world size 1, in this process: every strategy wraps and trains and computes exactly what
  the unwrapped model computes. Note: at world size 1 FSDP itself downgrades SHARD_GRAD_OP,
  FULL_SHARD and HYBRID_SHARD to NO_SHARD (with a UserWarning), so this alone proves nothing
  about sharding;
* world size 2, two real processes (``_fsdp_worker.py``, marked ``slow``: run with
  ``-m slow``): the strategy is kept, parameters are really sharded (half per rank), ranks end
  identical, and the losses match an unwrapped model trained on the mean of both ranks' losses.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():  # pragma: no cover - torch built without distributed
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp import ShardingStrategy
from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

from workbench.models.mae import MAEBlock, MaskedAutoencoderViT, get_config

pytestmark = [pytest.mark.torch, pytest.mark.cluster, pytest.mark.usefixtures("torch_one_thread")]

STEPS = 3


@pytest.fixture(scope="module")
def gloo_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A world-size-1 gloo process group; reuses one a caller already set up."""
    if dist.is_initialized():
        if dist.get_world_size() != 1:
            pytest.skip("a multi-rank process group is already initialised in this process")
        yield
        return
    store_file = Path(tmp_path_factory.mktemp("gloo")) / "store"
    store = dist.FileStore(str(store_file), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _train(model: torch.nn.Module) -> list[float]:
    """A few AdamW steps with fixed data and masks; returns the losses."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    losses = []
    for step in range(STEPS):
        loss, _, _ = model(x, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _fresh_model() -> MaskedAutoencoderViT:
    torch.manual_seed(0)
    return MaskedAutoencoderViT(get_config("tiny"))


@pytest.fixture(scope="module")
def reference_losses() -> list[float]:
    return _train(_fresh_model())


@pytest.mark.parametrize(
    "strategy",
    [
        ShardingStrategy.NO_SHARD,
        ShardingStrategy.SHARD_GRAD_OP,
        ShardingStrategy.FULL_SHARD,
        ShardingStrategy.HYBRID_SHARD,
    ],
    ids=lambda s: s.name,
)
def test_fsdp_wraps_each_block_and_trains(
    gloo_group: None, reference_losses: list[float], strategy: ShardingStrategy
) -> None:
    model = _fresh_model()
    n_blocks = len(model.blocks) + len(model.decoder_blocks)
    policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={MAEBlock})
    extra = {}
    if strategy == ShardingStrategy.HYBRID_SHARD:
        # HYBRID_SHARD needs a 2-D (replicate, shard) mesh; at world size 1 it is (1, 1).
        from torch.distributed.device_mesh import init_device_mesh

        extra["device_mesh"] = init_device_mesh(
            "cpu", (1, 1), mesh_dim_names=("replicate", "shard")
        )
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        wrapped = FSDP(
            model,
            auto_wrap_policy=policy,
            sharding_strategy=strategy,
            device_id=torch.device("cpu"),
            **extra,
        )
    if strategy != ShardingStrategy.NO_SHARD:
        assert any("switching to use `NO_SHARD`" in str(w.message) for w in rec)
    units = [m for m in wrapped.modules() if isinstance(m, FSDP)]
    assert len(units) == n_blocks + 1  # one unit per MAEBlock, plus the root
    assert all(isinstance(u.module, MAEBlock) for u in units[1:])
    assert all(u.sharding_strategy == ShardingStrategy.NO_SHARD for u in units)

    losses = _train(wrapped)
    assert losses[-1] < losses[0]
    # One rank shards nothing away: the maths must be the unwrapped model's.
    assert losses == pytest.approx(reference_losses, rel=1e-5, abs=1e-6)


@pytest.mark.slow  # two fresh torch processes: ~8 s on a quiet 2-core machine, 15-55 s under load
def test_two_ranks_shard_and_match_data_parallel_maths(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("_fsdp_worker.py")
    store = tmp_path / "store"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), str(r), "2", str(store), str(outs[r])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    for proc in procs:
        try:
            log, _ = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        assert proc.returncode == 0, log[-3000:]
    r0, r1 = (json.loads(o.read_text()) for o in outs)
    total = r0["total_params"]
    reference = r0["reference"]
    for name in ("NO_SHARD", "SHARD_GRAD_OP", "FULL_SHARD", "HYBRID_SHARD"):
        a, b = r0[name], r1[name]
        assert a["kept"] == b["kept"] == name  # no downgrade at world size 2
        assert a["units"] == 1 + 2 + 1  # root + 2 encoder + 1 decoder MAEBlocks
        if name == "NO_SHARD":
            assert a["local_params"] == total
        else:  # each rank holds half of every flat parameter (plus padding)
            assert total / 2 <= a["local_params"] <= total / 2 + 64
        assert a["checksum"] == pytest.approx(b["checksum"], rel=1e-6)  # replicas agree
        for step, (x0, x1) in enumerate(zip(a["losses"], b["losses"], strict=True)):
            assert [x0, x1] == pytest.approx(reference[step], rel=1e-4, abs=1e-5), (name, step)
