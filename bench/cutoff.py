"""`--all`: how well the cutoff read from the scores' shape finds all the matches (mmsearch.cutoff).

    python bench/cutoff.py [--out bench/results/cutoff.json]

On the demo index (300 labelled pictures, the embedded model): class queries ("a dress"),
colours ("red") and colour + class ("a red sneaker"; those with at least one such picture), in
English (the set the constants were chosen on) and Indonesian (held out: "gaun", "merah",
"gaun merah"). The set `--all` returns is scored against the labels (precision, recall, F1,
means over the queries), side by side with two simpler rules on the same ranked lists: the
widest gap alone and the halfway line alone. Then the time of a top-10 query and an `--all`
one, interleaved.
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

from bench.exclusion import LABELS, demo_searcher, label  # noqa: E402
from mmsearch import cutoff  # noqa: E402
from mmsearch.search import Query  # noqa: E402
from mmsearch.train.fashion import CLASSES, COLOURS  # noqa: E402


def widest_gap(s: np.ndarray) -> int:
    return int(np.argmax(-np.diff(s))) + 1


def halfway(s: np.ndarray) -> int:
    median = np.median(s)
    return int((s >= median + cutoff.HALF * (s[0] - median)).sum())


def queries():
    """(set, words, is-relevant(label)) for every query of both halves."""
    for cls, en, ind in CLASSES:
        yield "en_class", f"a {en[0]}", lambda lab, c=cls: lab["class"] == c
        yield "id_class", ind[0], lambda lab, c=cls: lab["class"] == c
    for colour, (c_en, c_id, _) in COLOURS.items():
        yield "en_colour", c_en, lambda lab, c=colour: lab["colour"] == c
        yield "id_colour", c_id, lambda lab, c=colour: lab["colour"] == c
        for cls, en, ind in CLASSES:
            both = (lambda lab, c=colour, k=cls: lab["colour"] == c and lab["class"] == k)
            yield "en_colour_class", f"a {c_en} {en[0]}", both
            yield "id_colour_class", f"{ind[0]} {c_id}", both


def scored(keys: list[str], relevant) -> tuple[float, float, float]:
    total = sum(relevant(lab) for lab in LABELS.values())
    hit = sum(relevant(label(k)) for k in keys)
    p, r = hit / max(1, len(keys)), hit / total
    return p, r, (2 * p * r / (p + r) if hit else 0.0)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cutoff.json")
    args = ap.parse_args(argv)
    sets: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        searcher = demo_searcher(tmp)
        for name, words, relevant in queries():
            if not any(relevant(lab) for lab in LABELS.values()):
                continue
            got = [h.key for h in searcher.search(Query.of(texts=[words], all=True))]
            ranked = searcher.search(Query.of(texts=[words]), k=cutoff.CAP)
            s = np.array([h.score for h in ranked])
            row = sets.setdefault(name, {"queries": 0, "count": [], "relevant": []})
            row["queries"] += 1
            row["count"].append(len(got))
            row["relevant"].append(sum(relevant(lab) for lab in LABELS.values()))
            for rule, keys in (("shipped", got), ("widest_gap", [h.key for h in ranked][
                    :widest_gap(s)]), ("halfway", [h.key for h in ranked][:halfway(s)])):
                row.setdefault(rule, []).append(scored(keys, relevant))
        for row in sets.values():
            for rule in ("shipped", "widest_gap", "halfway"):
                p, r, f = np.mean(row[rule], axis=0)
                row[rule] = {"precision": round(float(p), 3), "recall": round(float(r), 3),
                             "f1": round(float(f), 3)}
            row["mean_count"] = round(float(np.mean(row.pop("count"))), 1)
            row["mean_relevant"] = round(float(np.mean(row.pop("relevant"))), 1)
        broad = len(searcher.search(Query.of(texts=["a sneaker"], all=True)))
        narrow = len(searcher.search(Query.of(texts=["a red sneaker"], all=True)))
        times = {"top10": [], "all": []}
        for _ in range(15):  # interleaved
            for name, query in (("top10", Query.of(texts=["a dress"])),
                                ("all", Query.of(texts=["a dress"], all=True))):
                t0 = time.perf_counter()
                searcher.search(query, k=10)
                times[name].append(time.perf_counter() - t0)
        searcher.close()
    p50 = {n: float(np.median(t)) * 1000 for n, t in times.items()}
    result = {"index": "demo (300 pictures, embedded model)", "candidates": cutoff.CAP,
              "half": cutoff.HALF, "alpha": cutoff.ALPHA, "fitted_on": "en_*",
              "held_out": "id_*", "sets": sets,
              "examples": {"a sneaker (29 sneakers)": broad, "a red sneaker (2)": narrow},
              "ms_p50": {n: round(v, 1) for n, v in p50.items()},
              "all_over_top10": round(p50["all"] / p50["top10"], 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| {'set':<16} | n  | shipped P / R / F1 | widest gap F1 | halfway F1 | mean count |")
    for name, row in sets.items():
        sh = row["shipped"]
        print(f"| {name:<16} | {row['queries']:<2} | {sh['precision']:.2f} / {sh['recall']:.2f} / "
              f"{sh['f1']:.2f}   | {row['widest_gap']['f1']:.2f}          | "
              f"{row['halfway']['f1']:.2f}       | {row['mean_count']} of {row['mean_relevant']} |")
    print(f"a sneaker: {broad} matches, a red sneaker: {narrow}; p50 top 10 {p50['top10']:.1f} ms, "
          f"--all {p50['all']:.1f} ms ({result['all_over_top10']}x)")
    return result


if __name__ == "__main__":
    main()
