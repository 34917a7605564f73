"""Widgets in a plain Python script (no kernel, no front end): text that says what and how."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from workbench.testing import requires

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import workbench
    from workbench.data.synthetic import era5_like
    from workbench.widgets.gallery import ChipGallery

    m = era5_like(time=1, lat=8, lon=8).wb.map()
    m.bbox = (-8.0, 51.0, -4.0, 55.0)
    print(m)
    g = ChipGallery.from_arrays(np.zeros((3, 1, 4, 4)))
    g.selected = 1
    print(g)
    """
)


@requires("ipyleaflet")
@requires("anywidget")
def test_widgets_in_a_plain_script_print_what_they_would_show():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "AOIMap" in text
    assert "AOI: W -8.0000, S 51.0000, E -4.0000, N 55.0000" in text
    assert "ChipGallery" in text
    assert "3 thumbnails (4x4 px)" in text
    assert "selected 1" in text
    assert text.count("pip install 'workbench[jupyter]'") == 2
