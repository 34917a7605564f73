"""Optimizers over stacked models: one Adam, AdamW or SGD per model, updated together.

Lockstep partitioned training (:mod:`workbench.training.lockstep`) holds ``K`` models as
stacked tensors ``(K, *shape)``. :class:`StackedOptimizer` applies to each model the update that
its own ``torch.optim`` optimizer would apply, with a step count per model, and leaves the
models that had no batch in a step untouched (their own optimizer would not have stepped). The
rules follow PyTorch's single-tensor implementations (``amsgrad``, ``maximize`` and
tensor-valued hyper-parameters are not supported: :func:`stacked_rule` returns ``None`` and
the caller trains the models one after another instead).

Examples
--------
>>> import torch
>>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
>>> rule = stacked_rule(torch.optim.Adam([w], lr=0.1))
>>> stacked = {"w": torch.tensor([[1.0, 2.0], [1.0, 2.0]])}
>>> opt = StackedOptimizer(rule, stacked, models=2)
>>> opt.step(stacked, {"w": torch.ones(2, 2)}, active=torch.tensor([0]))
>>> stacked["w"].round(decimals=4).tolist()  # model 0 moved by lr, model 1 had no batch
[[0.8999999761581421, 1.899999976158142], [1.0, 2.0]]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workbench._optional import lazy_import

__all__ = ["StackedRule", "StackedOptimizer", "stacked_rule"]


@dataclass(frozen=True)
class StackedRule:
    """The update rule and hyper-parameters of one optimizer, and its ``param_groups``."""

    kind: str  # "adam" | "sgd"
    lr: float
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    decoupled: bool = False
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    param_groups: tuple[dict[str, Any], ...] = ()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def stacked_rule(optimizer: Any) -> StackedRule | None:
    """Return the :class:`StackedRule` of a torch ``Adam``, ``AdamW`` or ``SGD``, else ``None``.

    ``optimizer`` must hold one parameter group; other optimizers, several groups, ``amsgrad``,
    ``maximize`` or tensor hyper-parameters give ``None``.
    """
    torch = lazy_import("torch")
    kind = {torch.optim.Adam: "adam", torch.optim.AdamW: "adam", torch.optim.SGD: "sgd"}.get(
        type(optimizer)
    )
    if kind is None or len(optimizer.param_groups) != 1:
        return None
    g = optimizer.param_groups[0]
    if g.get("maximize") or g.get("amsgrad") or g.get("differentiable"):
        return None
    keys = ("lr", "weight_decay") + (("eps",) if kind == "adam" else ("momentum", "dampening"))
    if not all(_number(g.get(k)) for k in keys):
        return None
    groups = tuple(optimizer.state_dict()["param_groups"])
    if kind == "adam":
        betas = g.get("betas")
        if not (isinstance(betas, tuple | list) and len(betas) == 2 and all(map(_number, betas))):
            return None
        decoupled = bool(g.get("decoupled_weight_decay", type(optimizer) is torch.optim.AdamW))
        return StackedRule(
            "adam",
            float(g["lr"]),
            float(g["weight_decay"]),
            (float(betas[0]), float(betas[1])),
            float(g["eps"]),
            decoupled=decoupled,
            param_groups=groups,
        )
    return StackedRule(
        "sgd",
        float(g["lr"]),
        float(g["weight_decay"]),
        momentum=float(g["momentum"]),
        dampening=float(g["dampening"]),
        nesterov=bool(g.get("nesterov", False)),
        param_groups=groups,
    )


class StackedOptimizer:
    """Per-model optimizer state for stacked parameters ``{name: (K, *shape)}``.

    Parameters
    ----------
    rule : StackedRule
        What to apply (from :func:`stacked_rule`).
    params : mapping of str to torch.Tensor
        The stacked parameters (their shapes and dtypes size the state).
    models : int
        ``K``, the number of stacked models.
    """

    def __init__(self, rule: StackedRule, params: Mapping[str, Any], models: int) -> None:
        torch = lazy_import("torch")
        self.rule = rule
        self.names = list(params)
        self.steps = torch.zeros(models, dtype=torch.float64)
        zeros = {
            n: torch.zeros_like(p, memory_format=torch.preserve_format) for n, p in params.items()
        }
        if rule.kind == "adam":
            self.state: dict[str, dict[str, Any]] = {
                "exp_avg": zeros,
                "exp_avg_sq": {n: torch.zeros_like(p) for n, p in params.items()},
            }
        else:
            self.state = {"momentum_buffer": zeros} if rule.momentum else {}

    def step(self, params: Mapping[str, Any], grads: Mapping[str, Any], active: Any) -> None:
        """Update the models ``active`` (a LongTensor of model positions, or ``None`` for all)."""
        torch = lazy_import("torch")
        rows = slice(None) if active is None else active
        steps = self.steps[rows] + 1
        self.steps[rows] = steps
        with torch.no_grad():
            for name in self.names:
                p, g = params[name], grads[name]
                if active is not None:
                    p_rows, g_rows = p[active], g[active]
                else:
                    p_rows, g_rows = p, g
                state = {
                    k: v[name] if active is None else v[name][active] for k, v in self.state.items()
                }
                new = (
                    self._adam(p_rows, g_rows, state, steps)
                    if self.rule.kind == "adam"
                    else self._sgd(p_rows, g_rows, state, steps)
                )
                if active is not None:
                    p[active] = new
                    for k, v in state.items():
                        self.state[k][name][active] = v

    def _adam(self, p: Any, g: Any, state: dict[str, Any], steps: Any) -> Any:
        r = self.rule
        shape = (-1,) + (1,) * (p.dim() - 1)
        if r.weight_decay:
            if r.decoupled:
                p.mul_(1 - r.lr * r.weight_decay)
            else:
                g = g.add(p, alpha=r.weight_decay)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(g, 1 - r.betas[0])
        v.mul_(r.betas[1]).addcmul_(g, g, value=1 - r.betas[1])
        bc1 = 1 - r.betas[0] ** steps
        bc2_sqrt = (1 - r.betas[1] ** steps) ** 0.5
        step_size = (r.lr / bc1).to(p.dtype).view(shape)
        denom = (v.sqrt() / bc2_sqrt.to(p.dtype).view(shape)).add_(r.eps)
        p.sub_(step_size * (m / denom))
        return p

    def _sgd(self, p: Any, g: Any, state: dict[str, Any], steps: Any) -> Any:
        r = self.rule
        if r.weight_decay:
            g = g.add(p, alpha=r.weight_decay)
        if r.momentum:
            buf = state["momentum_buffer"]
            first = (steps == 1).view((-1,) + (1,) * (p.dim() - 1))
            buf.copy_(g.where(first, buf * r.momentum + g * (1 - r.dampening)))
            g = g.add(buf, alpha=r.momentum) if r.nesterov else buf
        p.add_(g, alpha=-r.lr)
        return p

    def model_state(self, k: int) -> dict[str, Any]:
        """Return the ``torch.optim`` ``state_dict`` of model ``k`` (loadable by its optimizer)."""
        torch = lazy_import("torch")
        state: dict[int, dict[str, Any]] = {}
        for i, name in enumerate(self.names):
            if self.rule.kind == "adam":
                state[i] = {"step": torch.tensor(float(self.steps[k]))}
            else:
                state[i] = {"momentum_buffer": None}
            for key, values in self.state.items():
                state[i][key] = values[name][k].detach().clone()
        groups = [dict(g) for g in self.rule.param_groups]
        return {"state": state, "param_groups": groups}
