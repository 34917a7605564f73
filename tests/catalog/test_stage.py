"""Staging a catalog onto ring nodes, and cloudy/clear pairs, on the real Sentinel-2 series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import workbench
from workbench.catalog.pairs import cloud_pairs
from workbench.catalog.stage import stage_catalog, stage_plan
from workbench.errors import CatalogError, GeocodeError
from workbench.geo import HashRing

RING = HashRing(["host-0", "host-1", "host-2"], tokens_per_node=64)


def test_plan_places_every_record_on_the_owner_of_its_prefix(s2_catalog):
    recs = s2_catalog.records
    plan = stage_plan(recs, RING, prefix_len=5)
    assert sorted(plan) == ["host-0", "host-1", "host-2"]
    assert sum(len(v) for v in plan.values()) == len(recs)
    for node, rows in plan.items():
        assert all(RING.node_for(c, prefix_len=5) == node for c in rows.geocode)
    with pytest.raises(GeocodeError, match="shorter than prefix_len=7"):
        stage_plan(recs, RING, prefix_len=7)


def test_staged_nodes_hold_exactly_their_pieces_with_the_same_pixels(s2_catalog, tmp_path):
    recs = s2_catalog.records
    staged = s2_catalog.stage(RING, tmp_path, prefix_len=6)
    assert sum(s.records for s in staged.values()) == len(recs)
    seen = []
    for node, s in staged.items():
        assert s.path == tmp_path / node
        local = workbench.Catalog(s.catalog)
        assert len(local) == s.records
        seen += local.records.id.tolist()
        assert set(RING.nodes_for(local.records.geocode.tolist(), prefix_len=6).tolist()) <= {node}
        for href in {r for r in local.records.location}:
            assert '"href":"assets/' in href  # relative: inside the node's own folder
        if s.records:
            assert s.nbytes > 0
            row = local.records.iloc[-1]
            a, b = local.open(row.id), s2_catalog.open(row.id)
            np.testing.assert_array_equal(a.band_data.values, b.band_data.values)
            assert a.time.values[0] == b.time.values[0]
            assert a.attrs["geocode"] == row.geocode
    assert sorted(seen) == sorted(recs.id)


def test_staging_again_replaces_a_node_folder_and_unknown_records_fail(s2_catalog, tmp_path):
    first = s2_catalog.stage(RING, tmp_path, prefix_len=6)
    subset = s2_catalog.records.iloc[:5]
    again = stage_catalog(s2_catalog, RING, tmp_path, records=subset, prefix_len=6)
    assert sum(s.records for s in again.values()) == 5
    assert sum(len(workbench.Catalog(s.catalog)) for s in again.values()) == 5
    assert first.keys() == again.keys()
    bogus = subset.assign(id=["nope"] * 5)
    with pytest.raises(CatalogError, match="not in"):
        stage_catalog(s2_catalog, RING, tmp_path, records=bogus)
    assert not list(tmp_path.glob(".*.tmp"))


def test_cloud_pairs_follow_the_papers_rule_on_the_real_series(s2_catalog):
    pairs = cloud_pairs(s2_catalog)
    recs = s2_catalog.records.set_index("id")
    assert len(pairs) == 3 * pairs.geocode.nunique()  # 3 clear dates per cell
    assert (recs.loc[pairs.clear_id, "cloud_cover"].to_numpy() == 0).all()
    assert (recs.loc[pairs.cloudy_id, "cloud_cover"].to_numpy() > 0).all()
    days = {
        str(t.date()): str(c.date())
        for t, c in zip(pairs.clear_time, pairs.cloudy_time, strict=False)
    }
    assert days == {
        "2015-07-11": "2015-07-31",
        "2015-08-30": "2015-08-20",
        "2015-09-09": "2015-08-20",
    }
    assert pairs.gap_days.between(9.9, 20.1).all()
    assert (pairs.geocode == recs.loc[pairs.cloudy_id, "geocode"].to_numpy()).all()


def test_cloud_pairs_need_cloud_cover():
    recs = pd.DataFrame(
        {"id": ["a"], "geocode": ["u"], "dataset": ["d"], "datetime": [pd.Timestamp("2020-01-01")],
         "cloud_cover": [np.nan]}
    )  # fmt: skip
    with pytest.raises(CatalogError, match="cloud mask"):
        cloud_pairs(recs)
    with pytest.raises(CatalogError, match="needs record columns"):
        cloud_pairs(recs.drop(columns="cloud_cover"))
