from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.catalog import CatalogIndex, build_query, scan
from workbench.catalog.records import records_frame
from workbench.errors import QueryError
from workbench.geo import geohash

# -- the real catalog ----------------------------------------------------------------------


def test_clear_chips_by_cloud_and_time(s2_catalog):
    clear = s2_catalog.query(max_cloud=10)
    assert set(clear.datetime.dt.strftime("%Y-%m-%d")) == {"2015-07-11", "2015-08-30", "2015-09-09"}
    aug = s2_catalog.query(time=("2015-08-01", "2015-08-31"), max_cloud=10)
    assert set(aug.datetime.dt.strftime("%Y-%m-%d")) == {"2015-08-30"}
    # a date-only end includes that whole day; either bound may be open
    assert len(s2_catalog.query(time=(None, "2015-07-11"))) == 6
    assert len(s2_catalog.query(time=("2015-09-09T10:00:17", None))) == 6
    assert len(s2_catalog.query(time=(dt.datetime(2015, 9, 9, 10, 0, 18), None))) == 0
    tz = pd.Timestamp("2015-09-09 12:00:17", tz="Europe/Ljubljana")  # = 10:00:17 UTC
    assert len(s2_catalog.query(time=(tz, tz))) == 6


def test_geocode_prefix_recursive_and_exact(s2_catalog):
    df = s2_catalog.records
    code = df.geocode.iloc[0]
    exact = s2_catalog.query(geocode=code, recursive=False)
    assert set(exact.geocode) == {code}
    assert len(exact) == 5
    parent = code[:5]
    rec = s2_catalog.query(geocode=parent.upper())
    assert set(rec.geocode) == set(df.geocode[df.geocode.str.startswith(parent)])
    assert s2_catalog.query(geocode=parent, recursive=False).empty
    assert len(s2_catalog.query(geocode="u")) == len(df)
    assert s2_catalog.query(geocode="v").empty


def test_bbox_coverage_and_dataset(s2_catalog):
    df = s2_catalog.records
    code = "u24kgq"
    w, s, e, n = geohash.bounds(code)
    inner = (w + (e - w) * 0.4, s + (n - s) * 0.4, w + (e - w) * 0.6, s + (n - s) * 0.6)
    hit = s2_catalog.query(bbox=inner)
    assert set(hit.geocode) == {code}
    assert len(s2_catalog.query(bbox=(14.0, 45.0, 15.0, 46.0))) == len(df)
    assert s2_catalog.query(bbox=(0, 0, 1, 1)).empty
    big = s2_catalog.query(min_pixel_coverage=50)
    assert (big.pixel_coverage >= 50).all()
    assert set(big.geocode) == set(df.geocode[df.pixel_coverage >= 50])
    assert len(s2_catalog.query(dataset="S2_L1C")) == len(df)
    assert len(s2_catalog.query(dataset=["S2_L1C"], max_cloud=0, min_pixel_coverage=60)) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time": ("2015-09-01", "2015-08-01")}, "is after end"),
        ({"time": ("yesterday", None)}, "not a date"),
        ({"time": "2015-08-01"}, "pair"),
        ({"time": ("2015-08-01",)}, "pair"),
        ({"max_cloud": 150}, r"percentage in \[0, 100\]"),
        ({"max_cloud": -1}, "percentage"),
        ({"max_cloud": "low"}, "percentage"),
        ({"min_pixel_coverage": 101}, "percentage"),
        ({"dataset": "MODIS"}, r"unknown dataset.*\['S2_L1C'\]"),
        ({"geocode": "u2a"}, r"malformed geocode 'u2a'.*\['a'\]"),
        ({"geocode": ""}, "non-empty"),
        ({"geocode": 42}, "non-empty string"),
        ({"bbox": (14, 46, 15, 45)}, "south 46.0 is north of north 45.0"),
        ({"bbox": (14, 45, 15)}, "4 numbers"),
        ({"bbox": (200, 45, 210, 46)}, r"west must be within \[-180, 180\]"),
        ({"recursive": "yes"}, "True or False"),
    ],
)
def test_bad_predicates_raise_query_error(s2_catalog, kwargs, message):
    with pytest.raises(QueryError, match=message):
        s2_catalog.query(**kwargs)


def test_query_error_is_a_value_error(s2_catalog):
    with pytest.raises(ValueError):  # noqa: PT011
        s2_catalog.query(max_cloud=1000)


# -- open -----------------------------------------------------------------------------------


def test_open_stacks_one_geocode_and_lists_several(s2_catalog, s2_tifs):
    import workbench

    res = s2_catalog.query(geocode="u24kgq", recursive=False, max_cloud=0)
    ds = s2_catalog.open(res)
    assert ds.sizes["time"] == 3
    assert list(ds.id.values) == res.id.tolist()
    assert list(ds.band.values[:2]) == ["B01", "B02"]
    assert ds.rio.crs.to_epsg() == 32633
    src = workbench.open_datacube(s2_tifs[3])  # 2015-08-30
    window = src.band_data.isel(
        {k: slice(*v) for k, v in __import__("json").loads(res.location[1])["isel"].items()}
    )
    np.testing.assert_array_equal(ds.band_data.isel(time=1).values, window.values)
    assert str(ds.time.values[1])[:10] == "2015-08-30"
    several = s2_catalog.open(s2_catalog.query(max_cloud=0, time=("2015-08-30", "2015-08-30")))
    assert isinstance(several, list)
    assert len(several) == 6
    assert len({p.geocode.item() for p in several}) == 6
    one = s2_catalog.open(res.id.iloc[0])
    assert one.sizes["time"] == 1
    listed = s2_catalog.open(res, stack=False)
    assert isinstance(listed, list)
    assert len(listed) == 3
    with pytest.raises(Exception, match="different grids"):
        s2_catalog.open(s2_catalog.query(max_cloud=0), stack=True)
    with pytest.raises(Exception, match="unknown record ids"):
        s2_catalog.open(["nope"])


