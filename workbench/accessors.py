"""The ``.wb`` accessor on :class:`xarray.Dataset` and :class:`xarray.DataArray`.

A thin façade: every method forwards the wrapped object to a documented public
function and stores nothing but the object itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import xarray as xr

if TYPE_CHECKING:
    import pyproj

    from workbench._typing import AOILike, Bounds
    from workbench.chips import ChipSet
    from workbench.geo.partition import Partitions
    from workbench.widgets.aoi import AOIMap

__all__ = ["WorkbenchAccessor"]

T = TypeVar("T", xr.Dataset, xr.DataArray)


class WorkbenchAccessor(Generic[T]):
    """Geospatial deep-learning helpers, available as ``obj.wb``.

    Examples
    --------
    >>> import workbench
    >>> from workbench.data.synthetic import era5_like
    >>> ds = era5_like(time=4, lat=16, lon=32)
    >>> len(ds.wb.chips({"lat": 8, "lon": 8}))  # time is kept whole, as in xbatcher
    8
    """

    def __init__(self, obj: T) -> None:
        self._obj: T = obj

    # -- georeferencing -------------------------------------------------------------
    @property
    def crs(self) -> pyproj.CRS | None:
        """The CRS, wherever it is (see :func:`workbench.geo.crs.find_crs`).

        A grid mapping (``spatial_ref``, CF ``grid_mapping``), a ``crs`` attribute of the object
        or of a variable (EPSG, WKT, ``+init=epsg:N``), or lon/lat coordinates.
        """
        from workbench.geo.crs import get_crs

        return get_crs(self._obj)

    @property
    def bounds(self) -> Bounds:
        """``(west, south, east, north)`` of the pixel edges, in lon/lat degrees."""
        from workbench.geo.crs import lonlat_bounds

        return lonlat_bounds(self._obj)

    @property
    def engine(self) -> str | None:
        """The read route :func:`workbench.open_datacube` took (``"kvikio"``, ``"zarr"``...)."""
        engine = self._obj.attrs.get("workbench_engine")
        return None if engine is None else str(engine)

    # -- subsetting -----------------------------------------------------------------
    def clip(self, aoi: AOILike, *, crs: Any = None, **kwargs: Any) -> T:
        """Subset to an area of interest; see :func:`workbench.data.aoi.clip`."""
        from workbench.data.aoi import clip

        clipped: T = clip(self._obj, aoi, crs=crs, **kwargs)
        return clipped

    # -- chips ----------------------------------------------------------------------
    def chips(
        self,
        input_dims: Mapping[Hashable, int],
        input_overlap: Mapping[Hashable, int] | None = None,
        variables: Sequence[Hashable] | None = None,
    ) -> ChipSet:
        """Cut chips along named dims; see :class:`workbench.chips.ChipSet`."""
        from workbench.chips import ChipSet

        return ChipSet(self._obj, input_dims, input_overlap=input_overlap, variables=variables)

    # -- geocodes -------------------------------------------------------------------
    def partition(
        self, scheme: str = "geohash", precision: int = 5, **kwargs: Any
    ) -> Partitions[T]:
        """Split into per-geocode pieces, lazily; see :func:`workbench.geo.partition.partition`."""
        from workbench.geo.partition import partition

        return partition(self._obj, scheme=scheme, precision=precision, **kwargs)

    # -- composites -----------------------------------------------------------------
    def composite(
        self,
        cloud_mask: xr.DataArray | str | None = None,
        method: str = "median",
        dim: str = "time",
    ) -> xr.Dataset:
        """Cloud-free temporal composite; see :func:`workbench.composites.composite`."""
        from workbench.composites import composite

        return composite(self._obj, cloud_mask=cloud_mask, method=method, dim=dim)

    # -- notebook -------------------------------------------------------------------
    def map(self, **kwargs: Any) -> AOIMap:
        """Show this cube on an AOI map; see :class:`workbench.widgets.aoi.AOIMap`."""
        from workbench.widgets.aoi import AOIMap

        return AOIMap(self._obj, **kwargs)


class DatasetAccessor(WorkbenchAccessor[xr.Dataset]):
    """``Dataset.wb``; see :class:`WorkbenchAccessor`."""


class DataArrayAccessor(WorkbenchAccessor[xr.DataArray]):
    """``DataArray.wb``; see :class:`WorkbenchAccessor`."""


def _register() -> None:
    # Re-executing this module (doctest collection, importlib.reload) re-registers our own
    # accessor: that is not the clash xarray's warning is about, so it is silenced then only.
    targets: tuple[tuple[type, Any, type], ...] = (
        (xr.Dataset, xr.register_dataset_accessor, DatasetAccessor),
        (xr.DataArray, xr.register_dataarray_accessor, DataArrayAccessor),
    )
    for cls, register, accessor in targets:
        ours = getattr(getattr(cls, "wb", None), "__qualname__", None) == accessor.__qualname__
        with warnings.catch_warnings():
            if ours:
                warnings.simplefilter("ignore", xr.core.extensions.AccessorRegistrationWarning)
            register("wb")(accessor)


_register()
