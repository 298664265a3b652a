"""Every signal of a photo in one search: query sets per kind, each split into a tuning half and
a held-out half, searched by the picture vector alone, by the words (BM25) alone and fused.

    python bench/signals.py [--no-ocr] [--out bench/results/signals.json]

The library is built here, in a temporary folder, from the 300 demo pictures (colourised
Fashion-MNIST garments with known class and colour): trips as folders (`Liburan/Bali`,
`Keluarga/Ulang Tahun`), some files named with words (`pantai-kuta-03.jpg`), most
`IMG_0123.jpg`; EXIF GPS near six towns and four cameras written by Pillow into the JPEGs; and,
with OCR, the rendered pictures of bench/ocr_scenes.py (signs, receipts, screenshots, captions
in English and Indonesian, and photos without text) under `Camera`. Which pictures get which
name, folder, town or camera is drawn at random (seeded), independently of what they show, so
no signal can answer for another.

Query kinds and what counts as relevant: visual (a class, or colour + class, in English or
Indonesian -> the pictures of that class/colour), name (a word of file names -> the files
carrying it), folder (a trip's word -> its pictures), place (a town, region or country name ->
the photos taken within 3 km of that town), camera (a make -> its photos), words in the picture
(a scene's main printed word -> that scene: P@1), and mixed (a garment + a trip or a town, in
both languages -> the pictures that are both). The half of a query is fixed by a hash of its
text (`half()`), so nothing can be tuned on the held-out half. P@10 is the share of the top 10
that is relevant, out of min(10, relevant).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from PIL import Image  # noqa: E402

from indexer.pipeline import index_paths  # noqa: E402
from mmsearch.config import IndexLocation, ModelSpec  # noqa: E402
from mmsearch.encoder import Encoder  # noqa: E402
from mmsearch.search import Query, Searcher  # noqa: E402
from mmsearch.stores import open_index  # noqa: E402
from mmsearch.train.fashion import CLASSES, COLOURS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo"
TRIPS = {"Liburan/Bali": "bali", "Liburan/Lombok": "lombok", "Keluarga/Ulang Tahun": "ulang tahun",
         "Kerja/Jakarta": "jakarta", "Wisuda Dina": "wisuda", "Camera Roll": None}
# Name words clash with no town, trip, printed word or garment synonym (a "lari" would also be
# the visual query "sepatu lari").
NAMES = ["pesta taman", "air terjun", "gunung rinjani", "danau toba", "upacara adat",
         "main layangan", "nasi padang", "sarapan pagi", "naik perahu", "lomba renang"]
TOWNS = {"yogyakarta": (-7.7956, 110.3695), "denpasar": (-8.6705, 115.2126),
         "bandung": (-6.9175, 107.6191), "surabaya": (-7.2575, 112.7521),
         "paris": (48.8566, 2.3522), "tokyo": (35.6762, 139.6503)}
# The words a person means by each town's photos: its name, its region's, its country's.
TOWN_WORDS = {"yogyakarta": {"yogyakarta", "indonesia"},
              "denpasar": {"denpasar", "bali", "indonesia"},
              "bandung": {"bandung", "java", "indonesia"},
              "surabaya": {"surabaya", "java", "indonesia"},
              "paris": {"paris", "france"}, "tokyo": {"tokyo", "japan"}}
PLACE_QUERIES = ["yogyakarta", "denpasar", "bandung", "surabaya", "paris", "tokyo", "bali",
                 "java", "indonesia", "japan", "france"]
CAMERAS = {"canon": ("Canon", "Canon EOS R6"), "iphone": ("Apple", "iPhone 13"),
           "samsung": ("samsung", "SM-G991B"), "fujifilm": ("FUJIFILM", "X-T4")}
FLOORS = {"words_p1": 0.9, "place_p10": 0.9, "name_p10": 0.9, "folder_p10": 0.9,
          "hybrid_vs_best_single": -0.02}


def half(query: str) -> str:
    """"tune" or "held-out", fixed by the query's text."""
    return ("tune", "held-out")[hashlib.blake2b(query.encode(), digest_size=2).digest()[0] % 2]


def dms(value: float) -> tuple:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    return (float(d), float(m), round((value - d - m / 60) * 3600, 2))


def gps_ifd(lat: float, lon: float) -> dict:
    return {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}


