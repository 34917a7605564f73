"""Data access: open datacubes (GPU or CPU route), clip to an AOI, synthetic cubes."""

from __future__ import annotations

from workbench.data.aoi import clip
from workbench.data.open import ENGINES, choose_engine, detect_format, open_datacube
from workbench.data.synthetic import era5_like, s2_like, write_zarr

__all__ = [
    "open_datacube",
    "choose_engine",
    "detect_format",
    "ENGINES",
    "clip",
    "era5_like",
    "s2_like",
    "write_zarr",
]
