"""Retrieval quality of a model on held-out colourised Fashion-MNIST pictures.

    python bench/quality.py [--model demo] [--out bench/results/quality.json]

Text->image class precision@10 for English and Indonesian class queries and colour+class
queries, image->image class P@10 with query pictures not in the collection, and whether an
indexed picture finds itself first. Pictures come from the Fashion-MNIST *test* split, which
training never sees (needs Debian's dataset-fashion-mnist). Runs through mmsearch's Encoder,
the same code path the indexer and the search use.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mmsearch.config import ModelSpec  # noqa: E402
from mmsearch.encoder import Encoder  # noqa: E402
from mmsearch.train.evaluate import IMAGE_QUERIES, POOL, evaluate_encoders  # noqa: E402

FLOORS = {"en_class": 0.95, "en_colour_class": 0.85, "image_to_image_class": 0.85,
          "self_top1": 1.0}
ROWS = [("en_class", "English class queries (all synonyms)"),
        ("id_class", "Indonesian class queries (all synonyms)"),
        ("en_colour_class", "English colour + class"),
        ("id_colour_class", "Indonesian colour + class"),
        ("image_to_image_class", "image -> image, same class"),
        ("self_top1", "indexed picture finds itself first")]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--pretrained", default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "quality.json")
    args = ap.parse_args(argv)

    encoder = Encoder(ModelSpec.parse(args.model, args.pretrained)).warm()
    t0 = time.time()
    detail: dict = {}
    metrics = evaluate_encoders(encoder.encode_images, encoder.encode_texts, detail)
    checks = {
        "indonesian_class_within_0.05": metrics["en_class"] - metrics["id_class"] <= 0.05,
        "indonesian_colour_within_0.05":
            metrics["en_colour_class"] - metrics["id_colour_class"] <= 0.05,
        **{f"{k}>={v}": metrics[k] >= v for k, v in FLOORS.items()},
    }
    result = {"model": encoder.spec.label, "k": 10, "collection": {"split": "test", "rows": POOL},
              "image_queries": {"split": "test", "rows": IMAGE_QUERIES},
              "metrics": {k: round(v, 4) for k, v in metrics.items()}, **detail, "floors_met": checks,
              "seconds": round(time.time() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"model {result['model']}: P@10 on {POOL[1]} held-out pictures")
    print(f"| {'query set':<40} | P@10  |")
    print(f"|{'-' * 42}|-------|")
    for key, name in ROWS:
        print(f"| {name:<40} | {metrics[key]:.3f} |")
    low, high = detail["image_to_image_ci95"]
    print(f"image -> image: 95% interval {low:.3f}..{high:.3f} over {IMAGE_QUERIES[1]} queries; "
          "by class: " + ", ".join(f"{k} {v:.2f}" for k, v in detail["image_to_image_by_class"].items()))
    failed = [k for k, ok in checks.items() if not ok]
    print("floors: all met" if not failed else f"floors NOT met: {', '.join(failed)}")
    return result


if __name__ == "__main__":
    main()
