"""Scenes of a user's own data: find them (no pixel read), then open each lazily.

:func:`find_scenes` turns what a user has into :class:`SceneRef` s, one per scene:

* an open ``xarray.Dataset`` (or DataArray): one scene;
* a STAC Item (dict, ``pystac.Item``, or a JSON file of one Item or an ItemCollection): one
  scene per Item, its raster assets the bands, its properties kept;
* a Zarr store, a NetCDF/GRIB file, a multi-band GeoTIFF: one scene;
* band files (a list, a glob, a folder of them): grouped into scenes by folder and by the
  scene part of their names (Sentinel-2 tile and sensing time, Landsat product id); files of
  one folder whose names differ only in their dates are one scene each; a cloud mask beside
  its image (``S2_CLM_<date>.tif`` beside ``S2_L1C_<date>.tif``, ``<name>_CLM.tif`` beside
  ``<name>.tif``; :func:`~workbench.data.naming.sibling_mask`) is not a scene of its own:
  the catalog reads it as that scene's cloud mask;
* a folder of scene folders: every sub-folder that holds rasters (or an Item JSON).

A ``*labels*.json`` (or ``*metadata*.json``) object in a scene's folder becomes the scene's
``properties`` (BigEarthNet patches ship their labels that way).

:func:`open_scene` opens one with :func:`workbench.open_datacube` (bands, resolution), and
returns a :class:`Scene`: the Dataset with its CRS as ``spatial_ref``, its id, properties,
and where its pixels are (for a catalog to point at).
"""

from __future__ import annotations

import glob as _glob
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from workbench.data.bands import is_time_stack
from workbench.data.naming import RASTER_SUFFIXES, parse_name, sibling_mask
from workbench.data.stac import is_item, load_items, read_item
from workbench.errors import DataReadError

__all__ = ["SceneRef", "Scene", "find_scenes", "open_scene", "raster_files", "is_zarr"]

_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray", ".zmetadata")
_PROPERTY_FILES = ("*labels*.json", "*metadata*.json")


@dataclass
class SceneRef:
    """One scene, found but not opened: files (``assets`` by band, or one ``path``) or data."""

    id: str
    assets: dict[str, str] | None = None
    files: list[str] | None = None
    path: str | None = None
    data: xr.Dataset | None = None
    when: Any = None
    properties: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # how it was opened (resolution...)


@dataclass
class Scene:
    """An opened scene: lazily read data with its CRS, its id and properties, its sources."""

    id: str
    data: xr.Dataset
    properties: dict[str, Any]
    ref: SceneRef
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def location(self) -> dict[str, Any]:
        """Where the pixels are: ``{"assets": {band: path}}``, ``{"path": ...}`` or ``{}``."""
        if self.ref.assets:
            return {"assets": dict(self.ref.assets)}
        if self.ref.files:
            return {"files": list(self.ref.files)}
        if self.ref.path:
            return {"path": self.ref.path}
        return {}


def is_zarr(path: Path) -> bool:
    """Whether ``path`` is a Zarr store (a ``.zarr`` folder or one with Zarr metadata)."""
    return path.is_dir() and (
        path.suffix.lower() == ".zarr" or any((path / m).exists() for m in _ZARR_MARKERS)
    )


