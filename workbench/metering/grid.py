"""Grid carbon intensity, offline, from the data files that ship with codecarbon.

Country codes are checked against codecarbon's own ``global_energy_mix.json`` (the table its
``OfflineEmissionsTracker`` uses), read from disk without importing codecarbon, so a typo is an
error naming close matches instead of codecarbon's silent fallback to the world average.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from workbench.errors import MissingDependencyError
from workbench.metering._common import MeterConfigError

__all__ = [
    "GridIntensity",
    "WORLD_AVERAGE_G_PER_KWH",
    "WORLD_AVERAGE_SOURCE",
    "grid_intensity",
    "validate_location",
    "known_countries",
]

#: World-average grid intensity that codecarbon falls back to (its
#: ``carbon_intensity_per_source.json``), in gCO2eq/kWh.
WORLD_AVERAGE_G_PER_KWH = 475.0
WORLD_AVERAGE_SOURCE = (
    "IEA Global Energy & CO2 Status Report 2019 (world average 475 gCO2/kWh), as used by codecarbon"
)

# Common non-ISO names people type, mapped to the alpha-3 code codecarbon uses.
_ALIASES = {"UK": "GBR", "GB": "GBR", "US": "USA", "AU": "AUS", "NZ": "NZL", "EU": "(none)"}
# Per-kWh emissions codecarbon assigns to the fossil shares of a Canadian province's mix.
_CA_SOURCES_KG = {"coal": 0.995725971, "petroleum": 0.8166885263, "naturalGas": 0.7438415916}
_NORDIC = {
    "SWE": {"SE1", "SE2", "SE3", "SE4"},
    "NOR": {"NO1", "NO2", "NO3", "NO4", "NO5"},
    "FIN": {"FI"},
}


@dataclass(frozen=True)
class GridIntensity:
    """Carbon intensity of electricity at a place, with its source.

    Attributes
    ----------
    g_per_kwh : float
        Grams of CO2-equivalent per kWh.
    country_iso_code : str or None
        ISO 3166-1 alpha-3 code (``None`` for a user-given value).
    country_name, region : str or None
        Names as in codecarbon's data.
    source : str
        Where the number comes from.
    """

    g_per_kwh: float
    country_iso_code: str | None
    country_name: str | None
    region: str | None
    source: str

    def __repr__(self) -> str:
        where = self.country_iso_code or "given"
        if self.region:
            where += f"/{self.region}"
        return f"GridIntensity({self.g_per_kwh:.1f} gCO2eq/kWh, {where}; {self.source})"


@cache
def _data_dir() -> Path:
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "codecarbon is not installed and is required to look up grid carbon intensity by "
            "country. Install it with: pip install 'workbench[carbon]', or pass "
            "intensity_g_per_kwh=... explicitly."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "private_infra"


@cache
def _load(name: str) -> Any:
    with open(_data_dir() / name, encoding="utf-8") as f:
        return json.load(f)


def known_countries() -> dict[str, str]:
    """Return ``{alpha-3 code: country name}`` of every country codecarbon has data for.

    Examples
    --------
    >>> known_countries()["AUS"]
    'Australia'
    """
    mix = _load("global_energy_mix.json")
    return {code: row.get("country_name", code) for code, row in mix.items()}


def _close(value: str, countries: dict[str, str]) -> list[str]:
    up = value.strip().upper()
    hits: list[str] = []
    if up in _ALIASES and _ALIASES[up] in countries:
        hits.append(_ALIASES[up])
    hits += difflib.get_close_matches(up, list(countries), n=4, cutoff=0.6)
    by_name = {name.lower(): code for code, name in countries.items()}
    hits += [by_name[n] for n in difflib.get_close_matches(value.lower(), list(by_name), n=3)]
    seen: list[str] = []
    for h in hits:
        if h not in seen:
            seen.append(h)
    return seen[:5]


def _regions(code: str) -> dict[str, str]:
    """``{normalised region key: display name}`` of the regions codecarbon knows for a country."""
    if code == "USA":
        return {k: k for k in _load("2023/usa_emissions.json") if not k.startswith("_")}
    if code == "CAN":
        return {k: k for k in _load("2023/canada_energy_mix.json")}
    if code == "CHN":
        data = _load("2023/china_provincial_emissions.json")["data"]
        return {n: row["description"] for row in data.values() for n in row["names"]}
    if code in _NORDIC:
        return {k.lower(): k for k in _NORDIC[code]}
    return {}


def validate_location(country: str, region: str | None = None) -> tuple[str, str | None]:
    """Check a country (alpha-3 code or exact name) and optional region against codecarbon's data.

    Returns
    -------
    (code, region) : tuple
        The alpha-3 code and the region key as codecarbon expects it (lower case, or the
        Nordic bidding-zone code).

    Raises
    ------
    MeterConfigError
        For an unknown country or region; the message lists close matches.

    Examples
    --------
    >>> validate_location("aus")
    ('AUS', None)
    >>> validate_location("Australia")
    ('AUS', None)
    >>> validate_location("USA", "California")
    ('USA', 'california')
    >>> try:
    ...     validate_location("AU")
    ... except ValueError as err:
    ...     print(str(err)[:80])
    unknown country code 'AU': codecarbon's offline data (global_energy_mix.json, 21
    """
    if not isinstance(country, str) or not country.strip():
        raise MeterConfigError(
            f"country must be an ISO 3166-1 alpha-3 code like 'AUS', got {country!r}"
        )
    countries = known_countries()
    code = country.strip().upper()
    if code not in countries:
        by_name = {name.lower(): c for c, name in countries.items()}
        if country.strip().lower() in by_name:
            code = by_name[country.strip().lower()]
        else:
            close = ", ".join(f"{c!r} ({countries[c]})" for c in _close(country, countries))
            raise MeterConfigError(
                f"unknown country code {country!r}: codecarbon's offline data "
                f"(global_energy_mix.json, {len(countries)} countries) has no such ISO 3166-1 "
                f"alpha-3 code. Close matches: {close or 'none'}."
            )
    if region is None:
        return code, None
    regions = _regions(code)
    if not regions:
        raise MeterConfigError(
            f"codecarbon has no regional data for {code} (region={region!r}); regions exist only "
            "for USA (states), CAN (provinces), CHN (provinces) and SWE/NOR/FIN (bidding zones). "
            "Leave region=None to use the national figure."
        )
    key = region.strip().lower()
    if key in regions:
        return code, (regions[key] if code in _NORDIC else key)
    near = difflib.get_close_matches(key, list(regions), n=4, cutoff=0.5)
    raise MeterConfigError(
        f"unknown region {region!r} for {code}; close matches: "
        f"{', '.join(repr(regions[c]) for c in near) or 'none'}"
    )


def _country_g_per_kwh(row: dict[str, Any]) -> float:
    if row.get("carbon_intensity") is not None:
        return float(row["carbon_intensity"])
    per_source = _load("carbon_intensity_per_source.json")
    total = float(row["total_TWh"])
    g = 0.0
    for key, twh in row.items():
        if key.endswith("_TWh") and key[:-4] in per_source and total > 0:
            g += float(twh) / total * float(per_source[key[:-4]])
    return g


def grid_intensity(country: str, region: str | None = None) -> GridIntensity:
    """Return the grid carbon intensity codecarbon would apply offline for a country/region.

    Examples
    --------
    >>> g = grid_intensity("AUS")
    >>> round(g.g_per_kwh, 1), g.country_name
    (548.7, 'Australia')
    """
    code, reg = validate_location(country, region)
    row = _load("global_energy_mix.json")[code]
    name = row.get("country_name", code)
    year = row.get("year", "n.d.")
    if reg is None:
        return GridIntensity(
            _country_g_per_kwh(row),
            code,
            name,
            None,
            f"codecarbon global_energy_mix.json ({name}, {year}; Our World in Data / Ember)",
        )
    if code == "USA":
        lbs_per_mwh = float(_load("2023/usa_emissions.json")[reg]["emissions"])
        g = lbs_per_mwh * 0.45359237  # lb/MWh -> g/kWh
        src = "codecarbon usa_emissions.json (US EPA eGRID, lbs/MWh)"
    elif code == "CAN":
        mix = _load("2023/canada_energy_mix.json")[reg]
        g = 1000 * sum(mix.get(k, 0.0) / mix["total"] * v for k, v in _CA_SOURCES_KG.items())
        src = "codecarbon canada_energy_mix.json (provincial generation mix)"
    elif code == "CHN":
        data = _load("2023/china_provincial_emissions.json")["data"]
        row_cn = next(r for r in data.values() if reg in r["names"])
        g, src = (
            float(row_cn["emission_factor"]),
            "codecarbon china_provincial_emissions.json (MEE/NBS 2023)",
        )
    else:
        zone = _load("nordic_emissions.json")["data"][reg]
        g, src = float(zone["emission_factor"]), "codecarbon nordic_emissions.json (bidding zone)"
    return GridIntensity(g, code, name, reg, src)
