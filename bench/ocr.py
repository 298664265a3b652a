"""Offline OCR engines side by side on rendered pictures (issue 16: words inside the picture).

    python bench/ocr.py [--out bench/results/ocr.json] [--blank 24] [--seed 0]

Pictures: bench/ocr_scenes.py (signs, receipts, screenshot bars, captions over real photos;
English and Indonesian; 34-100 px signs, 22-30 px receipts, rotation up to 4 degrees; plus
pictures without text).

Engines (each picture is read by every engine in turn, the order rotating per picture, so the
shared machine's noise falls on all of them alike; 2 threads each):
  rapidocr-raw   RapidOCR 1.4.4 (rapidocr-onnxruntime, PP-OCRv4), its line texts split on spaces
  rapidocr       the same call through mmsearch.ocr.TextReader (joined words split)
  tesseract-psm3/psm11  Tesseract CLI (`tesseract - stdout -l eng+ind --psm N`, PNG on stdin,
                 OMP_THREAD_LIMIT=2); psm 3 = automatic page layout, 11 = sparse text
Normalisation: lower case, tokens = runs of [0-9a-z] (so "4.50" is "4" and "50").
  recall   printed tokens found in the picture's OCR token set / printed tokens (micro)
  P@1      query = the picture's main word (unique in the set); BM25 over every picture's OCR
           tokens (blanks included); 1 if the picture is alone on top, 1/k if tied with k-1
  found    the main word is in its picture's token set
  ms       median ms per picture, with text and without
Gate (skip OCR where there is no text): RapidOCR's detector alone on the picture downscaled to
a long side of S px (S = 320, 480) and at full size; cost = median ms, miss = text pictures with
no box found (and the printed tokens the reader would then lose), pass = blank pictures the
gate lets through.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ocr_scenes import scenes  # noqa: E402

import mmsearch.ocr as mocr  # noqa: E402


def tokens(text: str) -> list[str]:
    return re.findall(r"[0-9a-z]+", text.lower())


def tesseract(psm: int):
    env = dict(os.environ, OMP_THREAD_LIMIT="2")

    def run(img):
        buf = io.BytesIO()
        img.save(buf, "PNG")
        p = subprocess.run(["tesseract", "-", "stdout", "-l", "eng+ind", "--psm", str(psm)],
                           input=buf.getvalue(), capture_output=True, env=env, check=True)
        return p.stdout.decode("utf-8", "replace")
    return run


def bm25_p1(docs: dict[str, list[str]], queries: dict[str, str]) -> tuple[float, dict]:
    n = len(docs)
    avg = sum(len(d) for d in docs.values()) / max(n, 1) or 1.0
    df = Counter(t for d in docs.values() for t in set(d))
    per = {}
    for target, q in queries.items():
        scores = {}
        for name, d in docs.items():
            tf = d.count(q)
            if tf:
                idf = math.log(1 + (n - df[q] + 0.5) / (df[q] + 0.5))
                scores[name] = idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(d) / avg))
        if not scores:
            per[target] = 0.0
            continue
        top = max(scores.values())
        tied = [k for k, v in scores.items() if v >= top - 1e-9]
        per[target] = 1.0 / len(tied) if target in tied else 0.0
    return sum(per.values()) / max(len(per), 1), per


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ocr.json"))
    ap.add_argument("--blank", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from rapidocr_onnxruntime import RapidOCR
    reader = mocr.TextReader(threads=2)
    t = time.perf_counter()
    reader.read(scenes(args.seed, 1)[0].image)          # load models, warm up
    load_s = time.perf_counter() - t
    gates = {s: RapidOCR(intra_op_num_threads=2, inter_op_num_threads=1,
                         det_limit_type="max", det_limit_side_len=s) for s in (320, 480)}
    full_det = mocr._engine(2)

    def rapid_both(img):
        lines = reader.lines(img)
        return " ".join(x[0] for x in lines), reader.words(img, lines)

    engines = {"rapidocr": rapid_both, "tesseract-psm3": tesseract(3),
               "tesseract-psm11": tesseract(11)}
    pics = scenes(args.seed, args.blank)
    texts = {e: {} for e in ["rapidocr-raw", *engines]}
    ms = {e: {} for e in texts}
    gate = {g: {} for g in ["det-320", "det-480", "det-full"]}
    for i, sc in enumerate(pics):
        order = list(engines)[i % len(engines):] + list(engines)[:i % len(engines)]
        for e in order:
            t = time.perf_counter()
            out = engines[e](sc.image)
            dt = (time.perf_counter() - t) * 1000
            if e == "rapidocr":
                texts["rapidocr-raw"][sc.name], texts["rapidocr"][sc.name] = out
                ms["rapidocr-raw"][sc.name] = ms["rapidocr"][sc.name] = dt
            else:
                texts[e][sc.name], ms[e][sc.name] = out, dt
        arr = np.asarray(sc.image)[:, :, ::-1]
        for s, g in gates.items():
            small = sc.image.resize((s, round(s * sc.image.height / sc.image.width)))
            small = np.ascontiguousarray(np.asarray(small)[:, :, ::-1])
            t = time.perf_counter()
            boxes, _ = g(small, use_det=True, use_cls=False, use_rec=False)
            gate[f"det-{s}"][sc.name] = ((time.perf_counter() - t) * 1000, bool(boxes))
        t = time.perf_counter()
        boxes, _ = full_det(arr, use_det=True, use_cls=False, use_rec=False)
        gate["det-full"][sc.name] = ((time.perf_counter() - t) * 1000, bool(boxes))
        print(f"{sc.name:12s} " + " | ".join(f"{e}: {texts[e][sc.name].strip()[:40]!r}"
                                              for e in ("rapidocr", "tesseract-psm3")), flush=True)

    withtext = [s for s in pics if s.main]
    blank = [s for s in pics if not s.main]
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "rapidocr_onnxruntime": __import__("importlib.metadata").metadata.version("rapidocr-onnxruntime"),
                          "tesseract": subprocess.run(["tesseract", "--version"], capture_output=True,
                                                      text=True).stdout.splitlines()[0],
                          "note": "2 threads per engine; engines interleaved per picture; shared, noisy machine"},
              "pictures": {"with_text": len(withtext), "without_text": len(blank),
                           "printed_tokens": sum(len(set(tokens(" ".join(s.words)))) for s in withtext)},
              "rapidocr_model_load_s": round(load_s, 2), "engines": {}, "gate": {}, "per_picture": {}}
    for e in texts:
        toks = {s.name: tokens(texts[e][s.name]) for s in pics}
        hit = tot = 0
        by = Counter(), Counter()
        for s in withtext:
            want = set(tokens(" ".join(s.words)))
            got = want & set(toks[s.name])
            hit, tot = hit + len(got), tot + len(want)
            for k in (s.style, s.lang):
                by[0][k] += len(got)
                by[1][k] += len(want)
        p1, per = bm25_p1(toks, {s.name: tokens(s.main)[0] for s in withtext})
        result["engines"][e] = {
            "recall": round(hit / tot, 3),
            "recall_by": {k: round(by[0][k] / by[1][k], 3) for k in by[1]},
            "p_at_1": round(p1, 3),
            "main_word_found": sum(tokens(s.main)[0] in toks[s.name] for s in withtext),
            "ms_with_text_median": round(statistics.median(ms[e][s.name] for s in withtext)),
            "ms_without_text_median": round(statistics.median(ms[e][s.name] for s in blank)),
            "blank_pictures_with_tokens": sum(bool(toks[s.name]) for s in blank),
        }
    for g, v in gate.items():
        missed = [s for s in withtext if not v[s.name][1]]
        result["gate"][g] = {
            "ms_median_text": round(statistics.median(v[s.name][0] for s in withtext), 1),
            "ms_median_blank": round(statistics.median(v[s.name][0] for s in blank), 1),
            "missed_text_pictures": [s.name for s in missed],
            "tokens_lost": sum(len(set(tokens(texts["rapidocr"][s.name]))) for s in missed),
            "blank_passed": sum(v[s.name][1] for s in blank),
        }
    for s in pics:
        result["per_picture"][s.name] = {"printed": " ".join(s.words), "main": s.main,
                                         **{e: texts[e][s.name].strip() for e in texts}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: result[k] for k in ("engines", "gate")}, indent=1))


if __name__ == "__main__":
    main()
