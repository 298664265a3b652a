"""Fidelity and speed of the bf16 encoding path against fp32, same model, same inputs.

    python bench/fidelity.py [--out bench/results/fidelity.json]

For the embedded demo model (trained) and ViT-B-32 (untrained weights: the arithmetic is the
same, so fidelity of the numbers still shows) it encodes the 300 demo pictures and 40 English
and Indonesian queries twice, in fp32 and in bf16 (what `Encoder` picks on CPUs with native
bf16), and reports the cosine between the two vectors of each input and the overlap of the
top-10 results (text -> picture and picture -> picture, each side searching its own vectors).
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

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mmsearch.config import DEMO_PICTURES_DIR, ModelSpec  # noqa: E402
from mmsearch.encoder import Encoder  # noqa: E402

K = 10
COLOURS = [("red", "merah"), ("blue", "biru"), ("black", "hitam"), ("white", "putih")]
THINGS = [("sneaker", "sepatu kets"), ("dress", "gaun"), ("bag", "tas"), ("coat", "mantel"),
          ("trousers", "celana panjang")]
QUERIES = [q for (ce, ci) in COLOURS for (te, ti) in THINGS
           for q in (f"a {ce} {te}", f"{ti} {ci}")]


def top_k(queries: np.ndarray, pool: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ pool.T), axis=1)[:, :K]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / K for x, y in zip(a, b)]))


def run(spec: ModelSpec, pictures: list[Image.Image]) -> dict:
    out, speed = {}, {}
    import torch

    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)  # untrained weights: the same random weights for both
        enc = Encoder(spec, precision=precision).warm()
        pixels = torch.stack([enc.preprocess(p) for p in pictures])
        enc.encode_pixels(pixels[:32])  # warm-up
        t0 = time.perf_counter()
        images = enc.encode_pixels(pixels)
        speed[precision] = len(pictures) / (time.perf_counter() - t0)
        out[precision] = (images, enc.encode_texts(QUERIES))
    (img32, txt32), (img16, txt16) = out["fp32"], out["bf16"]
    img_cos = np.sum(img32 * img16, axis=1)
    txt_cos = np.sum(txt32 * txt16, axis=1)
    probe = slice(0, 50)  # picture -> picture: the first 50 pictures as queries
    return {
        "model": spec.label,
        "image_cosine_mean": round(float(img_cos.mean()), 5),
        "image_cosine_min": round(float(img_cos.min()), 5),
        "text_cosine_mean": round(float(txt_cos.mean()), 5),
        "text_cosine_min": round(float(txt_cos.min()), 5),
        "text_top10_overlap": round(overlap(top_k(txt32, img32), top_k(txt16, img16)), 4),
        "image_top10_overlap": round(overlap(top_k(img32[probe], img32),
                                             top_k(img16[probe], img16)), 4),
        "fp32_img_s": round(speed["fp32"], 1), "bf16_img_s": round(speed["bf16"], 1),
        "bf16_speedup": round(speed["bf16"] / speed["fp32"], 2),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fidelity.json")
    args = ap.parse_args(argv)
    pictures = [Image.open(f).convert("RGB") for f in sorted(DEMO_PICTURES_DIR.glob("*.png"))]
    rows = [run(ModelSpec.parse("demo"), pictures),
            run(ModelSpec.parse("ViT-B-32", "random"), pictures)]
    result = {"cpus": os.cpu_count(), "pictures": len(pictures), "queries": len(QUERIES),
              "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| model | cosine bf16 vs fp32, pictures (min) | texts (min) | top-10 overlap text→picture "
          "| picture→picture | bf16 speed-up |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['image_cosine_mean']} ({r['image_cosine_min']}) | "
              f"{r['text_cosine_mean']} ({r['text_cosine_min']}) | {r['text_top10_overlap']} | "
              f"{r['image_top10_overlap']} | {r['bf16_speedup']}× ({r['fp32_img_s']} → "
              f"{r['bf16_img_s']} img/s) |")
    return result


if __name__ == "__main__":
    main()
