"""Small models for the tutorials and benchmarks (all CPU-trainable).

* :class:`NDVIRegressor` (:mod:`workbench.models.cnn`): the NDVI regression CNN of the paper's
  Fig. 5, and :func:`chip_ndvi`, its target.
* :class:`UNet` (:mod:`workbench.models.unet`): the NDMI image-to-image model (Fig. 6).
* :class:`MaskedAutoencoderViT` and configs (:mod:`workbench.models.mae`): tiny ViT-MAE sizes
  for the FSDP/DDP tutorial; :class:`LinearProbe` (:mod:`workbench.models.probe`).

Names are resolved lazily, so importing this package does not import every model module.

Examples
--------
>>> from workbench.models import NDVIRegressor
>>> NDVIRegressor(chip_size=8).chip_size
(8, 8)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.models.cnn import NDVIRegressor, chip_ndvi
    from workbench.models.mae import MAEBlock, MaskedAutoencoderViT
    from workbench.models.mae_config import (
        PRESETS,
        MAEConfig,
        count_parameters,
        get_config,
        parameter_table,
    )
    from workbench.models.probe import (
        LinearProbe,
        ProbeResult,
        extract_features,
        fit_linear_probe,
        fit_linear_probe_features,
    )
    from workbench.models.unet import UNet, ndmi

__all__ = [
    "NDVIRegressor",
    "chip_ndvi",
    "UNet",
    "ndmi",
    "MaskedAutoencoderViT",
    "MAEConfig",
    "get_config",
    "LinearProbe",
    "MAEBlock",
    "PRESETS",
    "count_parameters",
    "parameter_table",
    "ProbeResult",
    "extract_features",
    "fit_linear_probe",
    "fit_linear_probe_features",
]

_LAZY = {
    "NDVIRegressor": "workbench.models.cnn",
    "chip_ndvi": "workbench.models.cnn",
    "UNet": "workbench.models.unet",
    "ndmi": "workbench.models.unet",
    "MaskedAutoencoderViT": "workbench.models.mae",
    "MAEConfig": "workbench.models.mae_config",
    "get_config": "workbench.models.mae_config",
    "LinearProbe": "workbench.models.probe",
    "MAEBlock": "workbench.models.mae",
    "PRESETS": "workbench.models.mae_config",
    "count_parameters": "workbench.models.mae_config",
    "parameter_table": "workbench.models.mae_config",
    "ProbeResult": "workbench.models.probe",
    "extract_features": "workbench.models.probe",
    "fit_linear_probe": "workbench.models.probe",
    "fit_linear_probe_features": "workbench.models.probe",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
