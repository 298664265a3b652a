"""Catalogue search quality: picture-only, text-only and hybrid search side by side.

    python bench/catalog.py [--out bench/results/catalog.json]

The demo catalogue (assets/catalog: 300 held-out Fashion-MNIST test pictures with invented
titles, brands and prices) is imported with the embedded model, then three kinds of query are
run in each mode and scored by P@10:

- visual: colour + garment, English and Indonesian ("a red dress", "gaun merah"); relevant =
  same garment and colour (P@10 is out of min(10, number of relevant items));
- title: the product line, words only the titles carry ("koleksi lebaran", "office edition");
- brand: the brand alone ("Minuet"), kept only in the item's `brand` field.

Modes: picture (CLIP text query vs picture vectors), text (title vectors + BM25, fused), and
hybrid: mmsearch's adaptive weighted fusion (mmsearch/catalog.py), then for comparison Milvus's
RRF ranker over all three lists and fixed weights. Also times the import (items/s) and the
hybrid text query (ms).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from indexer.catalog import import_catalog  # noqa: E402
from mmsearch.fusion import CANDIDATES, LEXICAL_MAX, SHARPNESS  # noqa: E402
from mmsearch.search import Query, Searcher  # noqa: E402
from mmsearch.config import DEMO_CATALOG, IndexLocation, ModelSpec  # noqa: E402
from mmsearch.encoder import Encoder  # noqa: E402
from mmsearch.stores import open_index  # noqa: E402
from mmsearch.train.demo_catalog import BRANDS, LINES  # noqa: E402
from mmsearch.train.fashion import CLASSES, COLOURS  # noqa: E402

K = 10
# fixed (picture vectors, title vectors, BM25) weights to compare with the adaptive fusion
WEIGHT_GRID = [(0.34, 0.33, 0.33), (0.3, 0.2, 0.5), (0.5, 0.0, 0.5), (0.9, 0.0, 0.1)]


def query_sets(products: list[dict]) -> dict[str, list[tuple[str, set[str]]]]:
    pairs = Counter((p["category"], p["colour"]) for p in products)
    visual = []
    for (cls, colour), n in sorted(pairs.items()):
        if n < 3:
            continue
        names = next(c for c in CLASSES if c[0] == cls)
        relevant = {p["id"] for p in products if (p["category"], p["colour"]) == (cls, colour)}
        visual.append((f"a {COLOURS[colour][0]} {names[1][0]}", relevant))
        visual.append((f"{names[2][0]} {COLOURS[colour][1]}", relevant))
    title = [(line, {p["id"] for p in products if p["title"].endswith(line)})
             for pair in LINES for line in pair]
    brand = [(b, {p["id"] for p in products if p["brand"] == b}) for b in BRANDS]
    return {"visual": visual, "title": title, "brand": brand}


def precision(searcher: Searcher, queries, **kwargs) -> float:
    scores = []
    for text, relevant in queries:
        hits = searcher.search(Query.of(texts=[text], **kwargs), K)
        scores.append(sum(h.key in relevant for h in hits) / min(K, len(relevant)))
    return round(sum(scores) / len(scores), 4)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "catalog.json")
    args = ap.parse_args(argv)
    products = [json.loads(line) for line in DEMO_CATALOG.read_text().splitlines()]
    spec = ModelSpec.parse("demo")
    encoder = Encoder(spec).warm()
    with tempfile.TemporaryDirectory() as tmp:
        index = open_index(IndexLocation.resolve(db=Path(tmp) / "cat.db"), model=spec,
                           create_model=spec, dim=encoder.dim, kind="catalog")
        t0 = time.perf_counter()
        summary = import_catalog(DEMO_CATALOG, index, encoder, progress=False)
        import_s = time.perf_counter() - t0
        searcher = Searcher(index, encoder)
        sets = query_sets(products)
        modes = {"picture only": {"mode": "picture"},
                 "text only (title vectors + BM25)": {"mode": "text"},
                 "**hybrid, adaptive weights (mmsearch)**": {},
                 "hybrid, RRF (k=60), all three lists": {"weights": (0, 0, 0)}}
        for w in WEIGHT_GRID:
            modes[f"hybrid, fixed weights {w[0]}/{w[1]}/{w[2]}"] = {"weights": w}
        table = {name: {kind: precision(searcher, qs, **kw) for kind, qs in sets.items()}
                 for name, kw in modes.items()}
        timings = []
        for text, _ in [q for qs in sets.values() for q in qs]:
            t0 = time.perf_counter()
            searcher.search(Query.of(texts=[text]), K)
            timings.append(time.perf_counter() - t0)
        index.close()
    result = {"cpus": os.cpu_count(), "items": summary.added,
              "import_items_s": round(summary.added / import_s, 1),
              "queries": {k: len(v) for k, v in sets.items()},
              "hybrid_query_p50_ms": round(sorted(timings)[len(timings) // 2] * 1000, 1),
              # the bar: hybrid at least as good as the best single signal on every kind
              "hybrid_not_worse_than_best_single": all(
                  table["**hybrid, adaptive weights (mmsearch)**"][kind] >= max(
                      table["picture only"][kind], table["text only (title vectors + BM25)"][kind])
                  for kind in sets),
              "fusion": {"lexical_max": LEXICAL_MAX, "sharpness": SHARPNESS,
                         "candidates": CANDIDATES}, "p_at_10": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"imported {summary.added} items at {result['import_items_s']} items/s; hybrid text "
          f"query p50 {result['hybrid_query_p50_ms']} ms\n")
    print("| mode | visual P@10 | title P@10 | brand P@10 |\n|---|---|---|---|")
    for name, row in table.items():
        print(f"| {name} | {row['visual']:.3f} | {row['title']:.3f} | {row['brand']:.3f} |")
    print(f"\nhybrid not worse than the best single signal on every kind: "
          f"{result['hybrid_not_worse_than_best_single']}")
    return result


if __name__ == "__main__":
    main()
