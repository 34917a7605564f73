"""Do regions differ? Variance between and within partitions, and errors per partition.

A partitioned ensemble can only beat one global model where partitions differ in a way the
inputs do not explain. :func:`variance_decomposition` splits the total sum of squares of a
quantity into a between-partition part (partition means around the grand mean) and a
within-partition part; the between share is the correlation ratio eta squared. Applied to the
target it says how much of it is regional; applied to the residuals of a global linear fit on
the inputs (:func:`linear_residuals`) it says how much of what the inputs leave unexplained is
regional, which is what per-partition models can pick up. :func:`partition_errors` gives the
held-out error of each partition, with its centre, for an error map.

Examples
--------
>>> d = variance_decomposition([1.0, 1.0, 3.0, 3.0], ["a", "a", "b", "b"])
>>> d["between_share"], d["within_share"], d["partitions"]
(1.0, 0.0, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import DimensionError

__all__ = ["variance_decomposition", "linear_residuals", "partition_errors"]


def variance_decomposition(
    values: Sequence[float] | np.ndarray[Any, Any], partitions: Sequence[str] | np.ndarray[Any, Any]
) -> dict[str, Any]:
    """Shares of the total sum of squares between and within partitions.

    Returns
    -------
    dict
        ``between_share`` + ``within_share`` = 1, ``total_variance``, ``partitions``, and the
        samples per partition (``min``, ``median``, ``max``).

    Raises
    ------
    DimensionError
        If the lengths differ or there are no values.
    """
    y = np.asarray(values, dtype=np.float64).ravel()
    g = np.asarray(partitions).ravel()
    if len(y) != len(g) or len(y) == 0:
        raise DimensionError(
            f"need one partition per value and at least one value; got {len(y)} values and "
            f"{len(g)} partitions"
        )
    codes, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    means = np.bincount(inv, weights=y) / counts
    total = float(((y - y.mean()) ** 2).sum())
    between = float((counts * (means - y.mean()) ** 2).sum())
    share = between / total if total > 0 else 0.0
    return {
        "between_share": share,
        "within_share": 1.0 - share,
        "total_variance": total / len(y),
        "partitions": len(codes),
        "samples_per_partition": {
            "min": int(counts.min()),
            "median": float(np.median(counts)),
            "max": int(counts.max()),
        },
    }


def linear_residuals(
    features: np.ndarray[Any, Any], target: Sequence[float] | np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Residuals of one least-squares linear fit (with intercept) of ``target`` on ``features``.

    Examples
    --------
    >>> x = np.arange(6.0)[:, None]
    >>> np.allclose(linear_residuals(x, 2 * x[:, 0] + 1), 0)
    True
    """
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = np.asarray(target, dtype=np.float64).ravel()
    design = np.column_stack([x, np.ones(len(x))])
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    out: np.ndarray[Any, Any] = y - design @ coef
    return out


def partition_errors(
    errors: Sequence[float] | np.ndarray[Any, Any],
    partitions: Sequence[str] | np.ndarray[Any, Any],
    lon: Sequence[float] | np.ndarray[Any, Any] | None = None,
    lat: Sequence[float] | np.ndarray[Any, Any] | None = None,
) -> pd.DataFrame:
    """Mean per-sample error per partition (``partition``, ``n``, ``error``, centre lon/lat).

    ``errors`` is one error per held-out sample (e.g. its squared error: ``error`` is then
    the partition's MSE).

    Examples
    --------
    >>> partition_errors([0.5, 0.5, 0.0], ["a", "a", "b"]).error.tolist()
    [0.5, 0.0]
    """
    frame = pd.DataFrame(
        {"partition": np.asarray(partitions).astype(str), "e": np.asarray(errors, dtype=float)}
    )
    agg: dict[str, Any] = {"n": ("e", "size"), "error": ("e", "mean")}
    if lon is not None and lat is not None:
        frame["lon"] = np.asarray(lon, dtype=np.float64)
        frame["lat"] = np.asarray(lat, dtype=np.float64)
        agg.update(lon=("lon", "mean"), lat=("lat", "mean"))
    return frame.groupby("partition", sort=True).agg(**agg).reset_index()
