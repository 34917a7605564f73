"""What a raster's file name says: band, acquisition date and time, scene, nominal resolution.

Known layouts, tried in this order:

Sentinel-2 (L1C and L2A, SAFE granules and the usual COG/GeoTIFF exports)
    ``T33TWM_20150711T100006_B04.jp2``, ``T33TWM_20150711T100006_B04_10m.jp2``,
    ``T33TWM_20150711T100006_SCL_20m.tif``, ``S2A_MSIL2A_20170613T101031_0_45_B8A.tif``,
    ``MSK_CLDPRB_20m.jp2``. Band ids are normalised (``B4`` -> ``B04``); the sensing date and
    time is the first ``YYYYMMDDTHHMMSS`` of the name; the scene is the name without the band
    and resolution parts.
Landsat Collection 1/2
    ``LC08_L2SP_044034_20210508_20210518_02_T1_SR_B4.TIF``, ``..._QA_PIXEL.TIF``, ``..._B4.TIF``:
    the scene is the product id, the band the rest of the name (``SR_B4``, ``QA_PIXEL``), the
    acquisition date the first date of the id (the second is the processing date).
Anything else
    ``{band}.tif``, ``{band}_band.nc``, ``scene_2019-07-01_{band}.tif``: the band is the part of
    the names that differs between the files of one scene (:func:`differing_parts`); dates
    (``YYYY-MM-DD``, ``YYYYMMDD``, with an optional ``THHMMSS``) are taken out first.

:data:`BAND_INFO` gives the common name (STAC ``eo:bands``) and nominal resolution of the
known bands, and :func:`is_categorical` tells masks and class maps (resampled with
``nearest``) from reflectances.

Examples
--------
>>> n = parse_name("T33TWM_20150711T100006_B8A_20m.jp2")
>>> n.band, str(n.when), n.scene, n.resolution, n.convention
('B8A', '2015-07-11 10:00:06', 'T33TWM_20150711T100006', 20.0, 'sentinel-2')
>>> n = parse_name("LC08_L2SP_044034_20210508_20210518_02_T1_SR_B4.TIF")
>>> n.band, str(n.when.date()), n.convention
('SR_B4', '2021-05-08', 'landsat')
>>> differing_parts(["scene_red_band.nc", "scene_nir_band.nc"])
['red', 'nir']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "FileName",
    "parse_name",
    "date_in_name",
    "date_glob",
    "differing_parts",
    "BAND_INFO",
    "common_name",
    "is_categorical",
    "RASTER_SUFFIXES",
    "sibling_mask",
]

#: Suffixes of single raster files (lower case).
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".nc", ".nc4", ".h5", ".hdf5", ".grib", ".grb2")

_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?:[T_]?(\d{2}):?(\d{2}):?(\d{2}))?(?!\d)")
_S2_STAMP = re.compile(r"(?<!\d)(\d{8})T(\d{6})(?!\d)")
_S2_HINT = re.compile(r"(^|_)(T\d{2}[A-Z]{3}|S2[ABCD]|MSIL1C|MSIL2A|L1C|L2A)(_|$)", re.IGNORECASE)
_S2_BAND = re.compile(
    r"(?:^|_)(B(?:0?[1-9]|1[0-2]|8A)|SCL|AOT|WVP|TCI|CLD|SNW|CLDPRB|SNWPRB|QA60|"
    r"MSK_CLDPRB|MSK_SNWPRB|MSK_CLASSI)(?:_(10|20|60)m)?(?=_|$)",
    re.IGNORECASE,
)
_LANDSAT = re.compile(
    r"^(L[COTEM]0[1-9]_L[12][A-Z]{2}_\d{6}_(\d{8})_\d{8}_\d{2}_(?:T1|T2|RT))(?:_(.+))?$",
    re.IGNORECASE,
)
_SEP = re.compile(r"[_\-. ]+")
_PRODUCT = re.compile(r"_(L1C|L2A|L1TP|L2SP|SR|TOA|BOA)_", re.IGNORECASE)
_BAND_WORD = {"band", "bands", "bnd"}

#: Known bands: ``name -> (common name, nominal resolution in metres)`` per convention.
BAND_INFO: dict[str, dict[str, tuple[str | None, float | None]]] = {
    "sentinel-2": {
        "B01": ("coastal", 60.0),
        "B02": ("blue", 10.0),
        "B03": ("green", 10.0),
        "B04": ("red", 10.0),
        "B05": ("rededge071", 20.0),
        "B06": ("rededge075", 20.0),
        "B07": ("rededge078", 20.0),
        "B08": ("nir", 10.0),
        "B8A": ("nir08", 20.0),
        "B09": ("nir09", 60.0),
        "B10": ("cirrus", 60.0),
        "B11": ("swir16", 20.0),
        "B12": ("swir22", 20.0),
        "SCL": (None, 20.0),
        "AOT": (None, 10.0),
        "WVP": (None, 10.0),
    },
    # Landsat 8/9 OLI-TIRS (LC08, LC09, LO08); 4/5/7 TM/ETM+ below
    "landsat-oli": {
        "B1": ("coastal", 30.0),
        "B2": ("blue", 30.0),
        "B3": ("green", 30.0),
        "B4": ("red", 30.0),
        "B5": ("nir08", 30.0),
        "B6": ("swir16", 30.0),
        "B7": ("swir22", 30.0),
        "B8": ("pan", 15.0),
        "B9": ("cirrus", 30.0),
        "B10": ("lwir11", 100.0),
        "B11": ("lwir12", 100.0),
    },
    "landsat-tm": {
        "B1": ("blue", 30.0),
        "B2": ("green", 30.0),
        "B3": ("red", 30.0),
        "B4": ("nir08", 30.0),
        "B5": ("swir16", 30.0),
        "B6": ("lwir", 60.0),
        "B7": ("swir22", 30.0),
        "B8": ("pan", 15.0),
    },
}

_CATEGORICAL = re.compile(
    r"^(SCL|QA\w*|\w*_QA\w*|BQA|CLM|CLASSI\w*|MSK_\w+|cloud_?mask|\w*mask\w*|\w*label\w*|"
    r"LULC|\w*class\w*|\w*flags?)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FileName:
    """What :func:`parse_name` read from one file name."""

    path: Path
    band: str | None
    when: pd.Timestamp | None
    scene: str
    resolution: float | None
    convention: str  # "sentinel-2", "landsat" or ""
    sensor: str | None = None  # key of BAND_INFO for common names

    @property
    def has_time(self) -> bool:
        """Whether the name gave a time of day, not only a date."""
        return self.when is not None and self.when != self.when.normalize()


def _stamp(
    y: str, m: str, d: str, hh: Any = None, mm: Any = None, ss: Any = None
) -> pd.Timestamp | None:
    try:
        stamp = pd.Timestamp(f"{y}-{m}-{d}T{hh or '00'}:{mm or '00'}:{ss or '00'}")
    except ValueError:
        return None
    return None if stamp is pd.NaT else stamp


def date_glob(name: str) -> str:
    """Return the name with its first date as ``*``: the pattern of the product's other dates.

    Examples
    --------
    >>> date_glob("S2_L1C_2015-07-11.tif")
    'S2_L1C_*.tif'
    """
    return _DATE.sub("*", name, count=1)


def date_in_name(name: str) -> pd.Timestamp | None:
    """Return the first valid ``YYYY-MM-DD`` / ``YYYYMMDD`` (optionally ``THHMMSS``) of a name.

    Examples
    --------
    >>> date_in_name("S2_L1C_20150711T100008.tif"), date_in_name("B04.tif")
    (Timestamp('2015-07-11 10:00:08'), None)
    """
    for match in _DATE.finditer(name):
        stamp = _stamp(*match.groups())
        if stamp is not None:
            return stamp
    return None


def _normal_s2_band(token: str) -> str:
    upper = token.upper()
    if upper.startswith("MSK_"):
        return upper
    if upper in ("CLDPRB", "SNWPRB"):
        return f"MSK_{upper}"
    if re.fullmatch(r"B0?[1-9]", upper):
        return f"B{int(upper[1:]):02d}"
    return upper


def _landsat(path: Path, stem: str) -> FileName | None:
    match = _LANDSAT.match(stem)
    if match is None:
        return None
    scene, date, rest = match[1], match[2], match[3]
    when = _stamp(date[:4], date[4:6], date[6:8])
    sensor = (
        "landsat-oli" if scene[:4].upper() in ("LC08", "LC09", "LO08", "LO09") else "landsat-tm"
    )
    band = rest.upper() if rest else None
    return FileName(path, band, when, scene, None, "landsat", sensor)


def _sentinel2(path: Path, stem: str) -> FileName | None:
    if not _S2_HINT.search(stem) and not stem.upper().startswith("MSK_"):
        return None
    matches = list(_S2_BAND.finditer(stem))
    if not matches:
        return None
    match = matches[-1]  # the band is the last band-like token (tile ids come first)
    band = _normal_s2_band(match[1])
    resolution = float(match[2]) if match[2] else None
    scene = (stem[: match.start()] + stem[match.end() :]).strip("_")
    stamp = _S2_STAMP.search(stem)
    if stamp is not None:
        day, clock = stamp[1], stamp[2]
        when = _stamp(day[:4], day[4:6], day[6:8], clock[:2], clock[2:4], clock[4:])
    else:
        when = date_in_name(stem)
    return FileName(path, band, when, scene, resolution, "sentinel-2", "sentinel-2")


def parse_name(path: str | Path) -> FileName:
    """Read band, date/time, scene and resolution from a file name (see the module docs).

    Files of no known convention get ``band=None`` (see :func:`differing_parts`), the first
    date of the name, and the name without its date as the scene.

    Examples
    --------
    >>> parse_name("2019-07-01_red_band.nc").when
    Timestamp('2019-07-01 00:00:00')
    >>> parse_name("MSK_CLDPRB_20m.jp2").band
    'MSK_CLDPRB'
    """
    path = Path(path)
    stem = _stem(path)
    found = _landsat(path, stem) or _sentinel2(path, stem)
    if found is not None:
        return found
    when = date_in_name(stem)
    scene = _SEP.sub("_", _DATE.sub("", stem)).strip("_")
    return FileName(path, None, when, scene, None, "", None)


def sibling_mask(path: Path) -> Path | None:
    """Find the cloud-mask GeoTIFF beside ``path``, if any.

    Tried in order: the product token replaced by ``CLM`` (``S2_L1C_<date>.tif`` ->
    ``S2_CLM_<date>.tif``), then ``<stem>_CLM<suffix>``.

    Examples
    --------
    >>> sibling_mask(Path("/nowhere/S2_L1C_2015-07-11.tif")) is None
    True
    """
    candidates = []
    if _PRODUCT.search(path.name):
        candidates.append(path.with_name(_PRODUCT.sub("_CLM_", path.name, count=1)))
    candidates.append(path.with_name(f"{path.stem}_CLM{path.suffix}"))
    return next((c for c in candidates if c.is_file() and c != path), None)


def _stem(path: Path) -> str:
    """Return the file name without its raster suffixes (``b.nc.gz`` -> ``b``)."""
    stem = path.name
    for suffix in reversed(path.suffixes):
        if suffix.lower() not in RASTER_SUFFIXES and suffix.lower() not in (".gz", ".zip"):
            break
        stem = stem[: -len(suffix)]
    return stem


def _tokens(name: str) -> list[str]:
    return [t for t in _SEP.split(_DATE.sub("", _stem(Path(name)))) if t]


def differing_parts(names: Sequence[str | Path]) -> list[str]:
    """Per file, the tokens of its name that the other names do not share (dates left out).

    Tokens are split at ``_ - . space``; the tokens common to the start and to the end of
    all names are dropped, and so is a ``band`` token. One file, or names that differ only
    in their dates, give its whole stem without the date (or ``""``).

    Examples
    --------
    >>> differing_parts(["B04.tif", "B08.tif"])
    ['B04', 'B08']
    >>> differing_parts(["x_2019-01-01_red.tif", "x_2019-01-01_nir.tif", "x_2019-02-01_red.tif"])
    ['red', 'nir', 'red']
    """
    tokens = [_tokens(str(Path(n).name)) for n in names]
    if len(tokens) < 2:
        return ["_".join(t for t in ts if t.lower() not in _BAND_WORD) for ts in tokens]
    shortest = min(len(t) for t in tokens)
    head = 0
    while head < shortest and len({t[head] for t in tokens}) == 1:
        head += 1
    tail = 0
    while tail < shortest - head and len({t[len(t) - 1 - tail] for t in tokens}) == 1:
        tail += 1
    out = []
    for ts in tokens:
        middle = [t for t in ts[head : len(ts) - tail] if t.lower() not in _BAND_WORD]
        out.append("_".join(middle))
    return out


def common_name(band: str, sensor: str | None) -> str | None:
    """STAC common name of a known band (``"red"``...), or None.

    Examples
    --------
    >>> common_name("B8A", "sentinel-2"), common_name("SR_B5", "landsat-oli")
    ('nir08', 'nir08')
    """
    if sensor is None or sensor not in BAND_INFO:
        return None
    key = band.upper()
    for prefix in ("SR_", "ST_", "TOA_"):
        key = key.removeprefix(prefix)
    entry = BAND_INFO[sensor].get(key)
    return None if entry is None else entry[0]


def is_categorical(name: str, attrs: dict[Any, Any] | None = None) -> bool:
    """Whether a band holds classes or bit flags (masks, QA, labels): resampled with ``nearest``.

    Examples
    --------
    >>> [is_categorical(n) for n in ("SCL", "QA_PIXEL", "B04", "cloud_mask", "LULC", "red")]
    [True, True, False, True, True, False]
    """
    attrs = attrs or {}
    if "flag_values" in attrs or "flag_masks" in attrs or "flag_meanings" in attrs:
        return True
    return bool(_CATEGORICAL.match(str(name)))
