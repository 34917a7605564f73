"""The package shell: light import, optional-dependency errors, options, errors, accessor."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import xarray as xr

import workbench
from workbench import errors
from workbench._optional import has_module, lazy_import
from workbench.data.synthetic import era5_like


def test_import_is_light():
    code = (
        "import sys, json, workbench, xarray as xr\n"
        "ds = xr.Dataset()\n"
        "ds.wb\n"
        "heavy = ['torch', 'cupy', 'IPython', 'holoviews', 'bokeh', 'ipywidgets', 'ipyparallel',"
        " 'codecarbon', 'leafmap', 'kvikio', 'sklearn', 'skimage']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_version_and_lazy_attributes():
    assert isinstance(workbench.__version__, str)
    assert callable(workbench.open_datacube)
    assert "open_datacube" in dir(workbench)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        workbench.nope


def test_lazy_import_names_the_extra():
    with pytest.raises(errors.MissingDependencyError, match=r"pip install 'workbench\[gpu\]'"):
        lazy_import("kvikio_not_really", extra="gpu", purpose="engine='kvikio'")
    with pytest.raises(ImportError, match="engine='kvikio'"):
        lazy_import("kvikio_not_really", extra="gpu", purpose="engine='kvikio'")


def test_lazy_import_of_a_blocked_module(monkeypatch):
    # As xbatcher tests it: a module set to None in sys.modules cannot be imported.
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    with pytest.raises(errors.MissingDependencyError, match=r"workbench\[carbon\]"):
        lazy_import("codecarbon")
    assert has_module("json")


def test_torch_hint_pins_the_cpu_build():
    with pytest.raises(errors.MissingDependencyError, match=r"torch==2\.13\.0"):
        lazy_import("torch.not_a_submodule_xyz")


def test_has_gpu_can_be_disabled(monkeypatch):
    from workbench import _optional

    _optional._cuda_device_count.cache_clear()
    monkeypatch.setenv("WORKBENCH_DISABLE_GPU", "1")
    try:
        assert workbench.has_gpu() is False
    finally:
        _optional._cuda_device_count.cache_clear()


def test_set_options_scoped_and_validated():
    assert workbench.get_options()["device"] == "auto"
    with workbench.set_options(device="cpu", chunk_cache_bytes=1024):
        assert workbench.get_options()["device"] == "cpu"
        assert workbench.get_options()["chunk_cache_bytes"] == 1024
    assert workbench.get_options()["device"] == "auto"
    with pytest.raises(ValueError, match="unknown option 'devise'"):
        workbench.set_options(devise="cpu")
    with pytest.raises(ValueError, match="invalid value 'tpu'"):
        workbench.set_options(device="tpu")


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.MissingDependencyError, ImportError),
        (errors.GPUUnavailableError, RuntimeError),
        (errors.DimensionError, ValueError),
        (errors.ChipSpecError, ValueError),
        (errors.CRSError, ValueError),
        (errors.AOIError, ValueError),
        (errors.DataReadError, OSError),
        (errors.QueryError, ValueError),
        (errors.GeocodeError, ValueError),
        (errors.EngineDiedError, errors.LaunchError),
        (errors.MeterError, RuntimeError),
    ],
)
def test_errors_derive_from_builtins(cls, builtin):
    assert issubclass(cls, errors.WorkbenchError)
    assert issubclass(cls, builtin)


def test_accessor_is_registered_on_both_types():
    ds = era5_like(time=2, lat=4, lon=4)
    assert ds.wb._obj is ds
    da = ds.t2m
    assert da.wb._obj is da
    assert isinstance(ds.wb, workbench.accessors.WorkbenchAccessor)
    assert xr.Dataset().wb.engine is None
