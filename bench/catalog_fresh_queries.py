"""A fresh held-out query set for the catalogue: other phrasings than bench/catalog_queries.py.

    python bench/catalog_fresh_queries.py [--out bench/queries/catalog_fresh.json]

Written (and committed) before any fusion change fitted after the first held-out half had been
looked at, so that half's numbers stopped being an honest held-out: the fusion may never be
fitted on this set, only reported on it (bench/catalog.py --queries). Relevance, as in
bench/catalog_queries.py, follows from fields of assets/catalog/products.jsonl only; the
templates, word orders, garment synonyms and adjectives differ from that set's, and any query
text that set already holds is dropped.

| kind | query (examples) | relevant |
|---|---|---|
| visual | "red gown", "baju terusan warna merah", "jumper in black" | category and colour |
| adjective | "tas tangan hitam murah", "stylish handbag in black", "merah ringan sepatu kets" | category and colour |
| mixed | "red baju terusan", "merah gown" (colour first, other synonyms) | category and colour |
| brand | "toko Minuet", "minuet official" (lower case too) | brand |
| brand_visual | "gown Minuet", "tas tangan by Nusapella" (garment first) | brand and category |
| brand_visual_colour | "Minuet red dress", "tas Nusapella hitam" | brand, category and colour (2+ items) |
| line | "lebaran koleksi", "eid" (reversed, or the line's own word alone) | that line |
| line_colour | "merah koleksi lebaran", "eid collection merah", "lebaran collection red" | line and colour |

Adjectives: mostly ones no title carries (baru/new, murah/cheap, keren/stylish, the demo model's
fillers), some that titles carry (ringan, nyaman, ...) in other places in the query. Line +
colour: the colour before the line, the colour in the other language than the line, or the
line named with a word of each language ("lebaran collection"), whose relevant items are both
language versions of that line in that colour (the user named the one line both ways).
Every query is in the "fresh" half.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalog_queries import KINDS as OLD_KINDS  # noqa: E402
from catalog_queries import load as load_old  # noqa: E402
from mmsearch.config import DEMO_CATALOG  # noqa: E402
from mmsearch.train.demo_catalog import BRANDS, LINES  # noqa: E402
from mmsearch.train.fashion import CLASSES, COLOURS  # noqa: E402

OUT = Path(__file__).parent / "queries" / "catalog_fresh.json"
MIN_RELEVANT = 3
MIN_RELEVANT_TRIPLE = 2  # brand + garment + colour: few groups reach 3 in 300 items
KINDS = (*OLD_KINDS[:5], "brand_visual_colour", *OLD_KINDS[5:])
HALF = "fresh"
# (Indonesian, English): not in any title (the demo model's fillers), then title adjectives
ADJECTIVES = [("murah", "cheap"), ("baru", "new"), ("keren", "stylish"),
              ("ringan", "light"), ("santai", "casual")]
EN_VISUAL = ["{c} {g}", "{g} in {c}", "{c} coloured {g}"]
ID_VISUAL = ["{g} warna {c}", "{g} {c}", "{c} {g}"]


def _groups(products: list[dict], key, least: int = MIN_RELEVANT) -> dict:
    out = defaultdict(set)
    for p in products:
        out[key(p)].add(p["id"])
    return {k: v for k, v in sorted(out.items()) if len(v) >= least}


def _other(names: list[str], n: int) -> str:
    """A synonym other than the first (the one the first set uses) where there is one."""
    return names[1 + n % (len(names) - 1)] if len(names) > 1 else names[0]


def build(products: list[dict], old: set[str] = frozenset()) -> dict[str, list[dict]]:
    names = {c[0]: (c[1], c[2]) for c in CLASSES}  # category -> (English names, Indonesian)
    line_of = {p["id"]: p["title"].rsplit(" - ", 1)[-1] for p in products}
    indonesian = {pair[0] for pair in LINES}
    other_line = {a: b for pair in LINES for a, b in (pair, pair[::-1])}
    sets: dict[str, list[tuple[str, set]]] = {kind: [] for kind in KINDS}
    for n, ((cls, colour), ids) in enumerate(
            _groups(products, lambda p: (p["category"], p["colour"])).items()):
        (en, idn), (c_en, c_id, _) = names[cls], COLOURS[colour]
        g_en, g_id = _other(en, n), _other(idn, n)
        sets["visual"] += [(EN_VISUAL[n % 3].format(c=c_en, g=g_en), ids),
                           (ID_VISUAL[n % 3].format(c=c_id, g=g_id), ids)]
        a_id, a_en = ADJECTIVES[n % len(ADJECTIVES)]
        sets["adjective"] += [
            ((f"{g_id} {c_id} {a_id}" if n % 2 else f"{c_id} {a_id} {g_id}"), ids),
            ((f"{a_en} {g_en} in {c_en}" if n % 2 else f"{g_en} {c_en} {a_en}"), ids)]
        sets["mixed"] += [(f"{c_en} {g_id}", ids), (f"{c_id} {g_en}", ids)]
    brands = _groups(products, lambda p: p["brand"])
    for n, brand in enumerate(BRANDS):
        sets["brand"] += [(f"toko {brand}" if n % 2 else f"merek {brand.lower()}", brands[brand]),
                          (f"{brand.lower()} official" if n % 2 else f"{brand} store",
                           brands[brand])]
    for n, ((brand, cls), ids) in enumerate(
            _groups(products, lambda p: (p["brand"], p["category"])).items()):
        en, idn = names[cls]
        sets["brand_visual"] += [(f"{_other(en, n)} {brand}", ids),
                                 (f"{_other(idn, n)} by {brand}" if n % 2 else
                                  f"{_other(idn, n)} {brand.lower()}", ids)]
    for n, ((brand, cls, colour), ids) in enumerate(_groups(
            products, lambda p: (p["brand"], p["category"], p["colour"]),
            MIN_RELEVANT_TRIPLE).items()):
        (en, idn), (c_en, c_id, _) = names[cls], COLOURS[colour]
        sets["brand_visual_colour"] += [(f"{brand} {c_en} {en[n % len(en)]}", ids),
                                        (f"{idn[n % len(idn)]} {brand} {c_id}", ids)]
    lines = _groups(products, lambda p: line_of[p["id"]])
    for pair in LINES:
        for line in pair:
            first, second = line.lower().split()
            own = second if line in indonesian else first  # "lebaran", "eid": its own word
            sets["line"] += [(f"{second} {first}", lines[line]), (own, lines[line])]
    by_line_colour = _groups(products, lambda p: (line_of[p["id"]], p["colour"]), 1)
    for n, ((line, colour), ids) in enumerate(by_line_colour.items()):
        if len(ids) < MIN_RELEVANT:
            continue
        same = COLOURS[colour][1 if line in indonesian else 0]
        cross = COLOURS[colour][0 if line in indonesian else 1]
        sets["line_colour"] += [(f"{same} {line.lower()}", ids), (f"{line.lower()} {cross}", ids)]
        if line in indonesian:  # the line named in both languages: both versions are meant
            both = ids | by_line_colour.get((other_line[line], colour), set())
            word = line.lower().split()[1]  # "lebaran"
            en_word = other_line[line].lower().split()[1 if n % 2 else 0]  # "collection"/"eid"
            sets["line_colour"].append((f"{word} {en_word} {COLOURS[colour][0]}", both))
    out = {}
    for kind, qs in sets.items():
        seen, kept = set(old), []
        for q, ids in qs:
            if q not in seen:
                seen.add(q)
                kept.append({"query": q, "half": HALF, "relevant": sorted(ids)})
        out[kind] = kept
    return out


def old_queries() -> set[str]:
    return {q["query"] for qs in load_old().values() for q in qs}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    products = [json.loads(line) for line in DEMO_CATALOG.read_text().splitlines()]
    kinds = build(products, old_queries())
    about = ("written by bench/catalog_fresh_queries.py from assets/catalog/products.jsonl "
             "before any fusion was fitted after it; only ever reported, never fitted on")
    body = ",\n".join(f' "{kind}": [\n' + ",\n".join(
        "  " + json.dumps(q, ensure_ascii=False) for q in qs) + "\n ]"
        for kind, qs in kinds.items())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f'{{"about": {json.dumps(about)},\n"kinds": {{\n{body}\n}}}}\n')
    for kind, qs in kinds.items():
        print(f"{kind}: {len(qs)} queries")


if __name__ == "__main__":
    main()
