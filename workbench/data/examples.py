"""Band-per-file products built from the real sample pixels, for tests, tutorials and benchmarks.

No band-per-file product ships with the sample data, so these builders write one from the real
eo-learn Sentinel-2 L1C series (Slovenia, 2015; see ``eolearn_s2_slovenia/PROVENANCE.md``) and
the Landsat 7 ETM+ subset of Olinda: the pixels are real, the layouts are the providers'.

* :func:`sentinel2_scenes`: one folder per date (or per patch and date) with one GeoTIFF per
  band in Sentinel-2 naming (``T33TVL_20150711T100008_B04.tif``), the 20 m and 60 m bands on
  their true coarser grids (means of 2 x 2 and 6 x 6 pixels, edge blocks partial, so their
  extents overhang the 10 m bands'), and, with ``provider_masks=True``, an ``SCL`` scene
  classification and an ``MSK_CLDPRB`` cloud probability made from the s2cloudless mask and
  probability of the same date (Sentinel-2 L2A naming; the reflectances stay L1C). ``crs=``
  reprojects every band (nearest neighbour, same pixel sizes) into another CRS, e.g. the
  neighbouring UTM zone; ``patches=(rows, cols)`` cuts the area into patches with a
  ``labels.json`` of the land-cover classes each one holds (from the eo-learn LULC map).
* :func:`sentinel2_netcdf_bands`: one NetCDF per band, unnamed variables whose only CRS is a
  per-variable ``crs = "+init=epsg:32633"`` attribute, 10 m and 20 m grids of different extents.
* :func:`landsat_scene`: Landsat Collection 2 Level-2 names (``LE07_L2SP_..._SR_B3.TIF``) for the
  six Olinda bands, and a ``QA_PIXEL`` band whose cloud bits mark a rectangle (the subset has no
  QA band; the acquisition date in the names is a placeholder: the source does not record it).
* :func:`stac_item`: a STAC Item (dict) whose assets are the band files of a scene folder.

The tile id of the sample area is 33TVL (MGRS); reprojected copies keep it with the new zone
number (``T34TVL``), which is a label only.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench._optional import lazy_import
from workbench.data.samples import sample_path

__all__ = [
    "S2_BANDS",
    "S2_RESOLUTION",
    "LULC_NAMES",
    "sentinel2_scenes",
    "sentinel2_netcdf_bands",
    "landsat_scene",
    "stac_item",
]

#: The 13 Sentinel-2 bands, in the order of the sample GeoTIFFs.
S2_BANDS = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)
#: Native pixel size of each band, in metres (as a factor of the 10 m bands).
S2_RESOLUTION = (
    {b: 10 for b in ("B02", "B03", "B04", "B08")}
    | {b: 20 for b in ("B05", "B06", "B07", "B8A", "B11", "B12")}
    | {b: 60 for b in ("B01", "B09", "B10")}
)
#: eo-learn LULC classes.
LULC_NAMES = {
    1: "Cultivated land", 2: "Forest", 3: "Grassland", 4: "Shrubland", 8: "Artificial surface",
}  # fmt: skip
_TILE = "TVL"


def _source_dates(dates: Sequence[int] | None) -> list[Path]:
    files = sorted(sample_path("s2_geotiff").glob("S2_L1C_*.tif"))
    return files if dates is None else [files[i] for i in dates]


def _block_mean(arr: np.ndarray, factor: int, nodata: float = 0) -> np.ndarray:
    """Mean of ``factor x factor`` blocks of the last two axes, edge blocks partial."""
    if factor == 1:
        return arr
    *lead, ny, nx = arr.shape
    py, px = -ny % factor, -nx % factor
    data = np.pad(arr.astype(np.float64), [(0, 0)] * len(lead) + [(0, py), (0, px)],
                  constant_values=np.nan)  # fmt: skip
    data[data == nodata] = np.nan
    blocks = data.reshape(*lead, (ny + py) // factor, factor, (nx + px) // factor, factor)
    blocks = np.moveaxis(blocks, -3, -2).reshape(*blocks.shape[:-3], blocks.shape[-2], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nodata blocks: nodata
        out = np.nanmean(blocks, axis=-1)
    return np.where(np.isnan(out), nodata, np.round(out))


def _write_tif(path: Path, data: np.ndarray, transform: Any, crs: Any, dtype: str,
               nodata: float | None, description: str, tags: dict[str, str]) -> None:  # fmt: skip
    rasterio = lazy_import("rasterio", purpose="writing the example band files")
    profile = {
        "driver": "GTiff", "width": data.shape[-1], "height": data.shape[-2], "count": 1,
        "dtype": dtype, "crs": crs, "transform": transform, "nodata": nodata,
        "compress": "deflate",
    }  # fmt: skip
    if data.shape[-1] >= 64 and data.shape[-2] >= 64:
        profile.update(tiled=True, blockxsize=64, blockysize=64)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(dtype), 1)
        dst.set_band_description(1, description)
        dst.update_tags(**tags)


def _reproject(data: np.ndarray, transform: Any, src_crs: Any, dst_crs: Any,
               nodata: float) -> tuple[np.ndarray, Any]:  # fmt: skip
    warp = lazy_import("rasterio.warp", purpose="reprojecting the example band files")
    ny, nx = data.shape
    dst_transform, width, height = warp.calculate_default_transform(
        src_crs, dst_crs, nx, ny, *_bounds(transform, nx, ny), resolution=abs(transform.a)
    )
    out = np.full((height, width), nodata, dtype=data.dtype)
    warp.reproject(
        data, out, src_transform=transform, src_crs=src_crs, dst_transform=dst_transform,
        dst_crs=dst_crs, src_nodata=nodata, dst_nodata=nodata,
        resampling=warp.Resampling.nearest,
    )  # fmt: skip
    return out, dst_transform


def _bounds(transform: Any, nx: int, ny: int) -> tuple[float, float, float, float]:
    west, north = transform.c, transform.f
    east, south = west + transform.a * nx, north + transform.e * ny
    return west, south, east, north


def _labels(lulc: np.ndarray, min_share: float = 0.05) -> list[str]:
    values, counts = np.unique(lulc[lulc > 0], return_counts=True)
    total = max(int(counts.sum()), 1)
    return [LULC_NAMES[int(v)] for v, c in zip(values, counts, strict=True)
            if int(v) in LULC_NAMES and c / total >= min_share]  # fmt: skip


def sentinel2_scenes(
    dest: str | Path,
    *,
    dates: Sequence[int] | None = None,
    bands: Sequence[str] = S2_BANDS,
    crs: Any = None,
    patches: tuple[int, int] | None = None,
    provider_masks: bool = False,
    level: str = "L1C",
) -> list[Path]:
    """Write Sentinel-2 scenes as folders of single-band GeoTIFFs; see the module docs.

    Parameters
    ----------
    dest : path
        Folder to write into (created).
    dates : sequence of int, optional
        Which of the 5 sample dates (default all).
    bands : sequence of str
        Bands to write.
    crs : optional
        Reproject into this CRS (e.g. ``"EPSG:32634"``).
    patches : (int, int), optional
        Cut each date into ``rows x cols`` patches, each its own scene folder with a
        ``labels.json`` (BigEarthNet-like).
    provider_masks : bool
        Also write ``SCL`` and ``MSK_CLDPRB`` (20 m) from the s2cloudless mask.
    level : {"L1C", "L2A"}
        File naming: ``T33TVL_<stamp>_B04.tif`` (L1C) or ``T33TVL_<stamp>_B04_10m.tif`` (L2A).

    Returns
    -------
    list of Path
        The scene folders, in date (then patch) order.
    """
    rasterio = lazy_import("rasterio", purpose="writing the example band files")
    from rasterio.transform import Affine

    dest = Path(dest)
    out: list[Path] = []
    lulc_path = sample_path("s2_lulc")
    with rasterio.open(lulc_path) as src:
        lulc = src.read(1)
    for tif in _source_dates(dates):
        with rasterio.open(tif) as src:
            pixels = src.read()
            transform, src_crs = src.transform, src.crs
            when = pd.Timestamp(src.tags()["DATETIME"])
        mask_tif = tif.with_name(tif.name.replace("S2_L1C_", "S2_CLM_"))
        with rasterio.open(mask_tif) as src:
            clm, clp = src.read(1), src.read(2)
        stamp = when.strftime("%Y%m%dT%H%M%S")
        zone = 33 if crs is None else int(str(lazy_import("pyproj").CRS(crs).utm_zone)[:-1])
        prefix = f"T{zone}{_TILE}_{stamp}"
        rows, cols = patches or (1, 1)
        ny, nx = pixels.shape[1:]
        # patch edges on a multiple of 6 pixels: every band's grid divides them evenly
        ys = [min(ny, round(ny * i / rows / 6) * 6) for i in range(rows + 1)]
        xs = [min(nx, round(nx * j / cols / 6) * 6) for j in range(cols + 1)]
        ys[-1], xs[-1] = ny, nx
        for i in range(rows):
            for j in range(cols):
                win = (slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1]))
                name = prefix if patches is None else f"S2A_MSI{level}_{stamp}_{i}_{j}"
                folder = dest / name
                folder.mkdir(parents=True, exist_ok=True)
                sub = transform * Affine.translation(win[1].start, win[0].start)
                layers: dict[str, tuple[np.ndarray, str, float]] = {
                    b: (pixels[S2_BANDS.index(b)][win], "uint16", 0) for b in bands
                }
                if provider_masks:
                    scl = np.where(clm[win] == 1, 9, 4).astype("uint8")
                    layers["SCL"] = (scl, "uint8", 0)
                    layers["MSK_CLDPRB"] = (clp[win], "uint8", 255)
                for band, (data, dtype, nodata) in layers.items():
                    factor = S2_RESOLUTION.get(band, 20) // 10
                    grid = (
                        _block_mean(data, factor, nodata)
                        if band not in ("SCL",)
                        else (data[::factor, ::factor])
                    )
                    gt = sub * Affine.scale(factor, factor)
                    tgt_crs = src_crs
                    if crs is not None:
                        grid, gt = _reproject(grid.astype(dtype), gt, src_crs, crs, nodata)
                        tgt_crs = crs
                    res = (
                        f"_{factor * 10}m"
                        if level == "L2A" or band in ("SCL", "MSK_CLDPRB")
                        else ""
                    )
                    fname = f"{name if patches is not None else prefix}_{band}{res}.tif"
                    tags = {"DATETIME": when.isoformat()}
                    _write_tif(folder / fname, grid, gt, tgt_crs, dtype, nodata, band, tags)
                if patches is not None:
                    labels = {"labels": _labels(lulc[win]), "patch": name,
                              "acquisition_time": when.isoformat()}  # fmt: skip
                    (folder / "labels.json").write_text(json.dumps(labels, indent=1))
                out.append(folder)
    return out


def sentinel2_netcdf_bands(
    dest: str | Path, *, date: int = 0, bands: Sequence[str] = ("B02", "B03", "B04", "B08", "B11")
) -> Path:
    """Write one NetCDF per band (``B04_band.nc``); returns the folder.

    Variables are unnamed, the CRS is only a per-variable PROJ ``crs`` attribute, the
    acquisition time is ``time_coverage_start``.
    """
    import xarray as xr

    rasterio = lazy_import("rasterio", purpose="reading the sample GeoTIFFs")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tif = _source_dates([date])[0]
    with rasterio.open(tif) as src:
        pixels, transform = src.read(), src.transform
        when = pd.Timestamp(src.tags()["DATETIME"])
        epsg = src.crs.to_epsg()
    for band in bands:
        factor = S2_RESOLUTION[band] // 10
        data = _block_mean(pixels[S2_BANDS.index(band)], factor).astype("float32")
        data[data == 0] = np.nan
        ny, nx = data.shape
        x = transform.c + transform.a * factor * (np.arange(nx) + 0.5)
        y = transform.f + transform.e * factor * (np.arange(ny) + 0.5)
        arr = xr.DataArray(data / 10000, dims=("y", "x"), coords={"y": y, "x": x},
                           attrs={"crs": f"+init=epsg:{epsg}", "units": "1"})  # fmt: skip
        ds = arr.to_dataset(name="__xarray_dataarray_variable__")
        ds.attrs["time_coverage_start"] = when.isoformat()
        ds.to_netcdf(dest / f"{band}_band.nc", engine="h5netcdf")
    return dest


def landsat_scene(dest: str | Path) -> Path:
    """Write the Olinda Landsat 7 subset as Collection 2 Level-2 band files; returns the folder."""
    rasterio = lazy_import("rasterio", purpose="writing the example band files")
    product = "LE07_L2SP_214066_20010623_20200917_02_T1"  # the date is a placeholder
    folder = Path(dest) / product
    folder.mkdir(parents=True, exist_ok=True)
    with rasterio.open(sample_path("landsat7_olinda")) as src:
        pixels, transform, crs = src.read(), src.transform, src.crs
    for k, band in enumerate(("SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7")):
        _write_tif(folder / f"{product}_{band}.TIF", pixels[k], transform, crs, "uint8", None,
                   band, {})  # fmt: skip
    ny, nx = pixels.shape[1:]
    qa = np.full((ny, nx), 21824, dtype="uint16")  # clear, low confidences (C2 QA_PIXEL)
    qa[: ny // 4, : nx // 4] = 22280  # cloud + dilated cloud, high cloud confidence
    qa[ny - ny // 8 :, nx - nx // 8 :] = 1  # fill
    _write_tif(folder / f"{product}_QA_PIXEL.TIF", qa, transform, crs, "uint16", 1, "QA_PIXEL", {})
    return folder


def stac_item(folder: str | Path, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a STAC Item (a dict) for a scene folder written by :func:`sentinel2_scenes`.

    Assets are the band files, keyed by band, with hrefs relative to the item, whose ``self``
    link is ``<folder>/<id>.json``, where it is also written.
    """
    from workbench.data.naming import parse_name

    rasterio = lazy_import("rasterio", purpose="reading the example band files")
    warp = lazy_import("rasterio.warp", purpose="reading the example band files")
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    assets: dict[str, Any] = {}
    bbox: list[float] = []
    when = None
    for path in files:
        parsed = parse_name(path)
        when = when or parsed.when
        with rasterio.open(path) as src:
            epsg = src.crs.to_epsg()
            lon_lat = warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
            shape, transform = [src.height, src.width], list(src.transform)[:6]
        bbox = list(lon_lat) if not bbox else [
            min(bbox[0], lon_lat[0]), min(bbox[1], lon_lat[1]),
            max(bbox[2], lon_lat[2]), max(bbox[3], lon_lat[3]),
        ]  # fmt: skip
        assets[str(parsed.band)] = {
            "href": f"./{path.name}", "type": "image/tiff; application=geotiff",
            "roles": ["data"], "proj:epsg": epsg, "proj:shape": shape, "proj:transform": transform,
        }  # fmt: skip
    assets["thumbnail"] = {"href": "./thumbnail.png", "type": "image/png", "roles": ["thumbnail"]}
    west, south, east, north = bbox
    self_href = (folder / f"{folder.name}.json").resolve()
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": folder.name,
        "geometry": {"type": "Polygon", "coordinates": [[[west, south], [east, south],
                     [east, north], [west, north], [west, south]]]},
        "bbox": bbox,
        "properties": {"datetime": pd.Timestamp(when).isoformat() + "Z", **(properties or {})},
        "links": [{"rel": "self", "href": str(self_href), "type": "application/json"}],
        "assets": assets,
        "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
    }  # fmt: skip
    self_href.write_text(json.dumps(item, indent=1))
    return item
