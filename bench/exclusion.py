"""'Without' that removes, measured on the demo index (mmsearch.cutoff, README "Query composition").

    python bench/exclusion.py [--out bench/results/exclusion.json]

Every garment class without every colour, in English ("a dress" without "red") and Indonesian
("gaun" without "merah"): 160 queries over the 300 labelled demo pictures. For each: whether an
item of that colour is in the top 10 (the floor: none), the share of the plain query's own top
10 items not of that colour that stay in the top 10 (the rest of the query ranks as before), how
many of them keep their exact order, and how many items not of that colour were removed. Side
by side: the rule shipped (X read in the query's context, over the query's top POOL), the same
over all the candidates, X alone, and the old -0.5 vector. Then the contradictory "a red
sneaker" without red, and the time of a plain query and of one with a "without", interleaved.
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

import numpy as np  # noqa: E402

from mmsearch import cutoff  # noqa: E402
from mmsearch.config import DEMO_PICTURES_DIR  # noqa: E402
from mmsearch.index import IMAGE_VECTOR  # noqa: E402
from mmsearch.search import Query, compose  # noqa: E402
from mmsearch.train.fashion import CLASSES, COLOURS  # noqa: E402

LABELS = json.loads((DEMO_PICTURES_DIR / "labels.json").read_text())


def demo_searcher(tmp: str):
    """The demo pictures indexed with the embedded model in `tmp`, and a Searcher on them."""
    from indexer.pipeline import index_paths
    from mmsearch.config import IndexLocation, ModelSpec
    from mmsearch.encoder import Encoder
    from mmsearch.search import Searcher
    from mmsearch.stores import open_index

    encoder = Encoder(ModelSpec.parse("demo")).warm()
    index = open_index(IndexLocation.resolve(db=Path(tmp) / "demo.db"), model=encoder.spec,
                       create_model=encoder.spec, dim=encoder.dim)
    index_paths([str(DEMO_PICTURES_DIR)], index, encoder, progress=False)
    return Searcher(index, encoder)


def label(key: str) -> dict:
    return LABELS[Path(key).name]


def variant_keep(searcher, q: str, x: str, hits, how: str) -> list[str]:
    """The top-10 keys another rule keeps: `all` (context over every candidate), `alone`
    (X's own vector over the top POOL), `vector` (the old q - 0.5 x)."""
    enc = searcher.encoder
    qv, xv = enc.encode_texts([q, x])
    if how == "vector":
        return [h.key for h in searcher.index.search(compose([(qv, 1.0), (xv, -0.5)]), 10)]
    v = xv if how == "alone" else compose([(qv, 1.0), (xv, 1.0)])
    ranked = searcher.index.ranked_keys(IMAGE_VECTOR, v.tolist(), cutoff.CAP)
    score = dict(ranked)
    pool = hits if how == "all" else hits[:cutoff.POOL]
    in_pool = sorted((score.get(h.key, ranked[-1][1]) for h in pool), reverse=True)
    line = in_pool[cutoff.count(in_pool) - 1]
    return [h.key for h in hits if score.get(h.key, -9) < line][:10]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).parent / "results" / "exclusion.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        searcher = demo_searcher(tmp)
        rules = ("shipped", "all", "alone", "vector")
        rows = {r: {"queries": 0, "with_that_colour_in_top10": 0, "kept_of_plain_top10": [],
                    "same_order": 0, "of_the_class_in_top10": [], "others_removed": 0}
                for r in rules}
        for cls, en, ind in CLASSES:
            for lang, q in (("en", f"a {en[0]}"), ("id", ind[0])):
                hits = searcher.search(Query.of(texts=[q]), k=cutoff.CAP)
                for colour, (c_en, c_id, _) in COLOURS.items():
                    x = c_en if lang == "en" else c_id
                    plain = [h.key for h in hits if label(h.key)["colour"] != colour][:10]
                    for rule in rules:
                        if rule == "shipped":
                            got = searcher.search(Query.of(texts=[q], without=[x]),
                                                  k=len(LABELS))
                            top = [h.key for h in got[:10]]
                            removed = {h.key for h in hits} - {h.key for h in got}
                            rows[rule]["others_removed"] += sum(
                                label(k)["colour"] != colour for k in removed)
                        else:
                            top = variant_keep(searcher, q, x, hits, rule)
                        r = rows[rule]
                        r["queries"] += 1
                        r["with_that_colour_in_top10"] += any(
                            label(k)["colour"] == colour for k in top)
                        r["kept_of_plain_top10"].append(len(set(plain) & set(top)) / 10)
                        r["same_order"] += top == plain
                        r["of_the_class_in_top10"].append(
                            sum(label(k)["class"] == cls for k in top) / 10)
        for r in rows.values():
            for m in ("kept_of_plain_top10", "of_the_class_in_top10"):
                r[m] = round(float(np.mean(r[m])), 4)
        rows["shipped"]["others_removed_per_query"] = round(
            rows["shipped"].pop("others_removed") / rows["shipped"]["queries"], 2)
        for rule in rules[1:]:
            rows[rule].pop("others_removed")

        contradictory = {}
        for q, x in (("a red sneaker", "red"), ("sepatu lari merah", "merah"),
                     ("a black bag", "black")):
            colour = next(c for c, (e, i, _) in COLOURS.items() if x in (e, i))
            for rule in ("shipped", "vector"):
                top = [h.key for h in searcher.search(Query.of(texts=[q], without=[x]), k=10)] \
                    if rule == "shipped" else variant_keep(searcher, q, x, [], "vector")
                contradictory.setdefault(f"{q} without {x}", {})[rule] = {
                    "that_colour_in_top10": sum(label(k)["colour"] == colour for k in top),
                    "that_colour_first": label(top[0])["colour"] == colour,
                    "classes_in_top10": sorted({label(k)["class"] for k in top})}

        times = {"plain": [], "without": []}
        for _ in range(15):  # interleaved, so both see the same machine load
            for name, query in (("plain", Query.of(texts=["a dress"])),
                                ("without", Query.of(texts=["a dress"], without=["red"]))):
                t0 = time.perf_counter()
                searcher.search(query, k=10)
                times[name].append(time.perf_counter() - t0)
        p50 = {n: float(np.median(t)) * 1000 for n, t in times.items()}
        searcher.close()
    result = {"index": "demo (300 pictures, embedded model)", "pool": cutoff.POOL,
              "candidates": cutoff.CAP, "rules": rows, "contradictory": contradictory,
              "ms_p50": {n: round(v, 1) for n, v in p50.items()},
              "without_over_plain": round(p50["without"] / p50["plain"], 2),
              "floor_no_colour_in_top10": rows["shipped"]["with_that_colour_in_top10"] == 0}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    for rule, r in rows.items():
        print(f"{rule:8} colour in top 10: {r['with_that_colour_in_top10']:3}/{r['queries']}  "
              f"kept of plain top 10: {r['kept_of_plain_top10']:.3f}  same order: "
              f"{r['same_order']}/{r['queries']}  of the class: {r['of_the_class_in_top10']:.3f}")
    print(json.dumps(contradictory, ensure_ascii=False))
    print(f"p50 plain {p50['plain']:.1f} ms, with a without {p50['without']:.1f} ms "
          f"({result['without_over_plain']}x)")
    return result


if __name__ == "__main__":
    main()