def build_library(root: Path, rng: random.Random, ocr_scenes: bool) -> dict:
    """Write the library under root; returns the truth: per picture path, its facts."""
    labels = json.loads((DEMO / "labels.json").read_text())
    truth: dict[str, dict] = {}
    trips = list(TRIPS)
    for n, (name, label) in enumerate(sorted(labels.items())):
        trip = trips[n % len(trips)] if rng.random() < 0.8 else "Camera Roll"
        facts = {"class": label["class"], "colour": label["colour"], "trip": TRIPS[trip],
                 "name": None, "town": None, "camera": None}
        stem = f"IMG_{n:04d}"
        if rng.random() < 0.3:
            facts["name"] = rng.choice(NAMES)
            stem = f"{facts['name'].replace(' ', '-')}-{n:02d}"
        exif = Image.Exif()
        if rng.random() < 0.5:
            facts["town"] = rng.choice(list(TOWNS))
            lat, lon = TOWNS[facts["town"]]
            exif[0x8825] = gps_ifd(lat + rng.uniform(-0.02, 0.02), lon + rng.uniform(-0.02, 0.02))
        if rng.random() < 0.6:
            facts["camera"] = rng.choice(list(CAMERAS))
            exif[0x010F], exif[0x0110] = CAMERAS[facts["camera"]]
        folder = root / trip
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.jpg"
        Image.open(DEMO / name).convert("RGB").save(path, quality=92, exif=exif)
        truth[str(path)] = facts
    if ocr_scenes:
        sys.path.insert(0, str(ROOT / "bench"))
        from ocr_scenes import scenes

        (root / "Camera").mkdir()
        for scene in scenes():
            path = root / "Camera" / f"IMG_{9000 + len(truth):05d}.jpg"
            scene.image.convert("RGB").save(path, quality=90)
            truth[str(path)] = {"printed": scene.main, "printed_all": scene.words,
                                "class": None, "colour": None,
                                "trip": None, "name": None, "town": None, "camera": None}
    return truth


def said(facts: dict) -> set[str]:
    """The words a person would use for a picture's known facts (what it does not show)."""
    words = set()
    for key in ("trip", "name", "camera"):
        words |= set((facts.get(key) or "").split())
    words |= TOWN_WORDS.get(facts.get("town"), set())
    words |= {w.lower() for w in facts.get("printed_all") or ()}
    return words


def query_sets(truth: dict) -> dict[str, list[tuple[str, set[str]]]]:
    def where(**want):
        return {p for p, f in truth.items() if all(f.get(k) == v for k, v in want.items())}

    def saying(words: str, **want):
        return {p for p in where(**want) if set(words.split()) <= said(truth[p])}

    kinds: dict[str, list] = {k: [] for k in ("visual", "name", "folder", "place", "camera",
                                              "words", "mixed")}
    for cls, en, ind in CLASSES:
        kinds["visual"] += [(en[0], where(**{"class": cls})), (ind[0], where(**{"class": cls}))]
        colour = list(COLOURS)[len(kinds["visual"]) % len(COLOURS)]
        c_en, c_id, _ = COLOURS[colour]
        kinds["visual"] += [(f"{c_en} {en[0]}", where(**{"class": cls, "colour": colour})),
                            (f"{ind[0]} {c_id}", where(**{"class": cls, "colour": colour}))]
    for name in NAMES:
        kinds["name"] += [(name, saying(name)), (name.split()[1], saying(name.split()[1]))]
    kinds["folder"] = [(word, saying(word)) for word in filter(None, TRIPS.values())]
    kinds["place"] = [(word, saying(word)) for word in PLACE_QUERIES]
    kinds["camera"] = [(make, saying(make)) for make in CAMERAS]
    kinds["words"] = [(f["printed"].lower(), {p}) for p, f in truth.items() if f.get("printed")]
    for (cls, en, ind), trip, town in zip(CLASSES, ["bali", "lombok", "jakarta", "wisuda", "bali",
                                                    "lombok", "jakarta", "ulang tahun", "bali",
                                                    "lombok"], list(TOWNS) * 2):
        kinds["mixed"].append((f"{en[0]} {trip}", saying(trip, **{"class": cls})))
        kinds["mixed"].append((f"{ind[0]} di {town}", saying(town, **{"class": cls})))
    return {k: [(q, rel) for q, rel in v if rel] for k, v in kinds.items()}