def raster_files(folder: Path) -> list[Path]:
    """Return the raster files directly in ``folder`` (sorted; no hidden files, no sidecars)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in RASTER_SUFFIXES
    )


def _properties(folder: Path) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for pattern in _PROPERTY_FILES:
        for path in sorted(folder.glob(pattern)):
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise DataReadError(
                    f"cannot read the properties file {str(path)!r}: {exc}"
                ) from exc
            if isinstance(doc, dict) and not is_item(doc):
                props.update(doc)
    return props


def _group(files: list[Path]) -> list[SceneRef]:
    """Group band files into scenes by folder and by the scene part of their names."""
    by_folder: dict[Path, list[Path]] = {}
    for f in files:
        by_folder.setdefault(f.parent, []).append(f)
    refs: list[SceneRef] = []
    for folder, members in by_folder.items():
        props = _properties(folder) if folder.is_dir() else {}
        keyed: dict[str, list[Path]] = {}
        for f in members:
            parsed = parse_name(f)
            keyed.setdefault(parsed.scene if parsed.convention else "", []).append(f)
        loose = keyed.pop("", [])
        masks = {m for f in loose if (m := sibling_mask(f)) is not None}
        loose = [f for f in loose if f not in masks]  # each goes with its image
        if loose and (len(loose) == 1 or is_time_stack(loose)):
            refs += [SceneRef(p.stem, path=str(p), properties=dict(props)) for p in loose]
        elif loose:
            refs.append(SceneRef(folder.name, files=[str(p) for p in loose], properties=props))
        for key, group in keyed.items():
            refs.append(SceneRef(key, files=[str(p) for p in group], properties=dict(props)))
    return refs


def _from_item(item: Any, href: str | None = None) -> SceneRef:
    scene = read_item(item, href)
    return SceneRef(scene.id, assets=scene.assets, when=scene.when, properties=scene.properties)


def _from_folder(folder: Path) -> list[SceneRef]:
    files = raster_files(folder)
    if files:
        return _group(files)
    items = sorted(folder.glob("*.json"))
    refs = []
    for path in items:
        try:
            docs = load_items(path)
        except DataReadError:
            continue
        refs += [_from_item(doc) for doc in docs]
    if refs:
        return refs
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for sub in subs:
        refs += [SceneRef(sub.name, path=str(sub))] if is_zarr(sub) else _from_folder(sub)
    if not refs:
        raise DataReadError(
            f"{str(folder)!r} holds no raster file ({', '.join(RASTER_SUFFIXES)}), no STAC Item "
            "and no sub-folder of scenes"
        )
    return refs


def find_scenes(scenes: Any) -> list[SceneRef]:
    """Find the scenes in ``scenes`` (see the module docs); nothing is opened.

    Raises
    ------
    DataReadError
        A path that does not exist, a pattern that matches nothing, an empty list, or a
        folder with no raster in it or below it.
    """
    if isinstance(scenes, xr.DataArray | xr.Dataset | str | Path) or is_item(scenes):
        scenes = [scenes]
    elif isinstance(scenes, Mapping) and scenes.get("type") == "FeatureCollection":
        scenes = list(scenes.get("features", []))
    items = list(scenes)
    if not items:
        raise DataReadError("no scene given: pass paths, folders, globs, Datasets or STAC Items")
    refs: list[SceneRef] = []
    files: list[Path] = []
    for k, item in enumerate(items):
        if isinstance(item, xr.DataArray):
            item = item.to_dataset(name=item.name or "data")
        if isinstance(item, xr.Dataset):
            name = item.attrs.get("scene_id") or item.attrs.get("id") or f"scene-{k}"
            props = item.attrs.get("properties")
            props = json.loads(props) if isinstance(props, str) else dict(props or {})
            refs.append(SceneRef(str(name), data=item, properties=props))
            continue
        if is_item(item):
            refs.append(_from_item(item))
            continue
        text = str(item)
        if any(c in text for c in "*?[") and not Path(text).exists():
            matches = [Path(m) for m in sorted(_glob.glob(text, recursive=True))]
            if not matches:
                raise DataReadError(f"the pattern {text!r} matches no file")
            files += [m for m in matches if m.is_file()]
            refs += [r for m in matches if m.is_dir() for r in _from_folder(m)]
            continue
        path = Path(text).expanduser()
        if not path.exists():
            raise DataReadError(f"no such file or folder: {text!r}")
        if is_zarr(path):
            refs.append(SceneRef(path.stem, path=str(path)))
        elif path.is_dir():
            refs += _from_folder(path)
        elif path.suffix.lower() == ".json":
            refs += [_from_item(doc) for doc in load_items(path)]
        else:
            files.append(path)
    refs += _group(files)
    return refs


def open_scene(ref: SceneRef, **options: Any) -> Scene:
    """Open one scene lazily with :func:`workbench.open_datacube` (``bands``, ``resolution``...)."""
    from workbench.data.open import open_datacube

    options = {k: v for k, v in options.items() if v is not None}
    if ref.data is not None:
        data = open_datacube(ref.data, **options)
    elif ref.assets is not None:
        data = open_datacube(dict(ref.assets), when=ref.when, **options)
    elif ref.files is not None:
        data = open_datacube(list(ref.files), **options)  # a list: band files, even just one
    else:
        assert ref.path is not None
        data = open_datacube(ref.path, **options)
    data.attrs.setdefault("scene_id", ref.id)
    return Scene(ref.id, data, dict(ref.properties), ref, options)
