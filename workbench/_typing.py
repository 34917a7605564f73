"""Type aliases and protocols shared across workbench."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, Union

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["Bounds", "AOILike", "XarrayObj", "PathLike"]

#: ``(west, south, east, north)``; lon/lat degrees unless a CRS says otherwise.
Bounds: TypeAlias = tuple[float, float, float, float]

#: An area of interest: a bounds tuple, a GeoJSON mapping (Feature, FeatureCollection or
#: geometry), a shapely geometry, or any object with ``__geo_interface__``.
AOILike: TypeAlias = Bounds | Mapping[str, Any] | Any

#: An xarray Dataset or DataArray.
XarrayObj: TypeAlias = Union["xr.Dataset", "xr.DataArray"]

PathLike: TypeAlias = Union[str, "os.PathLike[str]"]
