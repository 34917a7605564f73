"""Exceptions raised by workbench.

Every error derives from :class:`WorkbenchError` and from the builtin that matches
its meaning, so ``except ValueError`` keeps working for users who do not know
about workbench. Messages say what was expected, what was given and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "WorkbenchError",
    "MissingDependencyError",
    "GPUUnavailableError",
    "DimensionError",
    "ChipSpecError",
    "CompositeError",
    "CRSError",
    "AOIError",
    "DataReadError",
    "EmptyChipError",
    "GeocodeError",
    "QueryError",
    "CatalogError",
    "LaunchError",
    "HostNetworkError",
    "EngineDiedError",
    "TrainingTimeoutError",
    "TrainingError",
    "MeterError",
    "MeterConfigError",
    "PreviewError",
    "WorkbenchWarning",
    "BandFilesWarning",
]


class WorkbenchError(Exception):
    """Base class of every error raised by workbench."""


class MissingDependencyError(WorkbenchError, ImportError):
    """An optional dependency is needed for this feature but is not installed."""


class GPUUnavailableError(WorkbenchError, RuntimeError):
    """A GPU route was requested explicitly but no usable CUDA device is present."""


class DimensionError(WorkbenchError, ValueError):
    """A dimension name is unknown, missing or used inconsistently."""


class ChipSpecError(WorkbenchError, ValueError):
    """Chip sizes or overlaps do not fit the data (too large, overlap >= size, ...)."""


class CompositeError(WorkbenchError, ValueError):
    """An option of a composite, mosaic, cloud mask or resampling is not one it takes."""


class CRSError(WorkbenchError, ValueError):
    """A coordinate reference system is missing, unknown or does not match."""


class AOIError(WorkbenchError, ValueError):
    """An area of interest is malformed or does not overlap the data."""


class DataReadError(WorkbenchError, OSError):
    """A file or store could not be opened or decoded."""


class EmptyChipError(WorkbenchError, ValueError):
    """A chip or selection holds no valid pixel (empty or all-NaN)."""


class GeocodeError(WorkbenchError, ValueError):
    """A geocode (geohash, quadkey) or a coordinate given to encode one is invalid."""


class QueryError(WorkbenchError, ValueError):
    """A catalog query has an invalid predicate."""


class CatalogError(WorkbenchError, RuntimeError):
    """A catalog could not be read, written or ingested into."""


class LaunchError(WorkbenchError, RuntimeError):
    """A cluster or a distributed training run could not be started."""


class HostNetworkError(LaunchError):
    """Namespaced hosts (network namespaces, links, shaping) could not be set up or used."""


class EngineDiedError(LaunchError):
    """A cluster engine stopped responding or died while it was working."""


class TrainingTimeoutError(LaunchError, TimeoutError):
    """A run did not finish within its ``--timeout``; the workers were stopped."""


class TrainingError(WorkbenchError, RuntimeError):
    """Training failed: non-finite loss, diverged replicas, bad model outputs."""


class MeterError(WorkbenchError, RuntimeError):
    """A throughput or carbon meter could not measure."""


class MeterConfigError(MeterError, ValueError):
    """A meter was configured with a bad value (unknown country, negative price, ...)."""


class PreviewError(WorkbenchError, ValueError):
    """A preview (thumbnail, map overlay) cannot be rendered with the given options."""


class WorkbenchWarning(UserWarning):
    """Base class of the warnings workbench issues (what it did, and what to do instead)."""


class BandFilesWarning(WorkbenchWarning):
    """Files that look like bands of one scene are being handled one by one."""
