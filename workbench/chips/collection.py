"""Collections of scenes on their own grids and CRSs, and the chips cut across all of them.

:func:`open_collection` finds the scenes in what a user has (folders of band files, globs,
files, open Datasets, STAC Items; :func:`workbench.data.scenes.find_scenes`) and opens each
lazily with its own CRS. ``collection.chips(...)`` returns a :class:`CollectionChips`: the
:class:`~workbench.chips.ChipSet` API over every scene (``len``, ``[i]`` as xarray with its
CRS and bounds, ``to_torch``/``batches`` with the same plan, shuffle, DDP sharding, tile cache
and decoding once per epoch, ``geocodes`` from lon/lat centres, ``preview``), each chip cut on
its scene's own grid; ``scene_ids`` says where each came from. ``crs=``/``resolution=``
warp the scenes to one CRS and pixel size first (read into memory).

Examples
--------
>>> import tempfile
>>> from workbench.data import examples
>>> root = tempfile.mkdtemp()
>>> _ = examples.sentinel2_scenes(f"{root}/a", dates=[0], bands=("B02", "B03", "B04"))
>>> _ = examples.sentinel2_scenes(f"{root}/b", dates=[3], bands=("B02", "B03", "B04"),
...                               crs="EPSG:32634")
>>> scenes = open_collection([f"{root}/a", f"{root}/b"])
>>> [c.to_epsg() for c in scenes.crs]
[32633, 32634]
>>> chips = scenes.chips({"y": 32, "x": 32})
>>> len(chips), chips.to_numpy([0, -1]).shape, sorted(set(chips.scene_ids))
(18, (2, 3, 32, 32), ['T33TVL_20150711T100008', 'T34TVL_20150830T100547'])
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from workbench.chips.chipset import ChipSet, _load, _stack_like_xbatcher
from workbench.chips.grid import normalize_positions
from workbench.chips.locate import chip_bounds, chip_centers, chip_time
from workbench.chips.scenestack import StackLayout, stack_scenes
from workbench.data.lattice import warp
from workbench.data.scenes import Scene, find_scenes, open_scene
from workbench.errors import ChipSpecError
from workbench.geo.crs import get_crs, lonlat_bounds

__all__ = ["Collection", "CollectionChips", "open_collection"]


class CollectionChips(ChipSet):
    """Chips of every scene of a :class:`Collection`, each on its scene's grid.

    Built by :meth:`Collection.chips`. The whole :class:`~workbench.chips.ChipSet` API
    applies; :attr:`obj` and :attr:`data` are the scenes stacked into slots (see
    :mod:`workbench.chips.scenestack`), and chip ``i`` is :attr:`scene_ids` ``[i]``'s chip
    at :meth:`locate` ``(i)``.

    Parameters
    ----------
    scenes : sequence of Scene
        The opened scenes.
    input_dims, input_overlap, variables
        As for :class:`~workbench.chips.ChipSet`; ``variables`` default to those every scene
        has (a warning names the ones left out).
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        input_dims: Mapping[Hashable, int],
        input_overlap: Mapping[Hashable, int] | None = None,
        variables: Sequence[Hashable] | None = None,
    ) -> None:
        if not scenes:
            raise ChipSpecError("the collection holds no scene to cut chips from")
        ids = [s.id for s in scenes]
        stacked, layout = stack_scenes(
            [s.data for s in scenes], input_dims, input_overlap, variables, ids
        )
        names = list(stacked.data_vars) if variables is None else list(variables)
        super().__init__(stacked, input_dims, input_overlap, names)
        self._ids = layout.ids
        self._scenes = list(scenes)
        self._layout = layout

    # -- where chips come from --------------------------------------------------------------
    @property
    def scenes(self) -> list[Scene]:
        """The scenes, in order."""
        return list(self._scenes)

    @property
    def layout(self) -> StackLayout:
        """Where each scene sits in the stacked array (see :mod:`workbench.chips.scenestack`)."""
        return self._layout

    def _where(
        self, ids: np.ndarray[Any, Any]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Scene number and local origin of stacked-grid chip ids."""
        origins = self.grid.origins(ids)
        axis = self.grid.dims.index(self._layout.axis_dim)
        scene = self._layout.scene_of(origins[:, axis])
        origins[:, axis] -= self._layout.offsets[scene]
        return scene, origins

    @property
    def scene_index(self) -> np.ndarray[Any, Any]:
        """The scene number of each chip."""
        return self._where(self.ids)[0]

    @property
    def scene_ids(self) -> np.ndarray[Any, Any]:
        """The scene id of each chip."""
        names = np.asarray([s.id for s in self._scenes], dtype=object)
        out: np.ndarray[Any, Any] = names[self.scene_index]
        return out

    def locate(self, i: int) -> tuple[str, dict[Hashable, slice]]:
        """``(scene id, isel selector on that scene)`` of chip ``i``."""
        scene, origin = self._where(np.asarray([self._id(int(i))]))
        sel = {
            d: slice(int(o), int(o) + s)
            for d, o, s in zip(self.grid.dims, origin[0], self.grid.sizes, strict=True)
        }
        return self._scenes[int(scene[0])].id, sel

    # -- ChipSet API on each scene's own grid -------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        """Chip ``key`` from its scene (coordinates, CRS, ``scene_id`` and lon/lat ``bounds``)."""
        if isinstance(key, int | np.integer) and not isinstance(key, bool):
            scene_id, sel = self.locate(int(key))
            ds = self._scenes[[s.id for s in self._scenes].index(scene_id)].data
            part = ds[self.variables]
            part = part.assign_coords({k: v for k, v in ds.coords.items() if k not in part.coords})
            chip = _load(part.isel(sel), f"chip {int(key)} ({scene_id}, {sel})")
            chip.attrs = {"scene_id": scene_id, "bounds": self.bounds(int(key))}
            return _stack_like_xbatcher(chip, list(self.grid.dims))
        return self.select(key)

    def centers(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """``(lon, lat)`` chip centres in degrees, each from its scene's CRS."""
        scene, origins = self._where(self.ids)
        lon, lat = np.empty(len(scene)), np.empty(len(scene))
        for s in np.unique(scene):
            rows = scene == s
            lon[rows], lat[rows] = chip_centers(self._scenes[int(s)].data, self.grid, origins[rows])
        return lon, lat

    def bounds(self, i: int) -> tuple[float, float, float, float]:
        """``(west, south, east, north)`` of chip ``i``, lon/lat degrees."""
        scene, origins = self._where(np.asarray([self._id(int(i))]))
        return chip_bounds(self._scenes[int(scene[0])].data, self.grid, origins[0])

    def time(self, i: int) -> tuple[np.datetime64, np.datetime64] | None:
        """``(first, last)`` time of chip ``i`` (a scene's scalar time gives both), or None."""
        scene, origins = self._where(np.asarray([self._id(int(i))]))
        ds = self._scenes[int(scene[0])].data
        found = chip_time(ds, self.grid, origins[0])
        if found is None and "time" in ds.coords and ds["time"].ndim == 0:
            stamp: Any = ds["time"].values[()]
            return stamp, stamp
        return found

    def __repr__(self) -> str:
        zones = sorted({c.to_string() for c in (get_crs(s.data) for s in self._scenes) if c})
        return (
            f"<CollectionChips: {len(self)} chips of {self.dims} from {len(self._scenes)} scenes "
            f"in {zones}, variables {self.variables}>"
        )


class Collection:
    """Scenes on their own grids and CRSs, opened lazily; see :func:`open_collection`.

    Iterating gives the scenes' Datasets; ``collection[i]`` (or ``collection["<id>"]``) one.
    """

    def __init__(self, scenes: Sequence[Scene]) -> None:
        self._scenes = list(scenes)
        seen: dict[str, int] = {}
        for s in self._scenes:  # ids are unique: repeated ones get a suffix
            if s.id in seen:
                seen[s.id] += 1
                s.id = f"{s.id}#{seen[s.id]}"
                s.data.attrs["scene_id"] = s.id
            else:
                seen[s.id] = 0

    @property
    def scenes(self) -> list[Scene]:
        """The scenes: id, Dataset, properties and where the pixels are."""
        return list(self._scenes)

    @property
    def ids(self) -> list[str]:
        """Scene ids, in order."""
        return [s.id for s in self._scenes]

    @property
    def crs(self) -> list[Any]:
        """The CRS of each scene (``pyproj.CRS`` or None)."""
        return [get_crs(s.data) for s in self._scenes]

    def __len__(self) -> int:
        return len(self._scenes)

    def __iter__(self) -> Iterator[xr.Dataset]:
        return (s.data for s in self._scenes)

    def __getitem__(self, key: int | str) -> xr.Dataset:
        if isinstance(key, str):
            if key not in self.ids:
                raise KeyError(f"no scene {key!r}; the scenes are {self.ids[:10]}")
            return self._scenes[self.ids.index(key)].data
        return self._scenes[key].data

    def summary(self) -> pd.DataFrame:
        """One row per scene: id, CRS, sizes, time, lon/lat bounds, variables, properties."""
        rows = []
        for s in self._scenes:
            crs = get_crs(s.data)
            when = s.data["time"].values if "time" in s.data.coords else None
            rows.append(
                {
                    "id": s.id,
                    "crs": crs.to_string() if crs else None,
                    "sizes": dict(s.data.sizes),
                    "time": pd.Timestamp(when) if when is not None and np.ndim(when) == 0 else when,
                    "bounds": lonlat_bounds(s.data) if crs else None,
                    "variables": [str(v) for v in s.data.data_vars],
                    **{f"properties.{k}": v for k, v in s.properties.items()},
                }
            )
        return pd.DataFrame(rows)

    def select(self, key: Any) -> Collection:
        """Return the scenes at positions, a boolean mask, ids, or where a predicate holds."""
        if callable(key):
            return Collection([s for s in self._scenes if key(s)])
        if isinstance(key, str) or (
            isinstance(key, Sequence) and key and all(isinstance(k, str) for k in key)
        ):
            wanted = [key] if isinstance(key, str) else list(key)
            return Collection([self._scenes[self.ids.index(k)] for k in wanted])
        pos = normalize_positions(key, len(self))
        return Collection([self._scenes[int(i)] for i in pos])

    def map(self, func: Callable[[xr.Dataset], xr.Dataset]) -> Collection:
        """Return a collection whose scenes are ``func(scene)`` (e.g. with an NDVI variable)."""
        out = []
        for s in self._scenes:
            data = func(s.data)
            data.attrs.setdefault("scene_id", s.id)
            out.append(Scene(s.id, data, dict(s.properties), s.ref, dict(s.options)))
        return Collection(out)

    def chips(
        self,
        input_dims: Mapping[Hashable, int],
        input_overlap: Mapping[Hashable, int] | None = None,
        variables: Sequence[Hashable] | None = None,
    ) -> CollectionChips:
        """Chips of every scene on its own grid; see :class:`CollectionChips`."""
        return CollectionChips(self._scenes, input_dims, input_overlap, variables)

    def __repr__(self) -> str:
        zones = sorted({c.to_string() for c in self.crs if c is not None})
        return f"<Collection: {len(self)} scenes in {zones}>"


def open_collection(
    scenes: Any,
    *,
    resolution: float | str | None = None,
    crs: Any = None,
    bands: Sequence[str] | None = None,
    resampling: str | Mapping[str, str] | None = None,
) -> Collection:
    """Open scenes of any grid and CRS as a :class:`Collection` (lazily, each in its own CRS).

    Parameters
    ----------
    scenes : path, glob, Dataset, STAC Item, or a list of them
        Folders of band files (or a folder of scene folders), globs, single files, open
        Datasets, STAC Item JSON files or dicts (see :func:`workbench.data.scenes.find_scenes`).
        A ``*labels*.json`` in a scene's folder becomes its ``properties``.
    resolution : float or str, optional
        Pixel size (or band name, or ``"finest"``) each scene's bands are put on (see
        :func:`workbench.open_datacube`); with ``crs``, the pixel size in ``crs``'s units.
    crs : optional
        Warp every scene into this CRS (``"EPSG:32633"``...), on a lattice anchored at the
        CRS origin, so scenes share one grid; pixels are read and warped then.
    bands : sequence of str, optional
        Bands to keep (every scene must have them).
    resampling : str or mapping, optional
        Override the resampling methods (see :func:`workbench.open_datacube`).

    Raises
    ------
    DataReadError
        A scene cannot be found or read.
    DimensionError
        A scene's bands are on different grids and no ``resolution`` is given (the error
        lists them), or it lacks a band of ``bands``.
    """
    found = find_scenes(scenes)
    opened = []
    for ref in found:
        # into one CRS: each scene first on its own finest grid, then warped
        native = resolution if crs is None else "finest"
        scene = open_scene(ref, bands=bands, resolution=native, resampling=resampling)
        if crs is not None:
            res = None if isinstance(resolution, str) else resolution
            data = warp(scene.data, crs, res, resampling)
            data.attrs.setdefault("scene_id", scene.id)
            options = {**scene.options, "crs": str(crs), "resolution": res}
            scene = Scene(scene.id, data, scene.properties, scene.ref, options)
        opened.append(scene)
    return Collection(opened)
