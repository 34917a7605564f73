"""The persistent catalog: GeoParquet records, indexed queries, and reading pieces back."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from workbench._files import write_text
from workbench._optional import lazy_import
from workbench._typing import PathLike
from workbench.catalog.index import CatalogIndex
from workbench.catalog.ingest import IngestOptions, expand_sources, scene_records, scenes_of
from workbench.catalog.query import Query, build_query, scan
from workbench.catalog.records import (
    Location,
    PartitionRecord,
    check_frame,
    properties_json,
    records_frame,
)
from workbench.catalog.sources import clean_assets
from workbench.catalog.store import read_catalog, write_catalog
from workbench.errors import CatalogError, DataReadError
from workbench.geo.crs import spatial_dims
from workbench.options import get_options

__all__ = ["Catalog"]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock (POSIX ``flock``) on ``.<catalog>.lock``."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: single writer assumed
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Catalog:
    """A persistent catalog of geocode pieces of rasters, stored as one GeoParquet file.

    Parameters
    ----------
    path : str or Path
        The catalog file (``*.parquet``), or a folder that holds ``catalog.parquet``. Cubes
        ingested from memory are stored beside it in ``assets/``. The file need not exist yet.

    Notes
    -----
    Records and their columns are described in :mod:`workbench.catalog.records`; query
    predicates in :mod:`workbench.catalog.query`. Every write is atomic
    (:mod:`workbench.catalog.store`). The whole catalog is held in memory with its indexes;
    a million records take about half a GB.

    Examples
    --------
    >>> import tempfile
    >>> from workbench.data.synthetic import s2_like
    >>> cat = Catalog(tempfile.mkdtemp())
    >>> added = cat.ingest(s2_like(time=2, y=32, x=32), dataset="demo", precision=6)
    >>> len(cat) == len(added), cat.datasets
    (True, ['demo'])
    >>> clear = cat.query(max_cloud=50, min_pixel_coverage=10)
    >>> bool((clear.cloud_cover <= 50).all())
    True
    """

    def __init__(self, path: PathLike) -> None:
        p = Path(path)
        self.path = p if p.suffix == ".parquet" else p / "catalog.parquet"
        self.root = self.path.parent
        self._frame = self._read()
        self._index: CatalogIndex | None = None

    # -- state ---------------------------------------------------------------------------------
    def _read(self) -> pd.DataFrame:
        if self.path.exists():
            return read_catalog(self.path)
        return records_frame([])

    def reload(self) -> None:
        """Re-read the file (e.g. after another process wrote it)."""
        self._frame = self._read()
        self._index = None

    @property
    def records(self) -> pd.DataFrame:
        """All records (a copy), sorted by geocode, datetime and id."""
        return self._frame.copy()

    @property
    def datasets(self) -> list[str]:
        """Names of the datasets in the catalog, sorted."""
        return sorted(self._frame["dataset"].unique().tolist())

    @property
    def index(self) -> CatalogIndex:
        """The in-memory query index (built on first use)."""
        if self._index is None:
            self._index = CatalogIndex.from_frame(self._frame)
        return self._index

    def __len__(self) -> int:
        return len(self._frame)

    def __repr__(self) -> str:
        return f"<Catalog {self.path} with {len(self)} records of {self.datasets}>"

    # -- writing -------------------------------------------------------------------------------
    def add(self, records: pd.DataFrame | Sequence[PartitionRecord]) -> None:
        """Insert or replace (by ``id``) records, and write the catalog atomically."""
        new = records if isinstance(records, pd.DataFrame) else records_frame(list(records))
        new = check_frame(new)
        with _locked(self.path):
            current = self._read()  # merge with what is on disk now, not what we loaded
            kept = current[~current["id"].isin(new["id"])]
            merged = check_frame(pd.concat([kept, new], ignore_index=True)) if len(kept) else new
            write_catalog(merged, self.path, checked=True)
        self._frame, self._index = merged, None

    def ingest(
        self,
        source: Any,
        dataset: str | None = None,
        properties: Mapping[str, Any] | None = None,
        *,
        scheme: str = "geohash",
        precision: int = 6,
        cloud_mask: Any = "auto",
        variables: Sequence[str] | None = None,
        time_dim: str = "time",
        datetime: Any = None,
        resolution: float | str | None = None,
        bands: Sequence[str] | None = None,
        **spectral: Any,
    ) -> pd.DataFrame:
        """Partition sources by geocode, measure every piece, and add the records.

        Parameters
        ----------
        source : path, glob pattern, xarray object, STAC Item, Collection, or a list of them
            Band files of a scene (a folder, a list or a glob of them: one scene, never one
            dataset per band; Sentinel-2 / Landsat naming or any, see
            :func:`workbench.open_datacube`), STAC Items (dict or JSON file), a folder of scene
            folders, multi-band GeoTIFF/COG files (one date each; bands from their
            descriptions; date from the ``DATETIME`` tag or the file name; a ``*_CLM_*`` mask
            beside its image is that image's cloud cover, not a scene), NetCDF/Zarr files or
            in-memory cubes with a ``time_dim``, or a :class:`~workbench.chips.Collection`.
            Cubes are written to ``assets/`` once (content-addressed); files stay where they are.
        dataset : str, optional
            Dataset name; default: the product (``sentinel-2-l2a``, ``LE07_L2SP``), the STAC
            ``collection``, the file stem without its date (``S2_L1C``), or the cube's
            ``attrs["dataset"]``.
        properties : mapping, optional
            What you know about the source (labels, tile id, processing level...): any JSON-able
            dict, stored with every record (merged over a STAC Item's or a ``*labels*.json``'s
            properties) and queryable with ``query(properties=...)``.
        scheme : {"geohash", "quadkey"}
            Geocode scheme.
        precision : int
            Geohash length or quadkey zoom of the pieces.
        cloud_mask : "auto", str, None or False
            ``"auto"``: the provider's mask in the scene (SCL, QA_PIXEL, QA60, MSK_CLDPRB, a
            ``cloud_mask`` variable), a sibling ``*_CLM_*`` GeoTIFF, else the spectral tests; a
            variable name; ``None``: always the spectral test; ``False``: no cloud cover (NaN).
        variables : sequence of str, optional
            Variables of a cube / NetCDF / Zarr to catalogue (default: all with spatial dims).
        time_dim : str
            Time dimension of cubes.
        datetime : optional
            Acquisition time for sources that have none.
        resolution : float or str, optional
            Grid of band files of different resolutions (default ``"finest"``: the finest
            band's grid); see :func:`workbench.open_datacube`.
        bands : sequence of str, optional
            Bands of band files to catalogue (default all).
        **spectral
            Options of the spectral tests (``bands=``, ``scale=``, ``band_dim=``).

        Returns
        -------
        pandas.DataFrame
            The records written by this call. Ingesting the same input again gives the same ids
            and the same catalog (records are replaced, not duplicated).

        Raises
        ------
        DataReadError, CatalogError
            On an unreadable source, properties that are not JSON, or a failed write; the catalog
            on disk is then unchanged (all records of one call are written in one atomic replace).

        Warns
        -----
        BandFilesWarning
            A single file that is one band of a scene whose other bands lie beside it.
        """
        props = properties_json(properties)
        options = IngestOptions(
            dataset=dataset, scheme=scheme, precision=precision, cloud_mask=cloud_mask,
            variables=tuple(variables) if variables else None, time_dim=time_dim,
            datetime=datetime, spectral=tuple(sorted(spectral.items())), properties=props,
            resolution=resolution, bands=tuple(bands) if bands else None,
        )  # fmt: skip
        from tqdm.auto import tqdm

        clean_assets(self.root / "assets")  # what an interrupted ingest left half-written
        items = expand_sources(source)
        records: list[PartitionRecord] = []
        bar = tqdm(
            total=len(items), desc="ingest", unit="source", disable=not get_options()["progress"]
        )
        try:
            for item in items:
                for scene in scenes_of(item, options, self.root / "assets", self.root):
                    records += scene_records(scene, options)
                bar.update(1)
        finally:
            bar.close()
        frame = records_frame(records)
        frame = frame.drop_duplicates("id", keep="last") if len(frame) else frame
        self.add(frame)
        return frame

    # -- STAC --------------------------------------------------------------------------------
    def to_stac(self, path: PathLike | None = None, records: pd.DataFrame | None = None) -> Any:
        """Return the records as STAC Items (a ``pystac.ItemCollection``, one Item per record).

        Parameters
        ----------
        path : str or Path, optional
            Also write the collection there as GeoJSON (atomically).
        records : DataFrame, optional
            Rows to export (e.g. a query result; default: all).

        Returns
        -------
        pystac.ItemCollection
            Items with the footprint, datetime, ``collection`` (the dataset), ``eo:cloud_cover``,
            ``proj:epsg``, the user's properties, ``workbench:*`` fields and the files as
            assets (see :mod:`workbench.catalog.stac`).
        """
        pystac = lazy_import("pystac", extra="io", purpose="writing STAC Items")
        from workbench.catalog.stac import records_to_items

        rows = self._frame if records is None else records
        collection = pystac.ItemCollection(records_to_items(rows, self.root))
        if path is not None:
            write_text(path, json.dumps(collection.to_dict(transform_hrefs=False), indent=1))
        return collection

    @classmethod
    def from_stac(cls, items: Any, path: PathLike | None = None, **ingest: Any) -> Catalog:
        """Build a catalog of STAC Items (what :meth:`to_stac` wrote, or a user's own).

        Items :meth:`to_stac` wrote come back as the records they were (no pixel read); others
        (band assets, a user's STAC) are ingested as scenes.

        Parameters
        ----------
        items : ItemCollection, Items, dicts, or JSON file(s) of an Item or a FeatureCollection
            The Items.
        path : str or Path, optional
            Where the catalog is written (default: a new temporary folder).
        **ingest
            Options of :meth:`ingest` for the Items to ingest (``dataset=``, ``precision=``...).
        """
        import tempfile

        from workbench.catalog.stac import rows_from_items

        catalog = cls(tempfile.mkdtemp(prefix="workbench-catalog-") if path is None else path)
        rows, foreign = rows_from_items(items)
        if rows:
            catalog.add(records_frame(rows))
        if foreign:
            catalog.ingest(foreign, **ingest)
        return catalog

    def stage(
        self,
        ring: Any,
        root: PathLike,
        *,
        records: pd.DataFrame | None = None,
        prefix_len: int | None = None,
    ) -> dict[str, Any]:
        """Copy each partition's pieces to the node that owns it on ``ring`` (DHT staging).

        ``root/<node>`` gets the node's pieces and a catalog of them; see
        :func:`workbench.catalog.stage.stage_catalog` for the parameters and result.
        """
        from workbench.catalog.stage import stage_catalog

        return dict(stage_catalog(self, ring, root, records=records, prefix_len=prefix_len))

    # -- reading -------------------------------------------------------------------------------
    def query(
        self,
        time: tuple[Any, Any] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        geocode: str | None = None,
        recursive: bool = True,
        max_cloud: float | None = None,
        min_pixel_coverage: float | None = None,
        dataset: str | Sequence[str] | None = None,
        *,
        max_snow: float | None = None,
        properties: Mapping[str, Any] | None = None,
        method: Literal["index", "scan"] = "index",
    ) -> pd.DataFrame:
        """Return the records matching every predicate (see :mod:`workbench.catalog.query`).

        ``max_snow`` bounds the snow cover like ``max_cloud`` the cloud cover;
        ``properties={"labels": "Mixed forest"}`` matches stored properties by equality, or by
        membership when the stored value is a list. ``method="scan"`` evaluates by a full
        pandas scan instead of the index (same result).

        Raises
        ------
        QueryError
            For a bad predicate, with the fix in the message.
        """
        q = self.build_query(
            time, bbox, geocode, recursive, max_cloud, min_pixel_coverage, dataset,
            max_snow=max_snow, properties=properties,
        )  # fmt: skip
        rows = self.index.search(q) if method == "index" else np.flatnonzero(scan(self._frame, q))
        return self._frame.iloc[rows].reset_index(drop=True)

    def build_query(self, *args: Any, **kwargs: Any) -> Query:
        """Validate predicates against this catalog (known datasets, geocode schemes)."""
        return build_query(
            *args,
            **kwargs,
            known_datasets=self.datasets,
            schemes=self._frame["scheme"].unique().tolist(),
        )

    def _href(self, loc: Location) -> str:
        return loc.href if os.path.isabs(loc.href) else str(self.root / loc.href)

    def _piece(self, row: pd.Series, cache: dict[str, xr.Dataset]) -> xr.Dataset:
        from workbench.data import open_datacube

        loc = Location.from_json(row["location"])
        href = self._href(loc)
        key = href if not loc.assets else json.dumps([dict(loc.assets), dict(loc.options)])
        if key not in cache:
            try:
                if loc.assets:
                    cache[key] = open_datacube(dict(loc.assets), **dict(loc.options))
                else:
                    cache[key] = open_datacube(href, variables=list(loc.variables) or None)
            except (FileNotFoundError, DataReadError) as exc:
                raise CatalogError(
                    f"record {row['id']} points to {href or dict(loc.assets)}, which cannot be "
                    f"read: {exc}"
                ) from exc
        piece = cache[key].isel(loc.slices())
        if loc.assets:  # the record's band order (a mapping's keys are stored sorted)
            piece = piece[[b for b in row["bands"] if b in piece.data_vars]]
        if "time" in piece.coords and piece["time"].ndim == 0:
            piece = piece.drop_vars("time")
        spatial = {str(d) for d in spatial_dims(piece)}
        for d in [d for d in loc.isel if d not in spatial]:  # the source's own time dim
            piece = piece.squeeze(d, drop=True)
        when = row["datetime"]
        stamp = None if pd.isna(when) else np.datetime64(pd.Timestamp(when).tz_convert(None), "ns")
        piece = piece.expand_dims(time=[stamp if stamp is not None else np.datetime64("NaT", "ns")])
        piece = piece.assign_coords(id=("time", [row["id"]]), geocode=("time", [row["geocode"]]))
        piece.attrs.update(dataset=row["dataset"], geocode=row["geocode"], crs=row["crs"])
        if row.get("scene"):
            piece.attrs["scene_id"] = f"{row['scene']}:{row['geocode']}"
        if row.get("properties", "{}") != "{}":
            piece.attrs["properties"] = row["properties"]
        return piece

    def open(
        self,
        result: pd.DataFrame | pd.Series | str | Sequence[str],
        *,
        stack: bool | Literal["auto"] = "auto",
    ) -> xr.Dataset | list[xr.Dataset]:
        """Read the pixels of query results.

        Parameters
        ----------
        result : DataFrame, Series, id or list of ids
            Rows of :meth:`query` (or ids).
        stack : bool or "auto"
            Every piece has a ``time`` dim of size 1 and ``id``/``geocode`` coordinates along it.
            ``"auto"``: one row gives that piece; several rows that share a grid (same geocode
            window of the same pixel lattice: equal x/y coordinates) and variables give one
            Dataset concatenated on ``time`` in row order; otherwise a list of pieces in row
            order. ``True`` raises if they cannot be stacked; ``False`` always gives a list.

        Raises
        ------
        CatalogError
            Unknown ids, missing files, or ``stack=True`` on pieces of different grids.
        """
        rows = self._rows(result)
        cache: dict[str, xr.Dataset] = {}
        pieces = [self._piece(row, cache) for _, row in rows.iterrows()]
        if stack is False:
            return pieces
        same = len(pieces) > 0 and all(_same_grid(pieces[0], p) for p in pieces[1:])
        if not same:
            if stack is True:
                raise CatalogError(
                    "the pieces are on different grids (geocodes or sources); open them with "
                    "stack=False, or combine them with workbench.composites.mosaic"
                )
            return pieces
        return (
            pieces[0]
            if len(pieces) == 1
            else xr.concat(pieces, "time", combine_attrs="drop_conflicts")
        )

    def _rows(self, result: pd.DataFrame | pd.Series | str | Sequence[str]) -> pd.DataFrame:
        if isinstance(result, pd.DataFrame):
            return result
        if isinstance(result, pd.Series):
            return result.to_frame().T
        ids = [result] if isinstance(result, str) else list(result)
        rows = self._frame.set_index("id", drop=False)
        missing = [i for i in ids if i not in rows.index]
        if missing:
            raise CatalogError(f"unknown record ids {missing[:3]}; query the catalog for valid ids")
        return rows.loc[ids].reset_index(drop=True)


def _same_grid(a: xr.Dataset, b: xr.Dataset) -> bool:
    if sorted(map(str, a.data_vars)) != sorted(map(str, b.data_vars)) or dict(a.sizes) != dict(
        b.sizes
    ):
        return False
    for name, coord in a.coords.items():
        if name in ("time", "id", "geocode") or coord.ndim != 1:
            continue
        if name not in b.coords or not np.array_equal(coord.values, b.coords[name].values):
            return False
    return True
