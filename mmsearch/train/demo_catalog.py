"""Write the demo product catalogue: one product per demo picture, deterministic.

    python -m mmsearch.train.demo_catalog [--out assets/catalog/products.jsonl]

Each product gets an id, its picture (relative to the file), a title in Indonesian or
English that names the garment, its colour and the product line ("Koleksi Lebaran", "Office
edition", … — words no picture shows), an invented brand kept only in the `brand` field, a
price in rupiah, a rating and the category and colour as fields. bench/catalog.py measures
search on it; `mmsearch demo --catalog` serves it.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from mmsearch.config import DEMO_CATALOG, DEMO_PICTURES_DIR
from mmsearch.train.fashion import CLASSES, COLOURS

BRANDS = ["Minuet", "Kakikita", "Lumbara", "Sorai", "Tenunara", "Bayuwangi", "Cakrawala",
          "Nusapella"]
LINES = [("Koleksi Lebaran", "Eid Collection"), ("Edisi Kantor", "Office Edition"),
         ("Seri Pantai", "Beach Series"), ("Gaya Kampus", "Campus Style"),
         ("Promo Gajian", "Payday Deal")]
ADJECTIVES = [("ringan", "light"), ("nyaman", "comfortable"), ("santai", "casual"),
              ("klasik", "classic"), ("", "")]
BASE_PRICE = {"tshirt": 89_000, "trouser": 199_000, "pullover": 249_000, "dress": 299_000,
              "coat": 459_000, "sandal": 129_000, "shirt": 179_000, "sneaker": 389_000,
              "bag": 329_000, "boot": 499_000}


def product(n: int, name: str, label: dict, rng: random.Random) -> dict:
    cls = next(c for c in CLASSES if c[0] == label["class"])
    colour_en, colour_id, _ = COLOURS[label["colour"]]
    line_id, line_en = LINES[rng.randrange(len(LINES))]
    adj_id, adj_en = ADJECTIVES[rng.randrange(len(ADJECTIVES))]
    if n % 2 == 0:  # Indonesian title: garment, colour, adjective, line
        words = [rng.choice(cls[2]).title(), colour_id.title(), adj_id.title(), "-", line_id]
    else:
        words = [adj_en.title(), colour_en.title(), rng.choice(cls[1]).title(), "-", line_en]
    return {"id": f"SKU-{n:04d}", "image": f"../demo/{name}",
            "title": " ".join(w for w in words if w),
            "brand": BRANDS[rng.randrange(len(BRANDS))],
            "price": int(round(BASE_PRICE[label["class"]] * rng.uniform(0.7, 1.6), -3)),
            "rating": round(rng.uniform(3.5, 5.0), 1),
            "category": label["class"], "colour": label["colour"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=DEMO_CATALOG)
    args = ap.parse_args(argv)
    labels = json.loads((DEMO_PICTURES_DIR / "labels.json").read_text())
    rng = random.Random(0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for n, name in enumerate(sorted(labels)):
            f.write(json.dumps(product(n, name, labels[name], rng), ensure_ascii=False) + "\n")
    print(f"wrote {len(labels)} products to {args.out}")


if __name__ == "__main__":
    main()
