"""Offline reverse geocoding (mmsearch.places) beside reverse_geocode's own lookup.

    nice python bench/places.py [--rounds 3] [--points 20000] [--out bench/results/places.json]

1. Load, in fresh processes taking turns (ours, theirs, ours, ...): import + first lookup,
   scipy's import included, as the indexer pays it on its first photo with GPS.
2. Lookups per second, one point at a time, as photo_fields asks.
3. Agreement: for points up to 0.2 degrees from random towns, how often reverse_geocode's
   tree on raw (lat, lon) degrees names another town, region or country than the nearest
   on the sphere (ours), and how much farther its town is.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOAD = {
    "mmsearch.places": "from mmsearch.places import place_of; place_of(-8.5069, 115.2625)",
    "reverse_geocode.get": "import reverse_geocode; reverse_geocode.get((-8.5069, 115.2625))",
}


def fresh(code: str) -> float:
    timed = f"import time; t = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", timed], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def km(a: tuple, b: tuple) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(
        (lo2 - lo1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--points", type=int, default=20000)
    ap.add_argument("--out", default=str(ROOT / "bench/results/places.json"))
    args = ap.parse_args()

    loads: dict[str, list[float]] = {k: [] for k in LOAD}
    for _ in range(args.rounds):
        for name, code in LOAD.items():
            loads[name].append(fresh(code))

    import reverse_geocode
    from mmsearch.places import gazetteer

    theirs, ours = reverse_geocode.GeocodeData(), gazetteer()
    towns = theirs._locations
    rng = random.Random(1)
    points = []
    for _ in range(args.points):
        t = rng.choice(towns)
        points.append((t["latitude"] + rng.uniform(-.2, .2), t["longitude"] + rng.uniform(-.2, .2)))

    speed: dict[str, list[float]] = {"mmsearch.places": [], "reverse_geocode.get": []}
    chunk = points[:5000]
    for _ in range(args.rounds):
        t = time.perf_counter()
        for p in chunk:
            ours.nearest(*p)
        speed["mmsearch.places"].append(len(chunk) / (time.perf_counter() - t))
        t = time.perf_counter()
        for p in chunk:
            theirs.query([p])
        speed["reverse_geocode.get"].append(len(chunk) / (time.perf_counter() - t))

    town = region = country = 0
    farther = []
    for p in points:
        mine, other = ours.nearest(*p), theirs.query([p])[0]
        if mine.city != other["city"]:
            town += 1
            farther.append(km(p, (other["latitude"], other["longitude"])) - mine.km)
        region += mine.region != other.get("state", "")
        country += mine.country != other["country"] and other["country_code"] not in (
            "KR", "KP", "IR", "LY", "RU", "SY", "LA", "TZ", "MD", "CD", "FM", "VG", "VI", "BQ",
            "CZ", "MK", "BN", "SZ", "VA")  # our common names for these: not a disagreement
    farther.sort()
    result = {
        "towns": len(ours),
        "load_s_fresh_process": {k: {"median": round(statistics.median(v), 3),
                                     "runs": [round(x, 3) for x in v]} for k, v in loads.items()},
        "lookups_per_s": {k: round(statistics.median(v)) for k, v in speed.items()},
        "points": len(points),
        "degree_tree_differs": {"town": round(town / len(points), 4),
                                "region": round(region / len(points), 4),
                                "country": round(country / len(points), 4),
                                "extra_km_median": round(farther[len(farther) // 2], 2),
                                "extra_km_p95": round(farther[int(len(farther) * .95)], 2)},
        "note": "one machine, 2 shared cores, run with nice; load includes importing scipy",
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
