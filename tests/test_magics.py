"""%load_ext workbench: %cluster, %%train, %train_compare through a real IPython shell."""

from __future__ import annotations

import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
pytest.importorskip("IPython")

from IPython.core.error import UsageError

from workbench.geo import HashRing
from workbench.training.result import Comparison, TrainResult

CELL = """
import torch
from torch.utils.data import TensorDataset
from workbench.models import NDVIRegressor
torch.manual_seed(0)
_x = torch.rand(64, 3, 8, 8)
model = NDVIRegressor()
train_data = TensorDataset(_x, _x[:, 0].mean(dim=(1, 2)))
loss_fn = torch.nn.functional.mse_loss
"""


def test_extension_registers_and_unregisters_the_magics(ip):
    magics = ip.magics_manager.magics
    assert "train" in magics["cell"]
    assert {"cluster", "train_compare"} <= set(magics["line"])
    ip.run_line_magic("unload_ext", "workbench")
    assert "train" not in ip.magics_manager.magics["cell"]
    ip.run_line_magic("load_ext", "workbench")
    assert "train" in ip.magics_manager.magics["cell"]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("--strategy bogus", "unknown strategy 'bogus'; use one of \\('single', 'ddp'"),
        ("--epochs 0", "--epochs: must be > 0, got '0'"),
        ("--batch-size x", "--batch-size: expected an integer, got 'x'"),
        (
            "--strategy ddp --sharding full_shard",
            "sharding='full_shard' applies to strategy 'fsdp', not 'ddp'",
        ),
        ("--strategy fsdp --sharding quarter", "invalid choice: 'quarter'"),
        ("--strategy partitioned --partition geohash", "must look like 'geohash:5'"),
        ("--strategy partitioned --partition h3:5", "unknown geocode scheme 'h3'"),
        (
            "--strategy ddp --partition geohash:5",
            "partition=.* applies to strategy 'partitioned', not 'ddp'",
        ),
        ("--strategy ddp --transfer glcm", "transfer='glcm' applies to strategy 'partitioned'"),
        ("--strategy single --engines 3", "'single' runs on 1 process.*got engines=3"),
        ("--strategy fsdp --engines 1", "needs at least 2 engines"),
        ("-o 1st", "-o needs a Python variable name, got '1st'"),
        ("--resume /no/such/checkpoint", "--resume '/no/such/checkpoint' does not exist"),
        ("--unknown-flag", "unrecognized arguments: --unknown-flag"),
        ("--strategy ddp --no-lockstep", "lockstep=False applies to strategy 'partitioned'"),
        ("--strategy fsdp --sharding no_shard --shard-group-size 2", "applies to sharding"),
    ],
)
def test_argument_errors_are_usage_errors(ip, line, match):
    with pytest.raises(UsageError, match=match):
        ip.run_cell_magic("train", line, CELL)


def test_cell_must_define_the_required_names(ip):
    ip.user_ns.pop("model", None)
    with pytest.raises(UsageError, match="must define model"):
        ip.run_cell_magic("train", "-q", "train_data = []")


def test_a_near_miss_of_an_expected_name_is_an_error(ip):
    """`train_dat = ...` must not train silently on the train_data of an earlier cell."""
    ip.run_cell(CELL)
    with pytest.raises(UsageError, match="binds 'train_dat', but %%train reads 'train_data'"):
        ip.run_cell_magic("train", "-q --no-live --no-checkpoint", "train_dat = train_data[:8]")
    with pytest.raises(UsageError, match=r"binds 'transforms'.*reads 'transform'"):
        ip.run_cell_magic("train", "-q --no-checkpoint", "transforms = None")


def test_names_from_earlier_cells_are_announced(ip, capsys):
    ip.run_cell(CELL)
    res = ip.run_cell_magic("train", "-q --no-live --no-checkpoint", "loss_fn = loss_fn")
    assert res.strategy == "single"
    out = capsys.readouterr().out
    assert "%%train: using model, train_data from earlier cells" in out


