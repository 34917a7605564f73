"""Where the real sample data is: the shared data folder, or the excerpt shipped with the tutorials.

The tutorials, tests and benchmarks use real data (ERA5, Sentinel-2, Landsat, ...). In a
development checkout it sits beside the repository in ``../shared/data``; set
``WORKBENCH_DATA_DIR`` to point elsewhere. On Binder or a hub, where that folder does not
exist, the tutorials fall back to a small excerpt shipped in ``notebooks/data/`` (see its
``PROVENANCE.md``), which an installed package carries as ``workbench/_tutorials/data/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import DataReadError

__all__ = ["SAMPLES", "data_dir", "sample_path"]

#: Logical sample name -> (path under the shared data folder, path under ``notebooks/data``).
SAMPLES: dict[str, tuple[str | None, str | None]] = {
    "era5_t2m": ("era5_reanalysis/era5_t2m_uk_2019-03.nc", "era5/era5_t2m_uk_2019-03-01_14d.nc"),
    "era5_grib": ("era5_reanalysis/era5-2mt-2019-03-uk.grib", None),
    "s2_geotiff": ("eolearn_s2_slovenia/geotiff", "s2_slovenia"),
    "s2_netcdf": ("eolearn_s2_slovenia/eolearn_s2_slovenia.nc", None),
    "s2_lulc": (None, "s2_slovenia/LULC.tif"),
    "olci_zarr": ("xcube_olci_northsea/cube-1-250-250.zarr", "olci/olci_northsea_excerpt.zarr"),
    "s2_cog": ("xcube_olci_northsea/S2_L2A_TCI_sample-cog.tif", None),
    "landsat7_olinda": ("stars_landsat7_olinda/L7_ETMs.tif", None),
    "landsat7_rgb": ("rasterio_landsat7_rgb/RGB.byte.tif", None),
    "nlcd": ("nlcd_puerto_rico/lc.tif", None),
}

_REPO = Path(__file__).resolve().parents[2]
#: Where the excerpt is: a checkout's notebooks/data, or the copy inside an installed package.
_EXCERPTS = (
    _REPO / "notebooks" / "data",
    Path(__file__).resolve().parents[1] / "_tutorials" / "data",
)


def data_dir() -> Path | None:
    """Return the shared sample data folder, or ``None`` if there is none here.

    Looks at ``$WORKBENCH_DATA_DIR``, then ``shared/data`` beside the repository and beside
    the current directory and its parents.
    """
    env = os.environ.get("WORKBENCH_DATA_DIR")
    if env:
        return Path(env)
    candidates = [_REPO.parent / "shared" / "data"]
    candidates += [p / "shared" / "data" for p in (Path.cwd(), *Path.cwd().parents)]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def sample_path(name: str, *, excerpt_ok: bool = True) -> Path:
    """Path of a real sample dataset.

    Parameters
    ----------
    name : str
        One of :data:`SAMPLES` (e.g. ``"era5_t2m"``, ``"s2_geotiff"``).
    excerpt_ok : bool
        Fall back to the excerpt shipped in ``notebooks/data`` when the shared data
        folder is absent (ERA5: the first 14 days instead of the whole month).

    Returns
    -------
    pathlib.Path
        A file or folder that exists.

    Raises
    ------
    KeyError
        For an unknown sample name (the message lists the known ones).
    DataReadError
        If the data is in neither place.

    Examples
    --------
    >>> sample_path("era5_t2m").name.startswith("era5_t2m_uk_2019-03")
    True
    """
    if name not in SAMPLES:
        raise KeyError(f"unknown sample {name!r}; known samples: {sorted(SAMPLES)}")
    shared, excerpt = SAMPLES[name]
    tried = []
    root = data_dir()
    if shared and root is not None:
        path = root / shared
        if path.exists():
            return path
        tried.append(str(path))
    if excerpt and (excerpt_ok or not shared):
        for folder in _EXCERPTS:
            path = folder / excerpt
            if path.exists():
                return path
            tried.append(str(path))
    raise DataReadError(
        f"sample {name!r} not found (looked in {tried or 'no location'}). Put the shared data "
        "folder beside the repository (../shared/data) or set WORKBENCH_DATA_DIR to it."
    )
