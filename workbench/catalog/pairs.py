"""Cloudy/cloud-free training pairs from catalog records, as the paper builds them.

*Small is Beautiful* (Sec. II-D.3): "querying for satellite images with zero cloud coverage and
pairing them with the most temporally proximate image with cloud coverage". :func:`cloud_pairs`
does that on catalog records, per geocode and dataset: every record with ``cloud_cover`` at
most ``clear_max`` gets the record of the same geocode whose acquisition is closest in time
among those with ``cloud_cover`` above ``cloudy_min`` (ties go to the earlier one). Metadata
only: no pixels are read.

Examples
--------
>>> import pandas as pd
>>> recs = pd.DataFrame({
...     "id": ["c1", "k1", "k2", "c2"], "geocode": ["u24k"] * 4, "dataset": ["S2"] * 4,
...     "cloud_cover": [0.0, 80.0, 100.0, 0.0],
...     "datetime": pd.to_datetime(["2015-07-11", "2015-07-31", "2015-08-20", "2015-08-30"]),
... })
>>> cloud_pairs(recs)[["clear_id", "cloudy_id", "gap_days"]].values.tolist()
[['c1', 'k1', 20.0], ['c2', 'k2', 10.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import CatalogError

__all__ = ["cloud_pairs"]

_COLUMNS = ["geocode", "dataset", "clear_id", "cloudy_id", "clear_time", "cloudy_time", "gap_days"]


def _ns(times: pd.Series) -> np.ndarray[Any, Any]:
    """Nanoseconds since the epoch (UTC) of naive or time-zone-aware timestamps."""
    t = pd.to_datetime(times)
    if t.dt.tz is not None:
        t = t.dt.tz_convert(None)
    out: np.ndarray[Any, Any] = np.asarray(t.to_numpy(), dtype="datetime64[ns]").astype(np.int64)
    return out


def cloud_pairs(
    records: pd.DataFrame | Any, *, clear_max: float = 0.0, cloudy_min: float = 0.0
) -> pd.DataFrame:
    """Pair each clear record with the temporally closest cloudy record of its geocode.

    Parameters
    ----------
    records : DataFrame or Catalog
        Catalog records (``id``, ``geocode``, ``dataset``, ``datetime``, ``cloud_cover``), or
        a :class:`~workbench.catalog.Catalog` (all its records).
    clear_max : float
        Highest cloud cover (percent) of a "cloud-free" record (the paper: 0).
    cloudy_min : float
        Cloud cover (percent) a "cloudy" record must exceed.

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``geocode``, ``dataset``, ``clear_id``, ``cloudy_id``,
        ``clear_time``, ``cloudy_time``, ``gap_days``; sorted by geocode and clear time.

    Raises
    ------
    CatalogError
        If a needed column is missing, or cloud cover is unknown (NaN) for every record.
    """
    frame = records.records if hasattr(records, "records") else records
    missing = {"id", "geocode", "dataset", "datetime", "cloud_cover"} - set(frame.columns)
    if missing:
        raise CatalogError(f"cloud_pairs needs record columns {sorted(missing)}")
    known = frame.dropna(subset=["cloud_cover", "datetime"])
    if len(frame) and not len(known):
        raise CatalogError(
            "no record has a cloud cover and a date: ingest with a cloud mask (cloud_mask='auto' "
            "or a mask variable) to pair cloudy and clear images"
        )
    rows = []
    for (code, dataset), group in known.groupby(["geocode", "dataset"], sort=True):
        clear = group[group["cloud_cover"] <= clear_max].sort_values("datetime")
        cloudy = group[group["cloud_cover"] > cloudy_min].sort_values(["datetime", "id"])
        if not len(clear) or not len(cloudy):
            continue
        times = _ns(cloudy["datetime"])
        for t, (_, c) in zip(_ns(clear["datetime"]), clear.iterrows(), strict=True):
            k = int(np.argmin(np.abs(times - t)))  # first minimum: the earlier on ties
            other = cloudy.iloc[k]
            rows.append(
                [code, dataset, c["id"], other["id"], c["datetime"], other["datetime"],
                 abs(other["datetime"] - c["datetime"]).total_seconds() / 86400]
            )  # fmt: skip
    return pd.DataFrame(rows, columns=_COLUMNS)
