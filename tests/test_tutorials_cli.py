"""Tutorials for a hub user: the copy command, sample lookup, the startup snippet, the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from workbench import tutorials
from workbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = ROOT / "jupyter_ext" / "ipython" / "00-workbench.py"


def test_copy_tutorials_into_a_home_keeps_a_users_edits(tmp_path, capsys):
    dest = tmp_path / "home" / "tutorials"
    assert main(["tutorials", "--copy", str(dest)]) == 0
    names = sorted(p.name for p in dest.glob("*.ipynb"))
    assert names[0] == "01_quickstart.ipynb"
    assert len(names) >= 5
    assert (dest / "data" / "era5" / "era5_t2m_uk_2019-03-01_14d.nc").is_file()
    assert (dest / "data" / "PROVENANCE.md").is_file()
    (dest / "01_quickstart.ipynb").write_text("my edits")
    assert main(["tutorials", "copy", str(dest)]) == 0
    assert (dest / "01_quickstart.ipynb").read_text() == "my edits"  # never overwritten
    assert "kept" in capsys.readouterr().err
    main(["tutorials", "--copy", str(dest), "--force"])
    assert (dest / "01_quickstart.ipynb").read_text() != "my edits"
    assert not list(dest.rglob(".*.tmp"))


def test_the_command_line_says_how_to_use_it(capsys):
    assert main([]) == 2
    assert "tutorials --copy DIR" in capsys.readouterr().err
    assert main(["tutorials", "list"]) == 0
    assert "01_quickstart.ipynb" in capsys.readouterr().out
    assert tutorials.tutorials_dir() == ROOT / "notebooks"


def _ipython(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh IPython whose profile has the startup snippet."""
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / SNIPPET.name).write_text(SNIPPET.read_text())
    script = tmp_path / "cells.ipy"
    script.write_text(code)
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", str(script)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip


def test_startup_snippet_loads_the_magics_and_a_notebooks_load_ext_stays_quiet(tmp_path):
    pytest.importorskip("IPython")
    proc = _ipython(
        tmp_path,
        "%load_ext workbench\n"
        "ip = get_ipython()\n"
        "print('train' in ip.magics_manager.magics['cell'], 'cluster' in "
        "ip.magics_manager.magics['line'])\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert "already loaded" not in proc.stdout + proc.stderr
    assert "not loaded" not in proc.stdout
    assert proc.stdout.strip().endswith("True True")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_wheel_ships_tutorials_data_and_a_per_environment_startup_snippet(tmp_path):
    """Build the wheel (hatchling from the registry), then use it as a hub image would."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=500,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("workbench-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        site = tmp_path / "site"
        archive.extractall(site)
    assert "workbench/_tutorials/01_quickstart.ipynb" in names
    assert "workbench/_tutorials/data/era5/era5_t2m_uk_2019-03-01_14d.nc" in names
    assert "workbench/widgets/naturalearth/ne_50m.npz" in names
    startup = [n for n in names if n.endswith(".data/data/etc/ipython/startup/00-workbench.py")]
    assert startup  # installed into <env>/etc/ipython/startup, nothing machine-wide
    assert not [n for n in names if "share/workbench/ipython" in n]

    # the installed package (not the checkout) finds its excerpt and copies the tutorials
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "WORKBENCH_DATA_DIR": str(tmp_path / "no-shared-data"),
    }
    code = (
        "import workbench, workbench.data.samples as s; "
        "print(workbench.__file__); print(s.sample_path('era5_t2m')); "
        "print(s.sample_path('s2_geotiff'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=elsewhere,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    module, era5, s2 = out.stdout.split()
    assert module.startswith(str(site))
    assert era5.startswith(str(site / "workbench" / "_tutorials" / "data"))
    assert Path(s2).is_dir()
    copied = subprocess.run(
        [sys.executable, "-m", "workbench", "tutorials", "--copy", str(tmp_path / "home")],
        capture_output=True, text=True, env=env, cwd=elsewhere, timeout=120,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "home" / "01_quickstart.ipynb").is_file()