def precision(hits: list[str], relevant: set[str], k: int = 10) -> float:
    return sum(h in relevant for h in hits[:k]) / min(k, len(relevant))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-ocr", action="store_true", help="leave the rendered text pictures out")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "signals.json")
    args = ap.parse_args(argv)
    ocr = not args.no_ocr and "ocr" in inspect.signature(index_paths).parameters
    encoder = Encoder(ModelSpec.parse("demo")).warm()
    work = Path(tempfile.mkdtemp(prefix="mmsearch-signals-"))
    try:
        truth = build_library(work / "Pictures", random.Random(16), ocr)
        location = IndexLocation.resolve(db=work / "index.db")
        t0 = time.time()
        with open_index(location, create_model=encoder.spec, dim=encoder.dim) as index:
            kwargs = {"ocr": True} if ocr else {}
            summary = index_paths([str(work / "Pictures")], index, encoder, progress=False,
                                  **kwargs)
            seconds = time.time() - t0
            searcher = Searcher(index, encoder)
            result = evaluate(searcher, query_sets(truth))
        result |= {"pictures": len(truth), "indexed": summary.added, "index_seconds":
                   round(seconds, 1), "ocr": ocr, "model": encoder.spec.label}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    return result


SIGNAL_MODES = {"picture": "picture", "words": "text", "hybrid": "hybrid"}


def evaluate(searcher: Searcher, kinds: dict) -> dict:
    table: dict = {}
    misses: list = []
    for kind, queries in kinds.items():
        for q, relevant in queries:
            for signal, mode in SIGNAL_MODES.items():
                try:
                    hits = [h.path for h in searcher.search(Query.of(texts=[q], mode=mode), 10)]
                except ValueError:  # no words in any text, for the words alone: nothing found
                    hits = []
                cell = table.setdefault(kind, {}).setdefault(half(q), {}).setdefault(
                    signal, {"p10": [], "p1": []})
                cell["p10"].append(precision(hits, relevant))
                cell["p1"].append(float(bool(hits) and hits[0] in relevant))
                if signal == "hybrid" and cell["p10"][-1] < 0.8:
                    misses.append({"kind": kind, "query": q, "p10": cell["p10"][-1],
                                   "relevant": len(relevant), "top": [
                                       Path(h).relative_to(Path(h).parents[2]).as_posix()
                                       for h in hits[:5]]})
    summary: dict = {}
    for kind, halves in table.items():
        for part, signals in halves.items():
            row = {s: {m: round(sum(v) / len(v), 3) for m, v in cell.items()}
                   for s, cell in signals.items()}
            row["queries"] = len(signals["hybrid"]["p10"])
            metric = "p1" if kind == "words" else "p10"
            row["hybrid_minus_best_single"] = round(
                row["hybrid"][metric] - max(row["picture"][metric], row["words"][metric]), 3)
            summary.setdefault(kind, {})[part] = row
    floors = {}
    for part in ("tune", "held-out"):
        for kind, metric, floor in (("words", "p1", "words_p1"), ("place", "p10", "place_p10"),
                                    ("name", "p10", "name_p10"), ("folder", "p10", "folder_p10")):
            if part in summary.get(kind, {}):
                floors[f"{kind} {metric} {part} >= {FLOORS[floor]}"] = \
                    summary[kind][part]["hybrid"][metric] >= FLOORS[floor]
        for kind in summary:
            if part in summary[kind]:
                floors[f"{kind} hybrid >= best single - 0.02 ({part})"] = \
                    summary[kind][part]["hybrid_minus_best_single"] >= FLOORS[
                        "hybrid_vs_best_single"]
    return {"kinds": summary, "floors_met": floors, "hybrid_misses": misses}


def print_table(result: dict) -> None:
    print(f"{'kind':8} {'half':9} {'n':>3}  {'picture':>7} {'words':>7} {'hybrid':>7}  metric")
    for kind, halves in result["kinds"].items():
        metric = "p1" if kind == "words" else "p10"
        for part, row in sorted(halves.items(), reverse=True):
            print(f"{kind:8} {part:9} {row['queries']:3d}  {row['picture'][metric]:7.3f} "
                  f"{row['words'][metric]:7.3f} {row['hybrid'][metric]:7.3f}  {metric}")
    failed = [k for k, ok in result["floors_met"].items() if not ok]
    print("floors:", "all met" if not failed else "NOT met: " + "; ".join(failed))


if __name__ == "__main__":
    main()
