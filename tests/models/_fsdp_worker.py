"""One rank of the 2-process FSDP check in ``test_mae_fsdp.py`` (run as a script, not collected).

Usage: ``python _fsdp_worker.py RANK WORLD_SIZE STORE_FILE OUT_JSON``. For every sharding
strategy the rank wraps the tiny MAE per ``MAEBlock``, trains a few AdamW steps on its own
batch, and records the strategy FSDP kept, the size of its local parameter shard, its losses,
a checksum of the full (gathered) parameters, and, on rank 0, the losses of an unwrapped
model trained on the mean of both ranks' losses (what data-parallel training must reproduce).
"""

from __future__ import annotations

import functools
import json
import sys
import warnings

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp import ShardingStrategy
from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

from workbench.models.mae import MAEBlock, MaskedAutoencoderViT, get_config

STEPS = 3
STRATEGIES = ["NO_SHARD", "SHARD_GRAD_OP", "FULL_SHARD", "HYBRID_SHARD"]


def batch(rank: int) -> torch.Tensor:
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(100 + rank))


def mask_gen(rank: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(1000 * rank + step)


def fresh() -> MaskedAutoencoderViT:
    torch.manual_seed(0)
    return MaskedAutoencoderViT(get_config("tiny"))


def reference(world: int) -> list[list[float]]:
    """Unwrapped model, loss = mean over ranks of each rank's loss; per-rank losses per step."""
    model = fresh()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    out = []
    for step in range(STEPS):
        losses = [model(batch(r), generator=mask_gen(r, step))[0] for r in range(world)]
        total = torch.stack(losses).mean()
        opt.zero_grad()
        total.backward()
        opt.step()
        out.append([float(v) for v in losses])
    return out


def run(rank: int, world: int, store_file: str) -> dict[str, object]:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    dist.init_process_group(
        "gloo", store=dist.FileStore(store_file, world), rank=rank, world_size=world
    )
    policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={MAEBlock})
    total = sum(p.numel() for p in fresh().parameters())
    result: dict[str, object] = {"total_params": total}
    try:
        for name in STRATEGIES:
            strategy = ShardingStrategy[name]
            extra = {}
            if strategy == ShardingStrategy.HYBRID_SHARD:  # replicate 1 x shard `world`
                extra["device_mesh"] = init_device_mesh(
                    "cpu", (1, world), mesh_dim_names=("replicate", "shard")
                )
            model = FSDP(
                fresh(),
                auto_wrap_policy=policy,
                sharding_strategy=strategy,
                device_id=torch.device("cpu"),
                **extra,
            )
            units = sum(isinstance(m, FSDP) for m in model.modules())
            local = sum(p.numel() for p in model.parameters())
            opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
            losses = []
            for step in range(STEPS):
                loss, _, _ = model(batch(rank), generator=mask_gen(rank, step))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss))
            with FSDP.summon_full_params(model):
                checksum = float(sum(p.double().sum() for p in model.parameters()))
            result[name] = {
                "kept": model.sharding_strategy.name,
                "units": units,
                "local_params": local,
                "losses": losses,
                "checksum": checksum,
            }
        if rank == 0:
            result["reference"] = reference(world)
        # Leave together: a rank that tears its gloo pairs down while its peer still computes
        # (rank 0's reference above) can abort the peer's teardown (std::terminate from a
        # still-joinable gloo thread, seen once in CI).
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    rank_, world_, store_, out_ = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(out_, "w") as fh:
        json.dump(run(rank_, world_, store_), fh)
