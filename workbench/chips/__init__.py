"""Chips of datacubes along named dims, fast from memory and from chunked stores.

``ChipSet`` plans chips index-first with xbatcher's semantics and reads them in bulk:
each storage chunk is decoded once and every chip is cut from it
(:mod:`~workbench.chips.reader`), batches go to torch without copies
(:mod:`~workbench.chips.collate`, :mod:`~workbench.chips.torch`).

Examples
--------
>>> from workbench.chips import ChipSet
>>> from workbench.data.synthetic import era5_like
>>> chips = ChipSet(era5_like(time=2, lat=8, lon=8), {"lat": 4, "lon": 4})
>>> len(chips), chips.to_numpy([0]).shape
(4, (1, 8, 4, 4))
"""

from __future__ import annotations

from workbench.chips.chipset import ChipSet
from workbench.chips.collection import Collection, CollectionChips, open_collection
from workbench.chips.grid import ChipGrid

__all__ = ["ChipSet", "ChipGrid", "Collection", "CollectionChips", "open_collection"]
