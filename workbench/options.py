"""Global options, set with :func:`set_options` like :func:`xarray.set_options`."""

from __future__ import annotations

from typing import Any

__all__ = ["OPTIONS", "set_options", "get_options"]

OPTIONS: dict[str, Any] = {
    # "auto" takes the GPU route when a CUDA device and the gpu extra are present.
    "device": "auto",
    # Progress bars on long work (ingest, benchmarks, training); off in batch jobs if wanted.
    "progress": True,
    # Bytes of decoded chunks kept by a chip stream; bounds memory whatever the store size.
    "chunk_cache_bytes": 256 * 2**20,
    # Chip streams decode lazily opened Zarr chunks with Zarr's synchronous codecs.
    "zarr_sync_reads": True,
    # Training workers read a ChipSet smaller than this into memory once; larger ones stream.
    "train_in_memory_bytes": 256 * 2**20,
}

_VALIDATORS: dict[str, Any] = {
    "device": lambda v: v in ("auto", "cpu", "cuda"),
    "progress": lambda v: isinstance(v, bool),
    "chunk_cache_bytes": lambda v: isinstance(v, int) and v > 0,
    "zarr_sync_reads": lambda v: isinstance(v, bool),
    "train_in_memory_bytes": lambda v: isinstance(v, int) and v >= 0,
}


def get_options() -> dict[str, Any]:
    """Return a copy of the current options.

    Examples
    --------
    >>> get_options()["device"]
    'auto'
    """
    return dict(OPTIONS)


class set_options:
    """Set options globally, or for a ``with`` block.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        Where arrays are computed and chips are delivered.
    progress : bool
        Whether long operations show progress bars.
    chunk_cache_bytes : int
        Upper bound of decoded chunk bytes a chip stream keeps in memory.
    zarr_sync_reads : bool
        Whether chip streams decode lazily opened Zarr chunks in their reader threads
        with Zarr's synchronous codecs (:mod:`workbench.data.zarr_sync`), rather than
        through xarray and Zarr's event loop. Same values; many times less overhead
        per read. Arrays without a synchronous path use xarray either way.
    train_in_memory_bytes : int
        Training workers read a ChipSet (their share of it) into memory once when it is
        smaller than this (256 MiB); a larger one is streamed from its store every epoch,
        shuffled across the whole store. ``0`` always streams.

    Raises
    ------
    ValueError
        For an unknown option or an invalid value.

    Examples
    --------
    >>> with set_options(device="cpu"):
    ...     get_options()["device"]
    'cpu'
    >>> get_options()["device"]
    'auto'
    """

    def __init__(self, **kwargs: Any) -> None:
        self._old: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key not in OPTIONS:
                raise ValueError(f"unknown option {key!r}; valid options are {sorted(OPTIONS)}")
            if not _VALIDATORS[key](value):
                raise ValueError(f"invalid value {value!r} for option {key!r}")
            self._old[key] = OPTIONS[key]
        OPTIONS.update(kwargs)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        OPTIONS.update(self._old)
