"""Chips of catalog pieces: one index at the controller, the same pixels read where staged."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import workbench
from workbench.chips.staged import HOST_DATA_ENV, HostChips, chip_table
from workbench.errors import CatalogError, GeocodeError
from workbench.geo import HashRing
from workbench.testing import shared_data
from workbench.training.olci import WaterChipper, olci_catalog


@pytest.fixture(scope="module")
def olci(tmp_path_factory):
    with workbench.set_options(progress=False):
        cat = olci_catalog(
            shared_data("xcube_olci_northsea/cube-1-250-250.zarr"),
            tmp_path_factory.mktemp("olci"),
            precision=4,
        )
    recs = cat.records
    return cat, recs[recs.pixel_coverage > 20].sort_values("id").head(12)


def test_index_then_pixels_where_the_pieces_are_staged(olci, tmp_path, monkeypatch):
    cat, recs = olci
    chipper = WaterChipper(size=8)
    table = chip_table(cat, recs, chipper, precision=6)
    assert len(table) > 100
    assert set(table.record_ids) <= set(recs.id)
    assert all(
        c[:4] == g
        for c, g in zip(
            table.codes, recs.set_index("id").loc[table.record_ids].geocode, strict=False
        )
    )
    ring = HashRing(["host-0", "host-1"], tokens_per_node=64)
    staged = cat.stage(ring, tmp_path, records=recs, prefix_len=4)
    owner = ring.nodes_for(table.codes, prefix_len=4)
    for node, s in staged.items():
        mine = np.flatnonzero(owner == node)
        view = pickle.loads(pickle.dumps(table.refs(chipper).select(mine)))
        assert len(pickle.dumps(view)) < 200 * len(mine) + 2000  # ids and positions, no pixels
        monkeypatch.setenv(HOST_DATA_ENV, str(s.path))
        x, y = view.to_numpy()
        np.testing.assert_array_equal(x, table.x[mine])
        np.testing.assert_array_equal(y, table.y[mine])
        assert view.geocodes("geohash", 4).tolist() == [c[:4] for c in table.codes[mine]]
        others = np.flatnonzero(owner != node)
        if len(others):
            with pytest.raises(CatalogError, match="not staged"):
                table.refs(chipper).select(others[:3]).to_numpy()


def test_clear_errors(monkeypatch):
    monkeypatch.delenv(HOST_DATA_ENV, raising=False)
    refs = HostChips(["a"], [0], ["u0bh"], chipper=WaterChipper())
    with pytest.raises(CatalogError, match="WORKBENCH_HOST_DATA"):
        refs.to_numpy()
    with pytest.raises(GeocodeError, match="fewer than precision 5"):
        refs.geocodes("geohash", 5)
    with pytest.raises(GeocodeError, match="one record id, position and code"):
        HostChips(["a", "b"], [0], ["u"], chipper=None)
    with pytest.raises(GeocodeError, match="scheme 'quadkey'"):
        refs.geocodes("quadkey", 2)


def test_water_chipper_keeps_only_all_valid_water_chips(olci):
    cat, recs = olci
    piece = cat.open(recs.id.iloc[0]).load()
    chips = WaterChipper(size=8)(piece)

    def blocks(name):
        a = piece[name].values[0]
        h, w = (a.shape[0] // 8) * 8, (a.shape[1] // 8) * 8
        return a[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)

    kd, chl, tsm = blocks("kd489"), blocks("conc_chl"), blocks("conc_tsm")
    valid = np.ones(len(kd), bool)
    for b in (kd, chl, tsm):
        valid &= (np.nan_to_num(b, nan=-1) > 0).all(axis=(1, 2))
    assert 0 < len(chips.x) == valid.sum() < len(kd)
    np.testing.assert_allclose(chips.y, np.log(kd[valid]), rtol=1e-6)
    np.testing.assert_allclose(chips.x[:, 0], np.log(chl[valid]), rtol=1e-5, atol=1e-6)
    assert chips.x.dtype == np.float32
    assert chips.x.shape[1:] == (2, 8, 8)
    lat, lon = piece.lat.values, piece.lon.values
    assert lat.min() <= chips.lat.min()
    assert chips.lat.max() <= lat.max()
    assert lon.min() <= chips.lon.min()
    assert chips.lon.max() <= lon.max()
