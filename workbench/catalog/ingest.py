"""Turn sources into catalog records: find the scenes, partition, then measure each piece.

Sources become scenes in :mod:`workbench.catalog.sources`. For every scene (one date of one
source) the pixels are read once; then for every geocode piece of its grid
(:func:`workbench.geo.partition.partition`):

* **pixel coverage** (percent) = share of the geocode cell the data's footprint covers
  (:meth:`Partitions.coverage`) x share of valid values among the piece's own pixels (those whose
  centre lies in the cell) across all bands (mask variables left out); a value is valid when
  finite and not the nodata value. 100 means every band has data everywhere in the cell.
* **cloud cover** and **snow cover** (percent) = cloudy (snowy) pixels among the piece's own
  pixels that are valid in every band. The flags come from the provider's mask when the scene has
  one, a sibling ``*_CLM_*`` file, else the spectral tests; NaN when nothing can tell (see
  :mod:`workbench.catalog.sources`); ``cloud_source`` says which.

Files are referenced where they are (absolute paths + pixel window; band files by band).
In-memory cubes are first written once to a content-addressed Zarr store in the catalog's
``assets/`` folder, so that :meth:`Catalog.open` can read them back and ingesting the same cube
twice gives the same ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import xarray as xr

from workbench.catalog.records import Location, PartitionRecord, record_id
from workbench.catalog.sources import IngestOptions, Scene, scenes_of
from workbench.data.scenes import SceneRef, find_scenes
from workbench.geo.crs import require_crs, spatial_dims, xy_to_lonlat
from workbench.geo.partition import partition

__all__ = ["IngestOptions", "Scene", "scenes_of", "scene_records", "expand_sources"]


def _band_names(ds: xr.Dataset, ydim: str, xdim: str) -> tuple[str, ...]:
    names: list[str] = []
    single = len(ds.data_vars) == 1
    for name, var in ds.data_vars.items():
        extra = [d for d in var.dims if d not in (ydim, xdim)]
        if len(extra) == 1 and extra[0] in ds.coords:
            labels = [str(v) for v in ds[extra[0]].values.tolist()]
            names += labels if single else [f"{name}:{lab}" for lab in labels]
        else:
            names.append(str(name))
    return tuple(names)


def _band_resolutions(ds: xr.Dataset, bands: tuple[str, ...], grid_res: float) -> tuple[float, ...]:
    """Native pixel size of each band (a band file's ``resolution`` attribute, else the grid's)."""
    out = []
    for band in bands:
        name = band.split(":", 1)[0]
        native = ds[name].attrs.get("resolution") if name in ds.data_vars else None
        out.append(float(native) if isinstance(native, int | float) else grid_res)
    return tuple(out)


def _window_footprint(x: np.ndarray, y: np.ndarray, crs: Any, n: int = 8) -> Any:
    from shapely.geometry import Polygon

    dx = (x[1] - x[0]) if len(x) > 1 else 0.0
    dy = (y[1] - y[0]) if len(y) > 1 else 0.0
    xe = np.linspace(x[0] - dx / 2, x[-1] + dx / 2, n)
    ye = np.linspace(y[0] - dy / 2, y[-1] + dy / 2, n)
    ring_x = np.concatenate([xe, np.full(n, xe[-1]), xe[::-1], np.full(n, xe[0])])
    ring_y = np.concatenate([np.full(n, ye[0]), ye, np.full(n, ye[-1]), ye[::-1]])
    lon, lat = xy_to_lonlat(ring_x, ring_y, crs) if crs is not None else (ring_x, ring_y)
    return Polygon(np.column_stack([lon, lat])).buffer(0)


def scene_records(scene: Scene, options: IngestOptions) -> list[PartitionRecord]:
    """Partition one scene and measure every piece (reads the scene's pixels once)."""
    import shapely
    from shapely.geometry import box

    data = scene.data
    ydim, xdim = (str(d) for d in spatial_dims(data))
    crs = require_crs(data, "cataloguing by geocode")
    lonlat = crs.is_geographic
    parts = partition(data, options.scheme, options.precision)
    measured = [v for n, v in data.data_vars.items() if n not in scene.masks] or list(
        data.data_vars.values()
    )
    arrays = [np.asarray(v.transpose(..., ydim, xdim).values) for v in measured]
    stacked = [a.reshape(-1, *a.shape[-2:]) for a in arrays]
    fills = [v.attrs.get("_FillValue", v.encoding.get("_FillValue")) for v in measured]
    n_valid = np.zeros(stacked[0].shape[-2:], dtype=np.int64)
    all_valid = np.ones(stacked[0].shape[-2:], dtype=bool)
    n_bands = 0
    for arr, fill in zip(stacked, fills, strict=True):
        ok = np.isfinite(arr) if arr.dtype.kind in "fc" else np.ones(arr.shape, bool)
        if fill is not None and not (isinstance(fill, float) and np.isnan(fill)):
            ok &= arr != fill
        n_valid += ok.sum(axis=0)
        all_valid &= ok.all(axis=0)
        n_bands += arr.shape[0]
    cloud, snow, cloud_source = scene.flags()
    bands = _band_names(data[list(scene.variables)], ydim, xdim)
    xs, ys = data[xdim].values, data[ydim].values
    grid_res = float(abs(xs[1] - xs[0])) if len(xs) > 1 else float("nan")
    resolutions = _band_resolutions(data, bands, grid_res)
    properties = json.dumps(scene.properties, sort_keys=True, separators=(",", ":"), default=str)
    records = []
    for code in parts.codes:
        sl = parts.slices(code)
        rows, cols = sl[ydim], sl[xdim]
        inside = parts.mask(code).values
        own = int(inside.sum())
        valid_share = n_valid[rows, cols][inside].sum() / (own * n_bands) if own else 0.0
        pixel_coverage = min(100.0, 100.0 * parts.coverage(code) * float(valid_share))
        good = all_valid[rows, cols] & inside
        cloud_cover, snow_cover = (
            float("nan")
            if flag is None or not good.any()
            else 100.0 * float((flag[rows, cols] & good).sum()) / float(good.sum())
            for flag in (cloud, snow)
        )
        isel = {ydim: (rows.start, rows.stop), xdim: (cols.start, cols.stop)}
        if scene.time_index is not None:
            tdim, t = scene.time_index
            isel[tdim] = (t, t + 1)
        variables = scene.variables if scene.format not in ("geotiff", "bands") else ()
        loc = Location(scene.href, scene.format, isel, variables, scene.assets, scene.open_options)
        cell = box(*parts.bounds(code))
        foot = _window_footprint(xs[cols], ys[rows], None if lonlat else crs).intersection(cell)
        geom = foot if not foot.is_empty else cell
        records.append(
            PartitionRecord(
                id=record_id(scene.dataset, code, scene.when, loc),
                geocode=code,
                scheme=options.scheme,
                datetime=scene.when,
                dataset=scene.dataset,
                bands=bands,
                bbox=tuple(float(v) for v in geom.bounds),  # type: ignore[arg-type]
                crs=crs.to_string(),
                resolution=grid_res,
                width=cols.stop - cols.start,
                height=rows.stop - rows.start,
                cloud_cover=cloud_cover,
                pixel_coverage=pixel_coverage,
                cloud_source=cloud_source,
                location=loc,
                geometry=shapely.to_wkb(geom),
                scene=scene.scene_id,
                band_resolutions=resolutions,
                snow_cover=snow_cover,
                properties=properties,
            )
        )
    return records


def expand_sources(sources: Any) -> list[SceneRef]:
    """Find the sources' scenes (band files of one scene together; see ``find_scenes``).

    Also takes a :class:`~workbench.chips.Collection` (its scenes, where their files are).
    """
    scenes = getattr(sources, "scenes", None)
    if isinstance(scenes, list) and all(hasattr(s, "ref") for s in scenes):
        refs = []
        for s in scenes:
            ref = s.ref
            if ref.data is not None or "crs" in s.options:  # in memory, or warped: the data
                ref = SceneRef(s.id, data=s.data, properties=dict(s.properties))
            else:  # files: referenced where they are, opened as the collection opened them
                ref = replace(ref, properties=dict(s.properties), options=dict(s.options))
            refs.append(ref)
        return refs
    if isinstance(sources, Sequence) and not isinstance(sources, str | bytes) and not sources:
        return []
    return find_scenes(sources)
