"""Catalog queries: the sorted-range + prefix index against a full pandas scan, on 1M records.

Records are synthetic but shaped like a real catalog: geohash-6 pieces of points over Europe,
two years of dates, four datasets, a cloud cover that is often 0 or 100 and a pixel coverage
that is often 100, in the order :class:`workbench.Catalog` keeps them (sorted by geocode, then
date). For each predicate mix both paths are checked to return the same rows, then timed side
by side (median of repeats). Also timed: building the index, and writing / reading the
GeoParquet file through :class:`workbench.Catalog` (full run only).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.catalog import CatalogIndex, build_query
from workbench.catalog.query import Query
from workbench.geo import geohash

DATASETS = ["S2_L1C", "S2_L2A", "LANDSAT_8", "MODIS"]
START = pd.Timestamp("2019-01-01", tz="UTC")


def synthetic_records(n: int, seed: int = 0) -> pd.DataFrame:
    """Query columns of ``n`` records; bbox as four float columns (what a fast scan would use)."""
    rng = np.random.default_rng(seed)
    lat, lon = rng.uniform(35, 60, n), rng.uniform(-10, 30, n)
    codes = geohash.encode(lat, lon, 6)
    w, s, e, nn = (np.asarray(v) for v in geohash.bounds(codes))
    seconds = rng.integers(0, 2 * 365 * 86400, n)
    cloud = np.where(
        rng.random(n) < 0.3, 0.0, np.where(rng.random(n) < 0.2, 100.0, rng.uniform(0, 100, n))
    )
    cover = np.where(rng.random(n) < 0.6, 100.0, rng.uniform(0, 100, n))
    return pd.DataFrame({
        "geocode": codes.astype(object),
        "datetime": START + pd.to_timedelta(seconds, unit="s"),
        "dataset": np.asarray(DATASETS, dtype=object)[rng.integers(0, len(DATASETS), n)],
        "cloud_cover": cloud,
        "pixel_coverage": cover,
        "xmin": w, "ymin": s, "xmax": e, "ymax": nn,
    })  # fmt: skip


def pandas_scan(df: pd.DataFrame, q: Query) -> np.ndarray:
    """A fair full scan: vectorised pandas over every row (string prefix via ``.str``)."""
    keep = pd.Series(True, index=df.index)
    if q.has_time:
        ns = df["datetime"].astype("int64")  # microseconds here; compare in the same unit
        unit = 1000 if str(df["datetime"].dtype).startswith("datetime64[us") else 1
        if q.start_ns is not None:
            keep &= ns * unit >= q.start_ns
        if q.end_ns is not None:
            keep &= ns * unit <= q.end_ns
    if q.geocode is not None:
        keep &= (
            df["geocode"].str.startswith(q.geocode) if q.recursive else df["geocode"] == q.geocode
        )
    if q.max_cloud is not None:
        keep &= df["cloud_cover"] <= q.max_cloud
    if q.min_pixel_coverage is not None:
        keep &= df["pixel_coverage"] >= q.min_pixel_coverage
    if q.datasets is not None:
        keep &= df["dataset"].isin(q.datasets)
    if q.bbox is not None:
        w, s, e, n = q.bbox
        keep &= (df["xmin"] <= e) & (df["xmax"] >= w) & (df["ymin"] <= n) & (df["ymax"] >= s)
    return np.flatnonzero(keep.to_numpy())


def _median_s(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _mixes(df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    code = str(df["geocode"].iloc[len(df) // 2])
    return {
        "time_1_week": {"time": ("2020-03-01", "2020-03-07")},
        "time_open_end": {"time": ("2020-12-15", None)},
        "geocode_prefix_4": {"geocode": code[:4]},
        "geocode_exact_6": {"geocode": code, "recursive": False},
        "cloud_le_10_and_coverage_ge_90": {"max_cloud": 10, "min_pixel_coverage": 90},
        "bbox_0.5_deg": {"bbox": (10.0, 45.0, 10.5, 45.5)},
        "dataset_month_clear": {
            "dataset": "S2_L2A",
            "time": ("2019-07-01", "2019-07-31"),
            "max_cloud": 20,
        },
        "all_predicates": {
            "time": ("2019-06-01", "2019-09-30"),
            "geocode": code[:3],
            "max_cloud": 30,
            "min_pixel_coverage": 50,
            "dataset": ["S2_L1C", "S2_L2A"],
            "bbox": tuple(float(v) for v in geohash.bounds(code[:2])),
        },
    }


def _store_roundtrip(df: pd.DataFrame) -> dict[str, float]:
    """Write and re-read the records as a GeoParquet catalog (full rows with geometry)."""
    import shapely

    from workbench.catalog import Catalog

    n = len(df)
    boxes = shapely.box(df["xmin"], df["ymin"], df["xmax"], df["ymax"])
    ids = [
        f"{d}:{g}:{i}" for i, (d, g) in enumerate(zip(df["dataset"], df["geocode"], strict=True))
    ]
    full = pd.DataFrame(
        {
            "id": ids,
            "geocode": df["geocode"],
            "scheme": "geohash",
            "datetime": df["datetime"],
            "dataset": df["dataset"],
            "bands": [["B02", "B03", "B04", "B08"]] * n,
            "bbox": list(zip(df["xmin"], df["ymin"], df["xmax"], df["ymax"], strict=True)),
            "crs": "EPSG:32633",
            "resolution": 10.0,
            "width": 64,
            "height": 64,
            "cloud_cover": df["cloud_cover"],
            "pixel_coverage": df["pixel_coverage"],
            "cloud_source": "spectral",
            "location": '{"format":"geotiff","href":"/data/x.tif","isel":{},"variables":[]}',
            "geometry": shapely.to_wkb(boxes),
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        cat = Catalog(Path(tmp) / "big.parquet")
        t0 = time.perf_counter()
        cat.add(full)
        write_s = time.perf_counter() - t0
        size = cat.path.stat().st_size
        t0 = time.perf_counter()
        again = Catalog(cat.path)
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        _ = again.index
        index_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = again.query(max_cloud=10, geocode=str(df["geocode"].iloc[0])[:4])
        query_s = time.perf_counter() - t0
    return {
        "write_s": write_s, "read_s": read_s, "index_from_frame_s": index_s,
        "query_with_dataframe_s": query_s, "query_rows": len(res), "file_mb": size / 2**20,
    }  # fmt: skip


def run(quick: bool = False) -> dict[str, Any]:
    """Build the index and compare its query latency to a full pandas scan."""
    n = 20_000 if quick else 1_000_000
    repeats = 5 if quick else 15
    t0 = time.perf_counter()
    df = synthetic_records(n)
    gen_s = time.perf_counter() - t0
    # pandas' string dtype (Arrow-backed when available), rows in the catalog's stored order
    df["geocode"] = df["geocode"].astype("str")
    df = df.sort_values(["geocode", "datetime"], kind="stable", ignore_index=True)

    box = df[["xmin", "ymin", "xmax", "ymax"]].to_numpy()
    ns = df["datetime"].astype("datetime64[ns, UTC]").astype("int64").to_numpy()

    def build() -> CatalogIndex:
        return CatalogIndex(
            df["geocode"].to_numpy(), ns, np.ones(n, bool), df["cloud_cover"].to_numpy(),
            df["pixel_coverage"].to_numpy(), df["dataset"].to_numpy(), box,
        )  # fmt: skip

    t0 = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - t0

    results: dict[str, Any] = {}
    for name, predicates in _mixes(df).items():
        q = build_query(**predicates, known_datasets=DATASETS, schemes=["geohash"])
        got, expected = index.search(q), pandas_scan(df, q)
        if not np.array_equal(got, expected):
            raise AssertionError(f"{name}: index returned {len(got)} rows, scan {len(expected)}")
        t_index = _median_s(lambda q=q: index.search(q), repeats)
        t_scan = _median_s(lambda q=q: pandas_scan(df, q), repeats)
        results[name] = {
            "predicates": {k: str(v) for k, v in predicates.items()},
            "matches": len(got),
            "index_median_ms": 1e3 * t_index,
            "scan_median_ms": 1e3 * t_scan,
            "speedup": t_scan / t_index if t_index > 0 else float("inf"),
        }
    out: dict[str, Any] = {
        "records": n,
        "repeats": repeats,
        "generate_s": gen_s,
        "index_build_s": build_s,
        "queries": results,
        "median_speedup": statistics.median(r["speedup"] for r in results.values()),
    }
    if not quick:
        out["geoparquet_catalog"] = _store_roundtrip(df)
    return out


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
