"""What reading the words in pictures costs indexing, and what its gate keeps (issue 16).

    python bench/ocr_speed.py [--out bench/results/ocr_speed.json] [--photos 32] [--rounds 3]

Speed: a folder of 12 MP JPEGs without text (4000x3000, q90, ~2.5 MB each: scikit-image's
sample photos -- astronaut, coffee, chelsea, rocket, hubble, brick, grass, gravel, coins... --
scaled up, cropped, with sensor-like grain; the demo pictures when scikit-image is not
installed) is indexed by `index_paths` into a fresh Milvus Lite index with the demo model
(batch 32, one decode thread per CPU, as `mmsearch index` does), OCR off and on, interleaved
(the order flips each round) so the shared machine's noise falls on both alike; pictures per
wall second, and per CPU second of the process (all threads: on a busy shared machine the
steadier of the two). The model and the OCR engine are loaded before timing (a one-off per
process, reported apart).

Gate: the scenes of bench/ocr_scenes.py (seeds 0-2: 126 text pictures, 72 without) saved as
JPEG and decoded as indexing decodes them (decode.GATE_DRAFT), plus the 12 MP photos: how many
each gate step lets through, what it costs, and whether the main word is then read through
the indexing path (decode.read_words: gate on the small decode, read at decode.READ_DRAFT).
Also the demo CLIP vector as a gate: cosine to "text", "a sign", "a screenshot", "a receipt".
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from ocr_scenes import ROOT, scenes, skimage_photos  # noqa: E402

import mmsearch.ocr as mocr  # noqa: E402
from indexer.decode import GATE_DRAFT, Picture, read_picture, read_words  # noqa: E402
from indexer.pipeline import index_paths  # noqa: E402
from mmsearch.config import IndexLocation, ModelSpec  # noqa: E402
from mmsearch.encoder import Encoder  # noqa: E402
from mmsearch.images import open_image  # noqa: E402
from mmsearch.stores import open_index  # noqa: E402


def make_photos(folder: Path, n: int) -> str:
    sources = skimage_photos()
    what = "scikit-image sample photos" if sources else "assets/demo pictures"
    if not sources:
        sources = sorted((ROOT / "assets" / "demo").glob("*.png"))
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        out = folder / f"photo-{i:03d}.jpg"
        if out.exists():
            continue
        im = Image.open(sources[i % len(sources)]).convert("RGB")
        s = max(4000 / im.width, 3000 / im.height) * (1 + 0.2 * rng.random())
        im = im.resize((int(im.width * s) + 1, int(im.height * s) + 1), Image.BICUBIC)
        x, y = rng.randint(0, im.width - 4000), rng.randint(0, im.height - 3000)
        a = np.asarray(im.crop((x, y, x + 4000, y + 3000)), np.float32)
        a += np.random.default_rng(i).normal(0, 6, a.shape).astype(np.float32)
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(out, quality=90)
    return what


def index_rate(folder: Path, encoder: Encoder, ocr, n: int) -> tuple[float, float]:
    """(pictures per wall second, pictures per CPU second of this process, all threads): the
    second does not move with what other processes on the machine do."""
    with tempfile.TemporaryDirectory() as tmp:
        loc = IndexLocation.resolve(db=Path(tmp) / "i.db")
        with open_index(loc, model=encoder.spec, create_model=encoder.spec, dim=encoder.dim) as index:
            t, c = time.perf_counter(), time.process_time()
            summary = index_paths([str(folder)], index, encoder, progress=False, ocr=ocr)
            dt, dc = time.perf_counter() - t, time.process_time() - c
    assert summary.added == n, summary.line()
    return n / dt, n / dc


def jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def gate_study(photos: list[Path], encoder: Encoder, reader: mocr.TextReader) -> dict:
    pics = []   # (name, is_text, main word, small decode, bytes)
    for seed in (0, 1, 2):
        for s in scenes(seed=seed):
            data = jpeg(s.image)
            pics.append((f"{seed}/{s.name}", s.main is not None, s.main, seed,
                         open_image(data, "", GATE_DRAFT).image, data))
    for f in photos:
        data = f.read_bytes()
        pics.append((f"12mp/{f.name}", False, None, "12mp", open_image(data, str(f), GATE_DRAFT).image, data))
    det = mocr._engine(reader.threads, reader.gate)
    rows = []
    for name, is_text, main, group, small, data in pics:
        t = time.process_time()
        edge = mocr.edge_density(small)
        t_edge = time.process_time() - t
        thumb = small.copy()
        thumb.thumbnail((reader.gate, reader.gate))
        t = time.process_time()
        boxes, _ = det(np.asarray(thumb)[:, :, ::-1], use_det=True, use_cls=False, use_rec=False)
        t_det = time.process_time() - t
        rows.append({"name": name, "text": is_text, "group": group, "main": main,
                     "edge": round(edge, 4), "edge_pass": edge >= mocr.EDGE_DENSITY,
                     "det_pass": bool(boxes), "ms_edge": 1000 * t_edge, "ms_det": 1000 * t_det})
    out: dict = {"edge_density_threshold": mocr.EDGE_DENSITY,
                 "ms_cpu_edge_median": round(statistics.median(r["ms_edge"] for r in rows), 2),
                 "ms_cpu_det480_median": round(statistics.median(r["ms_det"] for r in rows), 1)}
    for group in (0, 1, 2, "12mp"):
        g = [r for r in rows if r["group"] == group]
        tx, bl = [r for r in g if r["text"]], [r for r in g if not r["text"]]
        both = [r for r in g if r["edge_pass"] and r["det_pass"]]
        out[f"seed {group}" if group != "12mp" else "12mp photos"] = {
            "text_pictures": len(tx), "without_text": len(bl),
            "text_kept_edge": sum(r["edge_pass"] for r in tx),
            "text_kept_both": sum(r in both for r in tx),
            "missed": [r["name"] for r in tx if r not in both],
            "without_text_passing_edge": sum(r["edge_pass"] for r in bl),
            "without_text_passing_both": sum(r in both for r in bl),
            "lowest_text_edge": min((r["edge"] for r in tx), default=None),
            "highest_blank_edge": max((r["edge"] for r in bl), default=None)}
    # the main word, read through the indexing path (seed 0: the pictures bench/ocr.py reads)
    found, ms = 0, []
    for (name, is_text, main, group, small, data) in pics:
        if group != 0 or not is_text:
            continue
        p = Picture(name, 0, 0.0, "")
        t = time.perf_counter()
        read_words(p, reader, small, data)
        ms.append(1000 * (time.perf_counter() - t))
        found += main.lower() in set((p.words or "").lower().split())
    out["seed 0 main word read via indexing path"] = {"found": found, "of": 42,
                                                      "ms_median": round(statistics.median(ms))}
    out["clip_demo_vector_gate"] = clip_gate(encoder, [(p[1], p[4]) for p in pics if p[3] == 0])
    return out


def clip_gate(encoder: Encoder, pics) -> dict:
    """AUC of cosine(picture vector, prompt) for text pictures vs the others (0.5 = chance)."""
    vecs = encoder.encode_images([im for _, im in pics])
    labels = np.array([t for t, _ in pics])
    res = {}
    for prompt in ("text", "a sign", "a screenshot", "a receipt"):
        s = vecs @ encoder.encode_texts([prompt])[0]
        tx, bl = s[labels], s[~labels]
        res[prompt] = round(float((tx[:, None] > bl[None]).mean()), 3)
    return {"auc": res, "pictures": len(pics)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "ocr_speed.json"))
    ap.add_argument("--photos", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "mmsearch-12mp-photos"))
    args = ap.parse_args()
    folder = Path(args.dir)
    what = make_photos(folder, args.photos)
    photos = sorted(folder.glob("photo-*.jpg"))[:args.photos]
    if len(photos) < len(list(folder.glob("photo-*.jpg"))):
        folder = Path(tempfile.mkdtemp()) / "p"
        folder.mkdir()
        for f in photos:
            os.link(f, folder / f.name)
    encoder = Encoder(ModelSpec.parse("demo")).warm()
    reader = mocr.reader_for()
    t = time.perf_counter()
    mocr._engine(reader.threads, reader.gate)
    mocr._engine(reader.threads)
    load_s = time.perf_counter() - t

    # per picture, one thread: what indexing does without OCR, and the reader's extra
    pre, draft = encoder.preprocess, 2 * encoder.image_size
    cpu_off, cpu_on = [], []
    for f in photos:
        t = time.process_time()
        read_picture(str(f), pre, draft)
        cpu_off.append(time.process_time() - t)
        t = time.process_time()
        read_picture(str(f), pre, draft, reader=reader)
        cpu_on.append(time.process_time() - t)
    import torch
    batch = torch.stack([read_picture(str(f), pre, draft).pixels for f in photos[:32]])
    t = time.process_time()
    encoder.encode_pixels(batch)
    enc_ms = 1000 * (time.process_time() - t) / len(batch)

    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu_rates: dict[str, list[float]] = {"off": [], "on": []}
    for r in range(args.rounds):
        for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
            wall, cpu = index_rate(folder, encoder, reader if mode == "on" else False, len(photos))
            rates[mode].append(wall)
            cpu_rates[mode].append(cpu)
    ratios = [a / b for a, b in zip(rates["on"], rates["off"])]
    cpu_ratios = [a / b for a, b in zip(cpu_rates["on"], cpu_rates["off"])]
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
                    "note": "shared machine; modes interleaved, order flipped each round"},
        "photos": {"count": len(photos), "size": "4000x3000 JPEG q90", "from": what},
        "ocr_engine_load_s": round(load_s, 2),
        "per_picture_cpu_ms_mean_one_thread": {
            "read_decode_preprocess_ocr_off": round(1000 * statistics.mean(cpu_off), 1),
            "read_decode_preprocess_ocr_on": round(1000 * statistics.mean(cpu_on), 1),
            "encode_demo_batch32": round(enc_ms, 2)},
        "index_img_per_s": {k: [round(x, 2) for x in v] for k, v in rates.items()},
        "index_img_per_cpu_s": {k: [round(x, 2) for x in v] for k, v in cpu_rates.items()},
        "ratio_on_over_off": [round(x, 3) for x in ratios],
        "ratio_median": round(statistics.median(ratios), 3),
        "cpu_ratio_on_over_off": [round(x, 3) for x in cpu_ratios],
        "cpu_ratio_median": round(statistics.median(cpu_ratios), 3),
        "floor": 0.7,
        "gate": gate_study(photos, encoder, reader),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("per_picture_cpu_ms_mean_one_thread",
                                             "index_img_per_s", "ratio_on_over_off",
                                             "cpu_ratio_on_over_off")}, indent=1))


if __name__ == "__main__":
    main()
