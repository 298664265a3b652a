"""Indexing speed: mmsearch's pipeline vs the loop a user writes by hand, same files, same run.

    python bench/indexing.py [--count 64] [--models vit,demo] [--out bench/results/indexing.json]

The naive loop: for each file, PIL open + convert, open_clip's preprocess, then
`encode_image` in fp32 batches of 16 (no threading, no reduced decoding, no writes).
mmsearch: `index_paths` into a fresh Milvus Lite index (decode threads, JPEG draft, bf16 where
the CPU has it, batched inserts) — it also writes the index, the naive loop does not.
Pictures: real photos shipped with scikit-image, upscaled with texture to 12 MP JPEGs
(4000x3000) and to 640x480 JPEGs. ViT-B-32 with `--pretrained random` (speed does not depend
on the weights) and the embedded `demo` model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from indexer.pipeline import index_paths  # noqa: E402
from mmsearch.config import IndexLocation, ModelSpec  # noqa: E402
from mmsearch.encoder import Encoder  # noqa: E402
from mmsearch.stores import open_index  # noqa: E402

MODELS = {"vit": ModelSpec.parse("ViT-B-32", "random"), "demo": ModelSpec.parse("demo")}
SIZES = {"12mp": (4000, 3000), "640x480": (640, 480)}


def source_photos() -> list[Image.Image]:
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
             "horse.png", "hubble_deep_field.jpg", "retina.jpg", "color.png", "brick.png"]
    return [Image.open(folder / n).convert("RGB") for n in names if (folder / n).exists()]


def make_pictures(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """Photos resized to `size` with sensor-like noise, so JPEGs carry a real photo's entropy."""
    rng = np.random.default_rng(seed)
    photos = source_photos()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        img = photos[i % len(photos)].resize(size, Image.Resampling.BILINEAR)
        arr = np.asarray(img, np.int16) + rng.integers(-12, 13, size=(size[1], size[0], 1),
                                                       dtype=np.int16)
        path = folder / f"photo-{i:04d}.jpg"
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def naive_loop(paths: list[Path], spec: ModelSpec, batch_size: int = 16) -> float:
    """What a user writes by hand. Returns images/s (model loading excluded)."""
    import open_clip
    import torch

    from mmsearch.encoder import _arch_and_weights, _open_clip

    _open_clip()
    arch, weights = _arch_and_weights(spec)
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=weights)
    model.eval()
    t0 = time.perf_counter()
    batch = []
    with torch.no_grad():
        for p in paths:
            batch.append(preprocess(Image.open(p).convert("RGB")))
            if len(batch) == batch_size:
                model.encode_image(torch.stack(batch))
                batch = []
        if batch:
            model.encode_image(torch.stack(batch))
    return len(paths) / (time.perf_counter() - t0)


def mmsearch_pipeline(folder: Path, n: int, spec: ModelSpec, precision: str = "auto") -> float:
    encoder = Encoder(spec, precision=precision).warm()
    with tempfile.TemporaryDirectory() as tmp:
        loc = IndexLocation.resolve(db=Path(tmp) / "bench.db")
        with open_index(loc, model=spec, create_model=spec, dim=encoder.dim) as index:
            t0 = time.perf_counter()
            summary = index_paths([str(folder)], index, encoder, progress=False)
            rate = n / (time.perf_counter() - t0)
    assert summary.added == n, summary.line()
    return rate


PEAK_RSS = ("import resource, sys; from mmsearch.cli import main; code = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
            "sys.exit(code)")


def peak_rss_mb(folder: Path, db: Path) -> float:
    """Peak RSS of a real `mmsearch index` process over `folder`, in MB."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", PEAK_RSS, "index", str(folder), "--db", str(db),
                           "--model", "demo", "--json"], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[1])
    return int(done.stderr.strip().splitlines()[-1]) / 1024


def memory_growth(tmp: Path, small: int) -> dict:
    """Peak RSS indexing `small` pictures vs 10x as many (640x480 JPEGs)."""
    few = make_pictures(tmp / "few", small, SIZES["640x480"], seed=1)
    many_dir = tmp / "many"
    many_dir.mkdir()
    for copy in range(10):  # same pixels, different files: decoding work scales, content not
        sub = many_dir / f"c{copy}"
        sub.mkdir()
        for p in few:
            os.link(p, sub / p.name)
    rss_few = peak_rss_mb(tmp / "few", tmp / "few.db")
    rss_many = peak_rss_mb(many_dir, tmp / "many.db")
    return {"pictures": [small, small * 10], "peak_rss_mb": [round(rss_few), round(rss_many)],
            "growth": round(rss_many / rss_few - 1, 3)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=64, help="pictures per size")
    ap.add_argument("--models", default="vit,demo")
    ap.add_argument("--sizes", default="12mp,640x480")
    ap.add_argument("--rss-count", type=int, default=200,
                    help="peak-RSS check: index this many pictures, then 10x as many (0: skip)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "indexing.json")
    args = ap.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size_name in args.sizes.split(","):
            folder = Path(tmp) / size_name
            paths = make_pictures(folder, args.count, SIZES[size_name])
            for model_name in args.models.split(","):
                spec = MODELS[model_name]
                naive = naive_loop(paths, spec)
                ours = mmsearch_pipeline(folder, len(paths), spec)
                rows.append({"pictures": size_name, "model": spec.label, "count": len(paths),
                             "naive_img_s": round(naive, 2), "mmsearch_img_s": round(ours, 2),
                             "ratio": round(ours / naive, 2)})
                print(rows[-1], flush=True)
        memory = memory_growth(Path(tmp), args.rss_count) if args.rss_count else None
        if memory:
            print("memory:", memory, flush=True)
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "processor": platform.processor() or platform.machine()},
              "results": rows, "memory": memory}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| pictures | model | naive img/s | mmsearch img/s | ratio |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pictures']} | {r['model'].split(' (')[0]} | {r['naive_img_s']} | "
              f"{r['mmsearch_img_s']} | {r['ratio']}x |")
    return result


if __name__ == "__main__":
    main()
