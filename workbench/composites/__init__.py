"""Composites and reconciliation of satellite images.

Cloud-free temporal composites, mosaics of partial tiles (paper Fig. 3), resolution
reconciliation between bands, spectral indices.

Examples
--------
>>> import workbench
>>> from workbench.data.synthetic import s2_like
>>> out = workbench.composite(s2_like(time=3, y=8, x=8), cloud_mask="cloud_mask", method="latest")
>>> out.reflectance.dims
('band', 'y', 'x')
"""

from __future__ import annotations

from workbench.composites import indices
from workbench.composites.clouds import spectral_cloud_mask
from workbench.composites.indices import ndmi, ndvi
from workbench.composites.mosaic import mosaic
from workbench.composites.resample import coarsen, reconcile, refine, resample_to
from workbench.composites.temporal import composite

__all__ = [
    "composite",
    "mosaic",
    "spectral_cloud_mask",
    "coarsen",
    "refine",
    "resample_to",
    "reconcile",
    "indices",
    "ndvi",
    "ndmi",
]
