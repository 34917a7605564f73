"""The training loop: events per step, epoch records, failures."""

from __future__ import annotations

import math

import pytest

from workbench.errors import TrainingError
from workbench.metering.events import StepEvent

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)

from workbench.models import NDVIRegressor
from workbench.training.loop import evaluate, train

pytestmark = pytest.mark.torch


def _batches(data, bs):
    x, y = data.tensors
    return lambda epoch: [(x[i : i + bs], y[i : i + bs]) for i in range(0, len(x), bs)]


def test_one_event_per_step_with_the_step_facts(make_data):
    torch.manual_seed(0)
    data = make_data(40)
    model = NDVIRegressor()
    events: list[StepEvent] = []
    history = train(
        model,
        torch.nn.functional.mse_loss,
        torch.optim.Adam(model.parameters(), 3e-3),
        _batches(data, 16),
        epochs=2,
        callbacks=[events.append],
        rank=3,
        partition="u24kg",
        first_step=10,
    )
    assert [e.step for e in events] == list(range(10, 16))
    assert [e.samples for e in events] == [16, 16, 8] * 2
    assert [e.epoch for e in events] == [0, 0, 0, 1, 1, 1]
    assert all(e.rank == 3 and e.partition == "u24kg" and e.kind == "train" for e in events)
    assert events[0].nbytes == 16 * 3 * 8 * 8 * 4 + 16 * 4
    assert all(math.isfinite(e.loss) and e.duration >= e.data_wait >= 0 for e in events)
    assert [r.epoch for r in history] == [0, 1]
    assert history[0].samples == 40
    assert history[0].steps == 3
    mean0 = sum(e.loss * e.samples for e in events[:3]) / 40
    assert history[0].loss == pytest.approx(mean0)


def test_loss_decreases_and_validation_is_recorded(make_data):
    torch.manual_seed(0)
    data, val = make_data(128), make_data(32, seed=1)
    model = NDVIRegressor()
    vx, vy = val.tensors
    history = train(
        model,
        torch.nn.functional.mse_loss,
        torch.optim.Adam(model.parameters(), 3e-3),
        _batches(data, 32),
        epochs=6,
        validate=lambda m: evaluate(m, [(vx, vy)], torch.nn.functional.mse_loss),
    )
    assert history[-1].loss < history[0].loss
    assert history[-1].val["samples"] == 32
    assert history[-1].val["loss"] < history[0].val["loss"]


def test_non_finite_loss_is_a_training_error(make_data):
    data = make_data(16)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 1))
    x, y = data.tensors
    y = y.clone()
    y[3] = float("nan")
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 0, step 0 \(rank 0\).*--lr"):
        train(
            model,
            lambda p, t: ((p.squeeze(1) - t) ** 2).mean(),
            torch.optim.SGD(model.parameters(), 0.1),
            lambda e: [(x, y)],
            epochs=1,
        )


@pytest.mark.parametrize("batch", [(torch.zeros(4, 2),) * 3, {"x": torch.zeros(4, 2)}, [1, 2, 3]])
def test_batches_are_inputs_or_pairs(batch):
    model = torch.nn.Linear(2, 1)
    with pytest.raises(
        TrainingError, match="must be an input tensor or an \\(input, target\\) pair"
    ):
        train(
            model,
            torch.nn.functional.mse_loss,
            torch.optim.SGD(model.parameters(), 0.1),
            lambda e: [batch],
            epochs=1,
        )


def test_self_supervised_batches_use_the_inputs_as_target():
    """Inputs alone: loss_fn(prediction, x) trains an autoencoder-like model."""
    torch.manual_seed(0)
    x = torch.rand(64, 4)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    history = train(
        model,
        torch.nn.functional.mse_loss,
        torch.optim.Adam(model.parameters(), 0.05),
        lambda e: [x[i : i + 16] for i in range(0, 64, 16)],
        epochs=20,
    )
    assert history[-1].loss < 0.2 * history[0].loss
    assert evaluate(model, [x], torch.nn.functional.mse_loss)["samples"] == 64


class _OwnLoss(torch.nn.Module):
    """A model whose forward returns the loss of a batch (as MAE pretraining models do)."""

    def __init__(self, scalar: bool = True) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.scalar = scalar

    def forward(self, x):
        err = (x - self.w) ** 2
        return err.mean() if self.scalar else err


def test_a_model_that_returns_its_loss_trains_without_loss_fn():
    x = torch.ones(32, 3) * torch.tensor([1.0, 2.0, 3.0])
    model = _OwnLoss()
    train(model, None, torch.optim.SGD(model.parameters(), 1.0), lambda e: [x], epochs=30)
    assert torch.allclose(model.w.detach(), torch.tensor([1.0, 2.0, 3.0]), atol=1e-2)
    assert evaluate(model, [x], None)["loss"] < 1e-3


def test_own_loss_must_be_scalar_and_pairs_need_a_loss_fn():
    model = _OwnLoss(scalar=False)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with pytest.raises(TrainingError, match=r"must be one number per batch.*forward must return"):
        train(model, None, opt, lambda e: [torch.ones(4, 3)], epochs=1)
    with pytest.raises(TrainingError, match="no loss_fn was given"):
        train(_OwnLoss(), None, opt, lambda e: [(torch.ones(4, 3), torch.ones(4))], epochs=1)


def test_evaluate_weights_batches_by_samples():
    model = torch.nn.Identity()
    mse = torch.nn.functional.mse_loss
    out = evaluate(model, [(torch.zeros(1), torch.ones(1)), (torch.zeros(3), torch.zeros(3))], mse)
    assert out == {"loss": 0.25, "samples": 4}
    assert evaluate(model, [], mse) == {"samples": 0}
