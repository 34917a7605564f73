"""Scenes of different grids and CRSs seen as one chunked array, so one chip stream reads them all.

A collection's scenes differ in size, pixel lattice and CRS, but a chip stream (plan, tile
reader, cache, staged batches; :mod:`workbench.chips.batches`) reads one array. So the scenes
are laid into *slots* along one chipped dim (``y``): each scene starts at a whole multiple
of both the chip stride and the tile length, so no tile and no chip straddles two scenes,
and the slots are padded to the longest scene along the other chipped dims. A
:class:`SceneStackArray` is that array as a lazy xarray backend array: a read of a box is cut
into the scenes it touches, each read from its own file (Zarr boxes decoded in the calling
thread when they can be, see :mod:`workbench.data.zarr_sync`); padding is never read.

The chips of the collection are those of each scene on its own grid (xbatcher's order within
a scene, scenes one after another): their ids in the stacked grid are given explicitly, so
chips never fall in padding.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from workbench.chips.grid import ChipGrid
from workbench.chips.source import _chunks
from workbench.errors import ChipSpecError, DataReadError, DimensionError, WorkbenchError
from workbench.geo.crs import spatial_dims

__all__ = ["SceneStackArray", "StackLayout", "stack_scenes"]


@dataclass(frozen=True)
class StackLayout:
    """Where each scene sits in the stacked array, and the stacked grid's chip ids."""

    axis_dim: Hashable  # the chipped dim the scenes are laid along
    offsets: np.ndarray[Any, np.dtype[np.int64]]  # slot start of each scene along axis_dim
    extents: list[dict[Hashable, int]]  # each scene's sizes
    ids: np.ndarray[Any, np.dtype[np.int64]]  # chips of the stacked grid, scene by scene
    counts: np.ndarray[Any, np.dtype[np.int64]]  # chips per scene

    def scene_of(self, origins_on_axis: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Scene number of stacked-grid positions along ``axis_dim``."""
        return np.searchsorted(self.offsets, origins_on_axis, side="right") - 1


class SceneStackArray(BackendArray):
    """Lazy array of several scenes' variable laid in slots along one axis (see the module)."""

    def __init__(
        self,
        members: Sequence[xr.Variable],
        axis: int,
        offsets: Sequence[int],
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        name: Hashable,
        scene_ids: Sequence[str],
    ) -> None:
        self.members = list(members)
        self.axis = axis
        self.offsets = [int(o) for o in offsets]
        self.shape = shape
        self.dtype = dtype
        self.name = name
        self.scene_ids = list(scene_ids)
        self._boxes: dict[int, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_boxes": {}}

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._raw_indexing_method
        )

    def _box(self, s: int) -> Any:
        if s not in self._boxes:
            from workbench.data.zarr_sync import box_reader

            self._boxes[s] = box_reader(self.members[s], self.name)
        return self._boxes[s]

    def _raw_indexing_method(self, key: tuple[Any, ...]) -> np.ndarray[Any, Any]:
        slices, squeeze, steps = [], [], []
        for k, n in zip(key, self.shape, strict=True):
            if isinstance(k, int | np.integer):
                i = int(k) + n if k < 0 else int(k)
                slices.append((i, i + 1))
                squeeze.append(True)
                steps.append(1)
            else:
                start, stop, step = k.indices(n)
                lo, hi = (start, stop) if step > 0 else (stop + 1, start + 1)
                slices.append((lo, max(lo, hi)))
                squeeze.append(False)
                steps.append(step)
        fill = np.nan if self.dtype.kind in "fc" else 0
        out = np.full([b - a for a, b in slices], fill, dtype=self.dtype)
        a0, a1 = slices[self.axis]
        for s, (member, off) in enumerate(zip(self.members, self.offsets, strict=True)):
            lo = [max(a, 0) for a, _ in slices]
            hi = [min(b, n) for (_, b), n in zip(slices, member.shape, strict=True)]
            lo[self.axis] = max(a0, off) - off
            hi[self.axis] = min(a1, off + member.shape[self.axis]) - off
            if any(b <= a for a, b in zip(lo, hi, strict=True)):
                continue
            shift = [off if d == self.axis else 0 for d in range(len(lo))]
            dst = tuple(
                slice(a + sh - s0, b + sh - s0)
                for a, b, sh, (s0, _) in zip(lo, hi, shift, slices, strict=True)
            )
            out[dst] = self._read(s, member, lo, hi)
        index = tuple(
            0 if sq else slice(None, None, st) for sq, st in zip(squeeze, steps, strict=True)
        )
        return out[index]

    def _read(self, s: int, member: xr.Variable, lo: list[int], hi: list[int]) -> Any:
        try:
            box = self._box(s) if not member._in_memory and member.chunks is None else None
            if box is not None:
                return box.read(lo, hi)
            key = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            if member.chunks is not None:
                return np.asarray(member.data[key].compute())
            if member._in_memory:
                return np.asarray(member.data[key])
            # the member's own lazy array, indexed once (no Variable built around it)
            lazy: Any = member._data
            return np.asarray(lazy[indexing.BasicIndexer(key)])
        except WorkbenchError:
            raise
        except Exception as exc:  # every reader raises its own
            box = ", ".join(f"{d} {a}:{b}" for d, a, b in zip(member.dims, lo, hi, strict=True))
            raise DataReadError(
                f"could not read variable {self.name!r} of scene {self.scene_ids[s]!r} at {box}: "
                f"{type(exc).__name__}: {exc}. Its file may be damaged, truncated or gone"
            ) from exc


def _common_variables(
    datasets: Sequence[xr.Dataset], dims: Sequence[Hashable], names: Sequence[Hashable] | None
) -> list[Hashable]:
    per_scene = [
        [n for n, v in ds.data_vars.items() if set(dims) <= set(v.dims)] for ds in datasets
    ]
    if names is not None:
        names = list(names)
        for ds, have in zip(datasets, per_scene, strict=True):
            missing = [n for n in names if n not in have]
            if missing:
                raise ChipSpecError(
                    f"scene {ds.attrs.get('scene_id', '?')!r} has no variable(s) {missing} with "
                    f"the chipped dims {list(dims)}; it has {[str(n) for n in have]}"
                )
        return names
    common = [n for n in per_scene[0] if all(n in have for have in per_scene[1:])]
    if not common:
        raise ChipSpecError(
            f"the scenes share no variable with the chipped dims {list(dims)}: "
            + "; ".join(
                f"{ds.attrs.get('scene_id', k)}: {[str(n) for n in have]}"
                for k, (ds, have) in enumerate(zip(datasets, per_scene, strict=True))
            )
        )
    dropped = sorted({str(n) for have in per_scene for n in have} - {str(n) for n in common})
    if dropped:
        warnings.warn(
            f"variables {dropped} are not in every scene and are left out of the chips; pass "
            "variables=[...] to choose, or open the collection with bands=[...]",
            UserWarning,
            stacklevel=5,  # the caller of Collection.chips
        )
    return common


def _slot(stride: int, tile: int, longest: int) -> int:
    """Slot granularity: a multiple of the stride and of the tile length, when not wasteful."""
    both = stride * tile // math.gcd(stride, tile)
    return both if both <= 4 * max(longest, 1) else stride


def stack_scenes(
    datasets: Sequence[xr.Dataset],
    input_dims: Mapping[Hashable, int],
    input_overlap: Mapping[Hashable, int] | None,
    variables: Sequence[Hashable] | None,
    scene_ids: Sequence[str],
) -> tuple[xr.Dataset, StackLayout]:
    """Lay scenes into one lazy Dataset (see the module docs) and list their chips.

    Raises
    ------
    DimensionError
        Scenes with other dim names, or different sizes along a dim that is not chipped.
    ChipSpecError
        No common variable, or no scene as large as one chip.
    """
    dims = list(input_dims)
    for k, ds in enumerate(datasets):
        missing = [d for d in dims if d not in ds.sizes]
        if missing:
            raise DimensionError(
                f"scene {scene_ids[k]!r} has no dim(s) {missing} (its dims: {list(ds.sizes)}); "
                "scenes of other dim names (lat/lon vs y/x) need one CRS: open the collection "
                "with crs=..."
            )
    names = _common_variables(datasets, dims, variables)
    try:
        ydim = spatial_dims(datasets[0])[0]
    except DimensionError:
        ydim = dims[0]
    axis_dim = ydim if ydim in dims else dims[0]
    grids: list[ChipGrid | None] = []
    for ds in datasets:
        try:
            grids.append(ChipGrid.from_sizes(ds.sizes, input_dims, input_overlap))
        except ChipSpecError:
            grids.append(None)
    small = [scene_ids[k] for k, g in enumerate(grids) if g is None]
    if len(small) == len(datasets):
        raise ChipSpecError(
            f"no scene is as large as one chip {dict(input_dims)}: scene sizes "
            f"{[dict(ds.sizes) for ds in datasets][:4]}"
        )
    if small:
        warnings.warn(
            f"scenes {small} are smaller than one chip {dict(input_dims)} and give no chip",
            UserWarning,
            stacklevel=4,  # the caller of Collection.chips
        )
    for k, ds in enumerate(datasets):
        for n in names:
            if set(ds[n].dims) != set(datasets[0][n].dims):
                raise DimensionError(
                    f"variable {n!r} has dims {ds[n].dims} in scene {scene_ids[k]!r} but "
                    f"{datasets[0][n].dims} in {scene_ids[0]!r}"
                )
    axis_pos = dims.index(axis_dim)
    size, stride = (
        int(input_dims[axis_dim]),
        int(input_dims[axis_dim]) - int((input_overlap or {}).get(axis_dim, 0)),
    )
    known = [
        c
        for ds in datasets
        for n in names
        if (c := _chunks(ds[n].variable, [axis_dim], "lazy")[0]) is not None
    ]
    chunk = max(known) if known else size
    tile = chunk * max(1, math.ceil(size / chunk))
    extents = [{d: int(ds.sizes[d]) for d in ds.sizes} for ds in datasets]
    longest = max(e[axis_dim] for e in extents)
    unit = _slot(stride, tile, longest)
    slots = [max(unit, math.ceil(e[axis_dim] / unit) * unit) for e in extents]
    offsets = np.concatenate([[0], np.cumsum(slots)[:-1]]).astype(np.int64)
    total = {d: max(e.get(d, 0) for e in extents) for d in {d for e in extents for d in e}}
    total[axis_dim] = int(sum(slots))
    data_vars: dict[Hashable, xr.Variable] = {}
    for n in names:
        ref = datasets[0][n]
        var_dims = ref.dims
        for k, ds in enumerate(datasets):
            other = [d for d in var_dims if d not in dims and ds.sizes[d] != ref.sizes[d]]
            if other:
                raise DimensionError(
                    f"scenes {scene_ids[0]!r} and {scene_ids[k]!r} differ along {other[0]!r} "
                    f"({ref.sizes[other[0]]} vs {ds.sizes[other[0]]}), which is not chipped: "
                    f"chip along it (input_dims={{{other[0]!r}: 1, ...}}) or select the same size"
                )
        members = [ds[n].transpose(*var_dims).variable for ds in datasets]
        dtype = np.result_type(*[m.dtype for m in members])
        shape = tuple(total[d] for d in var_dims)
        array = SceneStackArray(
            members,
            var_dims.index(axis_dim),
            offsets.tolist(),
            shape,
            np.dtype(dtype),
            n,
            scene_ids,
        )
        prefer: dict[Hashable, int] = {axis_dim: tile}
        for d in dims:
            if d != axis_dim:
                sizes = [_chunks(m, [d], "lazy")[0] for m in members]
                if all(c is not None for c in sizes):
                    prefer[d] = max(int(c) for c in sizes if c is not None)
        data_vars[n] = xr.Variable(
            var_dims,
            indexing.LazilyIndexedArray(array),
            dict(ref.attrs),
            {"preferred_chunks": prefer},
        )
    coords = {}
    for d, c in datasets[0].coords.items():
        if (
            c.ndim == 1
            and c.dims[0] not in dims
            and c.dims[0] in total
            and all(d in ds.coords and ds[d].equals(c) for ds in datasets[1:])
        ):
            coords[d] = c.variable
    stacked = xr.Dataset(data_vars, coords=coords)
    counts, id_parts = [], []
    ext = tuple(total[d] for d in dims)
    vgrid = ChipGrid.from_sizes(dict(zip(dims, ext, strict=True)), input_dims, input_overlap)
    strides = np.asarray(vgrid.strides, dtype=np.int64)
    for k, grid in enumerate(grids):
        if grid is None:
            counts.append(0)
            continue
        origins = grid.origins(np.arange(len(grid)))
        origins[:, axis_pos] += offsets[k]
        ids = np.ravel_multi_index(tuple((origins // strides).T), vgrid.counts)
        id_parts.append(np.asarray(ids, dtype=np.int64))
        counts.append(len(grid))
    layout = StackLayout(
        axis_dim, offsets, extents, np.concatenate(id_parts), np.asarray(counts, dtype=np.int64)
    )
    return stacked, layout
