"""Catalogue search quality: each single signal and the hybrid fusion, per query kind and half.

    python bench/catalog.py [--out bench/results/catalog.json]

The demo catalogue (assets/catalog: 300 held-out Fashion-MNIST test pictures with invented
titles, brands and prices) is imported with the embedded model and every query of
bench/queries/catalog.json (seven kinds: visual, visual + adjective, mixed
Indonesian/English, brand, brand + garment, product line, line + colour; relevance from the
catalogue's fields, see bench/catalog_queries.py) is run with each signal alone (picture
vectors, title vectors, BM25), with mmsearch's adaptive fusion (mmsearch/fusion.py) and, for comparison, with RRF and
fixed weights. Scores per kind and per half (tuning / held out): P@10, out of
min(10, relevant items), and MRR (1 / rank of the first relevant item in the top 10, else 0).

Floors (issue 16), on the held-out half: hybrid P@10 >= the best single signal's - 0.02 on
every kind, and brand + garment P@10 >= 0.8.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from catalog_fresh_queries import OUT as FRESH  # noqa: E402
from catalog_queries import HALVES, load  # noqa: E402
from indexer.catalog import import_catalog  # noqa: E402
from mmsearch import fusion  # noqa: E402
from mmsearch.config import DEMO_CATALOG, IndexLocation, ModelSpec  # noqa: E402
from mmsearch.encoder import Encoder  # noqa: E402
from mmsearch.search import Query, Searcher  # noqa: E402
from mmsearch.stores import open_index  # noqa: E402

K = 10
SINGLE = {"picture vector": (1.0, 0.0, 0.0), "text vector": (0.0, 1.0, 0.0),
          "BM25": (0.0, 0.0, 1.0)}
HYBRID = "hybrid (mmsearch, adaptive)"
# (weights for Query.weights: None adaptive, all zero RRF)
MODES = {**SINGLE, HYBRID: None, "hybrid, RRF (k=60), all three lists": (0.0, 0.0, 0.0),
         "hybrid, fixed 0.5/0/0.5": (0.5, 0.0, 0.5), "hybrid, fixed 0.9/0/0.1": (0.9, 0.0, 0.1)}
FLOOR_MARGIN, BRAND_VISUAL_FLOOR = 0.02, 0.8
ALL_HALVES = (*HALVES, "fresh")


def queries(fresh: Path | None = FRESH) -> dict[str, list[dict]]:
    """bench/queries/catalog.json's kinds (tuning and held-out halves) with the fresh set's
    queries (bench/catalog_fresh_queries.py, half "fresh") added to each kind."""
    kinds = {kind: list(qs) for kind, qs in load().items()}
    for kind, qs in (load(fresh) if fresh else {}).items():
        kinds.setdefault(kind, []).extend(qs)
    return kinds


def scores(searcher: Searcher, queries: list[dict], weights) -> dict[str, dict]:
    """{half: {"p10", "mrr", "n"}} for these queries searched with these fusion weights."""
    per: dict[str, list] = {}
    for q in queries:
        relevant = set(q["relevant"])
        hits = searcher.search(Query.of(texts=[q["query"]], weights=weights), K)
        ranks = [r for r, h in enumerate(hits, 1) if h.key in relevant]
        per.setdefault(q["half"], []).append((len(ranks) / min(K, len(relevant)), 1 / ranks[0] if ranks else 0))
    return {h: {"p10": round(sum(p for p, _ in v) / len(v), 4),
                "mrr": round(sum(m for _, m in v) / len(v), 4), "n": len(v)}
            for h, v in per.items() if v}


def floors(table: dict, half: str = "heldout") -> dict[str, bool]:
    hyb = table[HYBRID]
    out = {f"{kind}: hybrid >= best single - {FLOOR_MARGIN}": hyb[kind][half]["p10"] >= max(
        table[s][kind][half]["p10"] for s in SINGLE) - FLOOR_MARGIN
        for kind in hyb if half in hyb[kind]}
    out[f"brand_visual: hybrid P@10 >= {BRAND_VISUAL_FLOOR}"] = \
        hyb["brand_visual"][half]["p10"] >= BRAND_VISUAL_FLOOR
    return out


def demo_searcher(tmp: str):
    spec = ModelSpec.parse("demo")
    encoder = Encoder(spec).warm()
    index = open_index(IndexLocation.resolve(db=Path(tmp) / "cat.db"), model=spec,
                       create_model=spec, dim=encoder.dim, kind="catalog")
    t0 = time.perf_counter()
    summary = import_catalog(DEMO_CATALOG, index, encoder, progress=False)
    return Searcher(index, encoder), summary, time.perf_counter() - t0


def markdown(table: dict, kinds, metric: str = "p10") -> str:
    """One row per signal, one column per kind, each cell "tuning / held-out / fresh" (the
    halves the kind has)."""
    rows = ["| signal | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for name, row in table.items():
        rows.append(f"| {name} | " + " | ".join(" / ".join(
            f"{row[k][h][metric]:.3f}" for h in ALL_HALVES if h in row[k]) for k in kinds)
            + " |")
    return "\n".join(rows)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "catalog.json")
    ap.add_argument("--fresh", type=Path, default=FRESH,
                    help="the fresh held-out set to report beside the two halves")
    args = ap.parse_args(argv)
    kinds = queries(args.fresh)
    with tempfile.TemporaryDirectory() as tmp:
        searcher, summary, import_s = demo_searcher(tmp)
        table = {name: {kind: scores(searcher, qs, w) for kind, qs in kinds.items()}
                 for name, w in MODES.items()}
        timings = []
        for q in [q for qs in kinds.values() for q in qs]:
            t0 = time.perf_counter()
            searcher.search(Query.of(texts=[q["query"]]), K)
            timings.append(time.perf_counter() - t0)
        searcher.close()
    result = {"cpus": os.cpu_count(), "items": summary.added,
              "import_items_s": round(summary.added / import_s, 1),
              "queries": {k: {h: n for h in ALL_HALVES
                              if (n := sum(q["half"] == h for q in qs))}
                          for k, qs in kinds.items()},
              "hybrid_query_p50_ms": round(sorted(timings)[len(timings) // 2] * 1000, 1),
              "floors_fresh": floors(table, "fresh"), "floors_heldout": floors(table),
              "floors_tuning": floors(table, "tuning"),
              "fusion": {name: getattr(fusion, name) for name in dir(fusion)
                         if name.isupper() and isinstance(getattr(fusion, name), (int, float))},
              "scores": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"imported {summary.added} items at {result['import_items_s']} items/s; hybrid text "
          f"query p50 {result['hybrid_query_p50_ms']} ms\n")
    for metric in ("p10", "mrr"):
        print(f"{metric}, tuning / held-out / fresh\n\n{markdown(table, kinds, metric)}\n")
    for half in ("fresh", *HALVES):
        print(f"\nfloors, {half} half:")
        for what, ok in result[f"floors_{half}"].items():
            print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    return result


if __name__ == "__main__":
    main()