def test_single_trains_in_the_kernel_and_stores_the_result(ip):
    ip.user_ns["optimizer"] = "a stale object from an earlier cell"
    assert (
        ip.run_cell_magic(
            "train", "--epochs 3 --lr 0.003 -q --no-live --no-checkpoint --name k1 -o res", CELL
        )
        is None
    )
    res = ip.user_ns["res"]
    assert isinstance(res, TrainResult)
    assert res.strategy == "single"
    assert res.name == "k1"
    assert len(res.history) == 3
    assert res.history[-1].loss < res.history[0].loss
    assert res.bytes_exchanged == 0
    assert res.carbon is not None
    assert res.carbon.estimated
    # the stale `optimizer` was not used: the default Adam was (the cell did not define one)
    returned = ip.run_cell_magic(
        "train", "-q --no-live --no-checkpoint --name k2", CELL + "optimizer = None\n"
    )
    assert isinstance(returned, TrainResult)
    table = ip.run_line_magic("train_compare", "--baseline k1")
    assert list(table["name"])[-2:] == ["k1", "k2"]
    assert "time_x" in table
    comparison = ip.run_line_magic("train_compare", "-o cmp")
    assert isinstance(ip.user_ns["cmp"], Comparison)
    assert "k1" in ip.user_ns["cmp"]
    with pytest.raises(UsageError, match="no run named 'zz'"):
        ip.run_line_magic("train_compare", "--baseline zz")
    del comparison


def test_a_name_the_cell_rebinds_to_the_same_object_still_counts(ip):
    ip.run_cell(CELL + "val = TensorDataset(_x[:16], _x[:16, 0].mean(dim=(1, 2)))")
    line = "--epochs 1 -q --no-live --no-checkpoint"
    first = ip.run_cell_magic("train", line, "val_data = val")
    second = ip.run_cell_magic("train", line, "val_data = val")  # the same object again
    untouched = ip.run_cell_magic("train", line, "pass")  # leaves val_data alone: not used
    assert "loss" in first.history[-1].val
    assert "loss" in second.history[-1].val
    assert untouched.history[-1].val == {}


def test_checkpoint_and_resume_through_the_magic(ip, tmp_path):
    ip.run_cell_magic("train", f"--epochs 1 -q --no-live --checkpoint {tmp_path} -o first", CELL)
    assert ip.user_ns["first"].checkpoint_dir == str(tmp_path)
    assert (tmp_path / "model.pt").is_file()
    line = f"--epochs 3 -q --no-live --resume {tmp_path} --checkpoint {tmp_path / 'b'} -o second"
    ip.run_cell_magic("train", line, CELL)
    assert [r.epoch for r in ip.user_ns["second"].history] == [0, 1, 2]
    with pytest.raises(UsageError, match="exclude each other"):
        ip.run_cell_magic("train", f"--checkpoint {tmp_path} --no-checkpoint", CELL)


def test_live_plot_collects_the_steps_and_power(ip, capsys, monkeypatch):
    from workbench.widgets import live

    made = []
    real = live.LivePlot

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(live, "LivePlot", spy)
    ip.run_cell_magic(
        "train", "--epochs 2 --batch-size 16 -q --live --no-checkpoint --name live", CELL
    )
    (plot,) = made
    assert plot.event_count >= 8  # 4 steps per epoch, plus power samples of the estimate meter
    assert plot.meter.steps == 8
    assert "LivePlot" in capsys.readouterr().out  # no front end here: a text summary


def test_a_failing_cell_trains_nothing_and_fails(ip, capsys):
    with pytest.raises(UsageError, match=r"cell failed before training \(RuntimeError"):
        ip.run_cell_magic("train", "-q", "raise RuntimeError('cell error')")
    assert "cell error" in capsys.readouterr().out
    with pytest.raises(UsageError, match=r"cell failed before training \(SyntaxError"):
        ip.run_cell_magic("train", "-q", "model = (")


