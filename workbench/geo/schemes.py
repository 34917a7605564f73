"""Geocode schemes: one registry of their names, alphabets and precision limits.

Examples
--------
>>> get_scheme("quadkey").max_precision, get_scheme("geohash").alphabet[:4]
(45, '0123')
>>> get_scheme("geohash").encode(46.05, 14.5, 5)
'u24mc'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import Any

from workbench.errors import GeocodeError
from workbench.geo import geohash, quadkey

__all__ = ["GeocodeScheme", "SCHEMES", "get_scheme"]


@dataclass(frozen=True)
class GeocodeScheme:
    """A geocode scheme: its module (``encode``, ``decode``, ...), alphabet and longest code."""

    name: str
    module: ModuleType
    alphabet: str
    max_precision: int

    def encode(self, lat: Any, lon: Any, precision: int) -> Any:
        """Codes of length ``precision`` of points (scalars or arrays)."""
        return self.module.encode(lat, lon, precision)

    def check_precision(self, precision: Any) -> int:
        """Return ``precision`` as an int in ``1 .. max_precision``.

        Raises
        ------
        GeocodeError
            For anything else.
        """
        if isinstance(precision, bool) or not isinstance(precision, int):
            raise GeocodeError(
                f"{self.name} precision must be an integer in 1..{self.max_precision}, "
                f"got {precision!r}"
            )
        if not 1 <= precision <= self.max_precision:
            raise GeocodeError(
                f"{self.name} precision must be an integer in 1..{self.max_precision}, "
                f"got {precision!r}"
            )
        return precision


#: The schemes by name.
SCHEMES: Mapping[str, GeocodeScheme] = MappingProxyType(
    {
        "geohash": GeocodeScheme("geohash", geohash, geohash.BASE32, geohash.MAX_PRECISION),
        "quadkey": GeocodeScheme("quadkey", quadkey, "0123", quadkey.MAX_ZOOM),
    }
)


def get_scheme(name: str) -> GeocodeScheme:
    """Return the scheme called ``name`` (case-insensitive).

    Raises
    ------
    GeocodeError
        For an unknown name (the message lists the known ones).
    """
    found = SCHEMES.get(str(name).lower()) if isinstance(name, str) else None
    if found is None:
        raise GeocodeError(f"unknown geocode scheme {name!r}; use one of {tuple(SCHEMES)}")
    return found