def test_index_and_scan_methods_agree(s2_catalog):
    for kwargs in (
        {},
        {"max_cloud": 0},
        {"geocode": "u24kg"},
        {"bbox": (14.55, 45.86, 14.555, 45.87)},
    ):
        a = s2_catalog.query(**kwargs)
        b = s2_catalog.query(**kwargs, method="scan")
        pd.testing.assert_frame_equal(a, b)


# -- property test: indexed search == brute-force scan ---------------------------------------

_CHARS = "bcu0"
_TIMES = [None, *pd.date_range("2020-01-01", periods=6, freq="7D", tz="UTC")]


_LEVELS = [0.0, 10.0, 50.0, 100.0]


@st.composite
def _catalogs(draw: st.DrawFn) -> pd.DataFrame:
    """Random catalogs: hypothesis draws the size and a seed, numpy the rows (fast); values
    come partly from small sets so that ties with the query thresholds are frequent."""
    n = draw(st.integers(0, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def level_or_uniform(nan: bool) -> float:
        pick = rng.integers(0, 3)
        if pick == 0 and nan:
            return float("nan")
        return float(rng.choice(_LEVELS)) if pick == 1 else float(rng.uniform(0, 100))

    rows = []
    for i in range(n):
        x0, y0 = rng.uniform(-180, 179), rng.uniform(-90, 89)
        w, h = rng.uniform(0, 3) * rng.integers(0, 2), rng.uniform(0, 3)
        rows.append({
            "id": f"r{i}",
            "geocode": "".join(rng.choice(list(_CHARS), rng.integers(1, 5))),
            "scheme": "geohash",
            "datetime": _TIMES[rng.integers(0, len(_TIMES))],
            "dataset": str(rng.choice(["a", "b", "c"])),
            "bands": ["B1"],
            "bbox": (x0, y0, min(x0 + w, 180.0), min(y0 + h, 90.0)),
            "crs": "EPSG:4326",
            "resolution": 1.0,
            "width": 1,
            "height": 1,
            "cloud_cover": level_or_uniform(nan=True),
            "pixel_coverage": level_or_uniform(nan=False),
            "cloud_source": "none",
            "location": "{}",
            "geometry": b"",
        })  # fmt: skip
    return records_frame(rows)


@st.composite
def _queries(draw: st.DrawFn) -> dict:
    q: dict = {}
    if draw(st.booleans()):
        a, b = draw(st.sampled_from(_TIMES)), draw(st.sampled_from(_TIMES))
        if a is not None and b is not None and a > b:
            a, b = b, a
        q["time"] = (a, b)
    if draw(st.booleans()):
        q["geocode"] = draw(st.text(_CHARS, min_size=1, max_size=3))
        q["recursive"] = draw(st.booleans())
    if draw(st.booleans()):
        q["max_cloud"] = draw(st.one_of(st.sampled_from(_LEVELS), st.floats(0, 100)))
    if draw(st.booleans()):
        q["min_pixel_coverage"] = draw(
            st.one_of(st.sampled_from([0.0, 50.0, 100.0]), st.floats(0, 100))
        )
    if draw(st.booleans()):
        q["dataset"] = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=2))
    if draw(st.booleans()):
        west, east = (
            draw(st.floats(-180, 180)),
            draw(st.floats(-180, 180)),
        )  # west > east: antimeridian
        s, n = sorted((draw(st.floats(-90, 90)), draw(st.floats(-90, 90))))
        q["bbox"] = (west, s, east, n)
    return q


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=_catalogs(), predicates=_queries())
def test_index_equals_brute_force_scan(df, predicates):
    q = build_query(**predicates, known_datasets=["a", "b", "c"], schemes=["geohash"])
    expected = np.flatnonzero(scan(df, q))
    index = CatalogIndex.from_frame(df)
    for fraction in (0.0, 0.05, 1.0):  # always whole columns, the default plan, always gather
        index.scan_fraction = fraction
        np.testing.assert_array_equal(index.search(q), expected)
    # and the scan agrees with a row-by-row reading of the predicates
    by_row = [i for i, row in enumerate(df.itertuples()) if _row_matches(row, predicates)]
    assert expected.tolist() == by_row


def _row_matches(row, p: dict) -> bool:
    if "time" in p and p["time"] != (None, None):  # (None, None) is no time predicate at all
        start, end = p["time"]
        if (
            pd.isna(row.datetime)
            or (start is not None and row.datetime < start)
            or (end is not None and row.datetime > end)
        ):
            return False
    if "geocode" in p:
        if p["recursive"] and not row.geocode.startswith(p["geocode"]):
            return False
        if not p["recursive"] and row.geocode != p["geocode"]:
            return False
    if "max_cloud" in p and not (row.cloud_cover <= p["max_cloud"]):
        return False
    if "min_pixel_coverage" in p and not (row.pixel_coverage >= p["min_pixel_coverage"]):
        return False
    if "dataset" in p and row.dataset not in p["dataset"]:
        return False
    if "bbox" in p:
        w, s, e, n = p["bbox"]
        x0, y0, x1, y1 = row.bbox
        if y0 > n or y1 < s:
            return False
        lon = (x0 <= e and x1 >= w) if w <= e else (x1 >= w or x0 <= e)
        if not lon:
            return False
    return True
