"""Snow apart from cloud in the spectral test; provider masks (SCL, QA_PIXEL, QA60, MSK_CLDPRB)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from workbench.composites import composite, spectral_cloud_mask
from workbench.composites.clouds import spectral_snow_mask
from workbench.composites.qa import mask_variables, provider_masks
from workbench.testing import shared_data

NAMES = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
# Top-of-atmosphere reflectance of fresh snow under a clear sky, Sentinel-2 bands (typical values
# of the literature: bright and flat in the visible, high NIR, strong absorption at 1.6 and 2.2 um;
# e.g. Dozier 1989, Gascoin et al. 2019): the case the potential-cloud test calls cloud.
SNOW = {"B01": 0.9, "B02": 0.88, "B03": 0.86, "B04": 0.84, "B05": 0.82, "B06": 0.8, "B07": 0.78,
        "B08": 0.76, "B8A": 0.74, "B09": 0.4, "B10": 0.005, "B11": 0.12, "B12": 0.09}  # fmt: skip


@pytest.fixture(scope="module")
def scenes() -> xr.Dataset:
    """The 5 real Sentinel-2 L1C dates as reflectance variables (time, y, x)."""
    raw = np.load(shared_data("eolearn_s2_slovenia/original/REFERENCE_SCENES.npy"))
    order = np.argsort([2, 1, 4, 3, 0])  # file order -> date order (PROVENANCE.md)
    data = raw[order]
    return xr.Dataset({b: (("time", "y", "x"), data[..., k]) for k, b in enumerate(NAMES)})


@pytest.fixture(scope="module")
def snowy(scenes) -> xr.Dataset:
    """A clear real date whose northern third is snow covered (snow spectra, real texture)."""
    clear = scenes.isel(time=[0])
    out = clear.copy(deep=True)
    rng = np.random.default_rng(0)
    for band, value in SNOW.items():
        noise = 1 + 0.03 * rng.standard_normal(out[band].shape[1:])
        out[band].values[0, :34] = value * noise[:34]
    return out


def test_real_clouds_stay_cloud_and_clear_dates_stay_clear(scenes) -> None:
    cloud = spectral_cloud_mask(scenes).mean(dim=("y", "x")).values
    assert cloud[1] > 0.8  # 2015-07-31, cloudy in the s2cloudless mask
    assert cloud[2] > 0.99  # 2015-08-20
    assert cloud[[0, 3, 4]].max() < 0.01
    assert not spectral_snow_mask(scenes).any()  # summer: no snow anywhere


def test_snow_is_not_cloud(snowy) -> None:
    old = spectral_cloud_mask(snowy, separate_snow=False).isel(time=0).values
    new = spectral_cloud_mask(snowy).isel(time=0).values
    snow = spectral_snow_mask(snowy).isel(time=0).values
    assert old[:34].mean() > 0.9  # the bare potential-cloud test calls the snow cloud
    assert new[:34].mean() == 0.0
    assert snow[:34].mean() > 0.99
    assert snow[34:].mean() == 0.0
    assert new[34:].mean() < 0.01


def test_snow_test_works_on_digital_numbers(snowy) -> None:
    dn = (snowy * 10000).round().astype("uint16")
    np.testing.assert_array_equal(spectral_snow_mask(dn).values, spectral_snow_mask(snowy).values)


def test_scl_qa_pixel_qa60_and_probabilities() -> None:
    y = ("y", "x")
    scl = xr.Dataset({"SCL": (y, np.array([[0, 3, 4], [8, 9, 11]], "uint8"))})
    m = provider_masks(scl)
    assert m.source == "mask:SCL"
    assert m.cloud.values.tolist() == [[False, False, False], [True, True, False]]
    assert m.snow.values.tolist() == [[False, False, False], [False, False, True]]
    assert m.valid.values.tolist() == [[False, True, True], [True, True, True]]
    # Landsat C2: 21824 clear, 22280 cloud (bits 1 and 3), 30048 snow (bit 5), 1 fill
    qa = xr.Dataset({"QA_PIXEL": (y, np.array([[21824, 22280, 30048], [1, 21824, 55052]]))})
    m = provider_masks(qa)
    assert m.cloud.values.tolist() == [[False, True, False], [False, False, True]]
    assert m.snow.values.tolist() == [[False, False, True], [False, False, False]]
    assert m.valid.values.tolist() == [[True, True, True], [False, True, True]]
    qa60 = xr.Dataset({"QA60": (y, np.array([[0, 1024, 2048]]))})
    assert provider_masks(qa60).cloud.values.tolist() == [[False, True, True]]
    assert provider_masks(qa60).snow is None
    prob = xr.Dataset({"MSK_CLDPRB": (y, np.array([[10.0, 60.0]])),
                       "MSK_SNWPRB": (y, np.array([[80.0, 0.0]]))})  # fmt: skip
    m = provider_masks(prob)
    assert (m.cloud.values.tolist(), m.snow.values.tolist()) == ([[False, True]], [[True, False]])
    assert mask_variables(prob) == ("MSK_CLDPRB", "MSK_SNWPRB")
    assert provider_masks(xr.Dataset({"B04": (y, np.zeros((1, 2)))})) is None


def test_composite_uses_the_provider_mask(scenes) -> None:
    """With no mask given, composite() takes the scene's SCL before any spectral test."""
    stack = scenes[["B02", "B03", "B04", "B08", "B11", "B12"]]
    scl = xr.full_like(stack.B04, 4, dtype="uint8")
    scl[0] = 9  # call the first (clear) date cloud: only the provider can say so
    out = composite(stack.assign(SCL=scl), method="latest")
    assert "SCL" not in out
    assert "SCL" in out.attrs["cloud_mask"]
    assert (out.source_time.values != 0).all()  # no pixel from the first date