def test_dry_run_shows_the_hash_ring_placement(ip):
    cell = CELL + "geocodes = ['u24kg' + 'bcdefg'[i % 6] for i in range(64)]\n"
    plan = ip.run_cell_magic(
        "train", "--strategy partitioned --engines 2 --partition geohash:6 --dry-run", cell
    )
    ring = HashRing(["engine-0", "engine-1"], tokens_per_node=256)
    assert plan["placement"] == {c: ring.node_for(c, prefix_len=6) for c in plan["placement"]}
    assert len(plan["placement"]) == 6


@pytest.mark.cluster
def test_cluster_magics_and_ddp_on_engines(ip):
    assert ip.run_line_magic("cluster", "status")["engines"] == []
    ip.run_line_magic("cluster", "start -n 2")
    try:
        status = ip.run_line_magic("cluster", "status")
        assert status["owned"]
        assert status["ip"] == "127.0.0.1"
        assert len(status["engines"]) == 2
        with pytest.raises(UsageError, match="already active"):
            ip.run_line_magic("cluster", "start")
        ip.run_cell_magic(
            "train",
            "--engines 2 --strategy ddp --epochs 2 --batch-size 16 -q --no-live --no-checkpoint "
            "-o ddp_res",
            CELL,
        )
        res = ip.user_ns["ddp_res"]
        assert res.strategy == "ddp"
        assert res.engines == 2
        assert res.bytes_exchanged > 0
        assert len({d["model"] for d in res.digests.values()}) == 1
        table = ip.run_line_magic("train_compare", "")
        assert "ddpx2" in list(table["name"])
    finally:
        ip.run_line_magic("cluster", "stop")
    assert ip.run_line_magic("cluster", "status")["engines"] == []


def test_live_title_and_result_report_one_throughput(ip):
    """The live plot's samples/s and the result's are the same number: training time only."""
    pytest.importorskip("holoviews")
    from workbench.cluster import TrainRequest, launch_training
    from workbench.widgets.live import LivePlot

    ip.run_cell(CELL)
    ns = ip.user_ns
    live = LivePlot(background=False)
    request = TrainRequest(
        ns["model"], ns["train_data"], ns["loss_fn"], val_data=ns["train_data"], epochs=3,
        batch_size=8, checkpoint=False,
    )  # fmt: skip
    result = launch_training(request, callbacks=[live.update])
    live.close()
    assert result.samples_per_s == pytest.approx(live.samples_per_s)
    assert result.samples_per_s > result.end_to_end_samples_per_s  # start-up excluded
    assert "samples/s of training" in repr(result)
    assert "end to end (start-up included)" in repr(result)
    # the loss panel: a training loss per step and a validation loss per epoch
    losses = live.losses
    assert int((losses["val"] == 0).sum()) == 3 * 64 // 8
    assert losses["epoch"][losses["val"] == 1].tolist() == [0, 1, 2]


@pytest.mark.cluster
def test_cluster_start_hosts_trains_across_namespaces(ip):
    from workbench.cluster.netns import netns_available

    ok, reason = netns_available()
    if not ok:
        pytest.skip(f"namespaced hosts unavailable: {reason}")
    ip.run_line_magic("cluster", "start --hosts 2 --rate 100")
    try:
        status = ip.run_line_magic("cluster", "status")
        assert status["network"]["namespaces"] is True
        assert status["network"]["link_rate_mbit"] == 100.0
        assert sorted(e["host"] for e in status["engines"]) == ["host-0", "host-1"]
        ip.run_cell_magic(
            "train",
            "--engines 2 --strategy ddp --epochs 1 --batch-size 16 -q --no-live --no-checkpoint "
            "-o hosts_res",
            CELL,
        )
        res = ip.user_ns["hosts_res"]
        assert sorted(w["name"] for w in res.workers) == ["host-0", "host-1"]
        assert res.bytes_exchanged > 0
    finally:
        ip.run_line_magic("cluster", "stop")
    assert ip.run_line_magic("cluster", "status")["engines"] == []
