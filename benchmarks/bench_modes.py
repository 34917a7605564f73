"""Is training input-bound? Each tutorial's model on its real data, through the fast path.

For every tutorial model the chips are cut from the real sample data as the tutorial cuts
them and streamed by ``ChipSet.to_torch(..., shuffle=True, transform=fn)`` (the batch
transform does the tutorial's preprocessing on each whole batch), and
:func:`workbench.metering.measure_modes` runs the Frontier paper's three modes side by side
with one torch thread (what one engine gets): **io** (the stream alone), **synthetic** (the
training step on random tensors of the batch's shapes), **real** (both). The goal: real at
least 95 % of synthetic, and never input-bound.

Cases: ``01_nowcast`` (ERA5 windows -> next hour, the quickstart's CNN), ``04_ndvi``
(Sentinel-2 RGB -> mean NDVI, ``NDVIRegressor``), ``05_ndmi`` (RGB -> NDMI image, ``UNet``),
``06_mae`` (13-band chips, masked-autoencoder pretraining of the ``tiny`` ViT).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

GOAL = 0.95


def _nowcast(quick: bool) -> tuple[Any, Callable[..., Any], Any, Callable[..., Any]]:
    import torch

    import workbench as wb
    from workbench.data.samples import sample_path

    hours, chip = (6 if quick else 24), 8
    ds = wb.open_datacube(sample_path("era5_t2m"))
    region = ds.wb.clip((-6.0, 50.0, 2.0, 53.0))
    chips = region.wb.chips({"time": hours + 1, "latitude": chip, "longitude": chip})
    mean, std = float(region.t2m.mean()), float(region.t2m.std())

    def next_hour(x: Any) -> Any:
        x = (x[:, 0] - mean) / std
        return x[:, :hours], x[:, hours:]

    class Nowcaster(torch.nn.Module):  # the quickstart's model
        def __init__(self) -> None:
            super().__init__()
            self.correction = torch.nn.Sequential(
                torch.nn.Conv2d(hours, 32, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.Conv2d(32, 32, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.Conv2d(32, 1, 1),
            )

        def forward(self, x: Any) -> Any:
            return x[:, -1:] + self.correction(x)

    return chips, next_hour, Nowcaster(), torch.nn.functional.mse_loss


def _ndvi(quick: bool) -> tuple[Any, Callable[..., Any], Any, Callable[..., Any]]:
    from workbench.data.samples import sample_path
    from workbench.models import NDVIRegressor
    from workbench.models.cnn import chip_mean_mse
    from workbench.training.ndvi import s2_geotiff_ndvi_chips

    chips = s2_geotiff_ndvi_chips(sample_path("s2_geotiff"), chip=8)

    def rgb_and_ndvi(x: Any) -> Any:  # variables [rgb (3 bands), ndvi] stacked as channels
        return x[:, :3], x[:, 3:]

    return chips, rgb_and_ndvi, NDVIRegressor(chip_size=8), chip_mean_mse


def _ndmi(quick: bool) -> tuple[Any, Callable[..., Any], Any, Callable[..., Any]]:
    import torch

    import workbench as wb
    from workbench.composites import coarsen, ndmi, reconcile
    from workbench.data.samples import sample_path
    from workbench.models.unet import UNet

    folder = sample_path("s2_geotiff")
    refl = wb.open_datacube(sorted(folder.glob("S2_L1C_*.tif"))).band_data.load() / 10_000
    b11 = coarsen(refl.sel(band="B11", drop=True).isel(y=slice(1, None)), 2, "average")
    bands = reconcile(
        {**{b: refl.sel(band=b, drop=True) for b in ("B04", "B03", "B02", "B08")}, "B11": b11},
        "B08",
        up="bilinear",
    )
    pairs = bands[["B04", "B03", "B02"]].assign(ndmi=ndmi(bands)).isel(y=slice(1, None))
    chips = pairs.wb.chips({"time": 1, "y": 16, "x": 16}, input_overlap={"y": 12, "x": 12})
    sample = chips.to_numpy(np.arange(min(len(chips), 256)))[:, :3, 0]
    mean = torch.from_numpy(sample.mean(axis=(0, 2, 3)).astype(np.float32))[None, :, None, None]
    std = torch.from_numpy(sample.std(axis=(0, 2, 3)).astype(np.float32))[None, :, None, None]

    def standardised_rgb_and_ndmi(x: Any) -> Any:
        x = x[:, :, 0]  # (B, 4, 16, 16): drop the time axis of length one
        return (x[:, :3] - mean) / std, x[:, 3:]

    model = UNet(in_channels=3, out_channels=1, depth=3, base_channels=16)
    return chips, standardised_rgb_and_ndmi, model, torch.nn.functional.mse_loss


def _mae(quick: bool) -> tuple[Any, Callable[..., Any], Any, Callable[..., Any]]:
    import torch

    import workbench as wb
    from workbench.data.samples import sample_path
    from workbench.models.mae import MaskedAutoencoderViT, get_config

    folder = sample_path("s2_geotiff")
    cube = wb.open_datacube(sorted(folder.glob("S2_L1C_*.tif")))
    chips = cube.band_data.wb.chips(
        {"time": 1, "y": 16, "x": 16}, input_overlap={"y": 8 if quick else 14, "x": 14}
    )
    sample = chips.to_numpy(np.arange(min(len(chips), 256)))[:, :, 0]
    mean = torch.from_numpy(sample.mean(axis=(0, 2, 3)).astype(np.float32))[None, :, None, None]
    std = torch.from_numpy(sample.std(axis=(0, 2, 3)).astype(np.float32))[None, :, None, None]

    def standardised(x: Any) -> Any:
        return (x[:, :, 0] - mean) / std  # digital numbers -> standardised, per band

    torch.manual_seed(0)
    model = MaskedAutoencoderViT(get_config("tiny"), in_chans=13, img_size=16, patch_size=4)
    return chips, standardised, model, lambda out, _x: out[0]


CASES: dict[str, Callable[[bool], tuple[Any, Callable[..., Any], Any, Callable[..., Any]]]] = {
    "01_nowcast": _nowcast,
    "04_ndvi": _ndvi,
    "05_ndmi": _ndmi,
    "06_mae": _mae,
}


def _case(name: str, quick: bool, batch: int) -> dict[str, Any]:
    import torch

    from workbench.metering import measure_modes

    chips, transform, model, loss_fn = CASES[name](quick)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(b: Any) -> float:
        x, y = b if isinstance(b, tuple) else (b, None)
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = loss_fn(out, x if y is None else y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    loader = chips.to_torch(batch, shuffle=True, seed=0, device="cpu", transform=transform)
    report = measure_modes(
        step, loader, steps=10 if quick else 40, min_seconds=0.3 if quick else 3.0
    )
    rates = dict(report.images_per_s)
    ratio = rates["real"] / rates["synthetic"]
    return {
        "chips": len(chips),
        "batch_size": batch,
        "images_per_s": rates,
        "real_over_synthetic": ratio,
        "io_over_synthetic": rates["io"] / rates["synthetic"],
        "verdict": report.verdict,
        "input_bound": bool(rates["io"] < rates["synthetic"]),
        "meets_goal": bool(ratio >= GOAL),
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Run every case (toy step counts with ``quick``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cases = {name: _case(name, quick, batch=32) for name in CASES}
    finally:
        torch.set_num_threads(threads)
    return {
        "goal_real_over_synthetic": GOAL,
        "torch_threads": 1,
        "path": "ChipSet.to_torch(batch, shuffle=True, transform=fn)",
        "cases": cases,
        "summary": [
            {
                "case": name,
                "io": round(c["images_per_s"]["io"]),
                "synthetic": round(c["images_per_s"]["synthetic"]),
                "real": round(c["images_per_s"]["real"]),
                "real_over_synthetic": round(c["real_over_synthetic"], 3),
                "input_bound": c["input_bound"],
            }
            for name, c in cases.items()
        ],
    }
