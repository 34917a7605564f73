"""Data access: open datacubes (GPU or CPU route), clip to an AOI, synthetic cubes."""

from __future__ import annotations

from workbench.data.synthetic import era5_like, s2_like, write_zarr

__all__ = ["era5_like", "s2_like", "write_zarr"]
