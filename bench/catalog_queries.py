"""The catalogue benchmark's query sets, written from the demo catalogue's own fields.

    python bench/catalog_queries.py [--out bench/queries/catalog.json]

Each query's relevant items follow from fields of assets/catalog/products.jsonl, never from
what any search returns; a set is kept only when it has at least MIN_RELEVANT items, and the
garment and colour words are the first English / Indonesian names the demo model was trained
with (mmsearch/train/fashion.py), so no word is picked for how well it scores.

| kind | query | relevant |
|---|---|---|
| visual | "a red dress", "gaun merah" | category and colour |
| adjective | "sepatu lari ringan merah", "light red sneaker" | category and colour |
| mixed | "gaun red", "dress merah" (one word Indonesian, one English) | category and colour |
| brand | "Minuet", "produk Minuet" | brand (a field no title or picture shows) |
| brand_visual | "Minuet dress", "Minuet gaun" | brand and category |
| line | "koleksi lebaran", "office edition" | the title ends with that line |
| line_colour | "koleksi lebaran merah", "office edition red" | that line and the colour |

An adjective query adds one of the titles' adjectives (ringan/light, nyaman/comfortable, ...,
in turn) to a visual one: titles carry them at random, as shop copy does, so they are not a
fact of the product and relevance stays the garment and colour (the words shoppers type
anyway, which the demo model was trained to look past). A product line is the words of the title: "Koleksi Lebaran" and "Eid Collection" are two
lines here (no signal could know they are one without a dictionary), and a line + colour
query names the colour in the line's language.

Halves: a query belongs to the held-out half when the first byte of blake2b(query text) is
odd, else to the tuning half; the fusion's constants are fitted on the tuning half only
(bench/catalog_tune.py) and the held-out half is only ever reported (bench/catalog.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsearch.config import DEMO_CATALOG  # noqa: E402
from mmsearch.train.demo_catalog import ADJECTIVES, BRANDS, LINES  # noqa: E402
from mmsearch.train.fashion import CLASSES, COLOURS  # noqa: E402

OUT = Path(__file__).parent / "queries" / "catalog.json"
MIN_RELEVANT = 3
KINDS = ("visual", "adjective", "mixed", "brand", "brand_visual", "line", "line_colour")
HALVES = ("tuning", "heldout")


def half(text: str) -> str:
    return HALVES[hashlib.blake2b(text.encode()).digest()[0] % 2]


def _groups(products: list[dict], key) -> dict:
    out = defaultdict(set)
    for p in products:
        out[key(p)].add(p["id"])
    return {k: v for k, v in sorted(out.items()) if len(v) >= MIN_RELEVANT}


def build(products: list[dict]) -> dict[str, list[dict]]:
    names = {c[0]: (c[1][0], c[2][0]) for c in CLASSES}  # category -> (English, Indonesian)
    line_of = {p["id"]: p["title"].rsplit(" - ", 1)[-1] for p in products}
    indonesian = {pair[0] for pair in LINES}
    sets: dict[str, list[tuple[str, set]]] = {kind: [] for kind in KINDS}
    adjectives = [a for a in ADJECTIVES if a[0]]
    for n, ((cls, colour), ids) in enumerate(
            _groups(products, lambda p: (p["category"], p["colour"])).items()):
        (g_en, g_id), (c_en, c_id, _) = names[cls], COLOURS[colour]
        a_id, a_en = adjectives[n % len(adjectives)]
        sets["adjective"] += [(f"{g_id} {a_id} {c_id}", ids), (f"{a_en} {c_en} {g_en}", ids)]
        article = "an" if c_en[0] in "aeiou" else "a"
        sets["visual"] += [(f"{article} {c_en} {g_en}", ids), (f"{g_id} {c_id}", ids)]
        sets["mixed"] += [(f"{g_id} {c_en}", ids), (f"{g_en} {c_id}", ids)]
    brands = _groups(products, lambda p: p["brand"])
    for brand in BRANDS:
        sets["brand"] += [(brand, brands[brand]), (f"produk {brand}", brands[brand])]
    for (brand, cls), ids in _groups(products, lambda p: (p["brand"], p["category"])).items():
        sets["brand_visual"] += [(f"{brand} {names[cls][0]}", ids),
                                 (f"{brand} {names[cls][1]}", ids)]
    lines = _groups(products, lambda p: line_of[p["id"]])
    sets["line"] = [(line.lower(), lines[line]) for pair in LINES for line in pair]
    for (line, colour), ids in _groups(products, lambda p: (line_of[p["id"]], p["colour"])).items():
        word = COLOURS[colour][1 if line in indonesian else 0]
        sets["line_colour"].append((f"{line.lower()} {word}", ids))
    return {kind: [{"query": q, "half": half(q), "relevant": sorted(ids)} for q, ids in qs]
            for kind, qs in sets.items()}


def load(path: Path = OUT) -> dict[str, list[dict]]:
    return json.loads(path.read_text())["kinds"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    products = [json.loads(line) for line in DEMO_CATALOG.read_text().splitlines()]
    kinds = build(products)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"about": "written by bench/catalog_queries.py from assets/catalog/products.jsonl; "
                    "relevance and halves as its docstring says", "kinds": kinds}
    # one query a line, so a diff shows which queries changed
    body = ",\n".join(f' "{kind}": [\n' + ",\n".join(
        "  " + json.dumps(q, ensure_ascii=False) for q in qs) + "\n ]"
        for kind, qs in kinds.items())
    args.out.write_text(f'{{"about": {json.dumps(doc["about"])},\n"kinds": {{\n{body}\n}}}}\n')
    for kind, qs in kinds.items():
        n = {h: sum(q["half"] == h for q in qs) for h in HALVES}
        print(f"{kind}: {len(qs)} queries ({n['tuning']} tuning, {n['heldout']} held out)")


if __name__ == "__main__":
    main()
