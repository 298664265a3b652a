"""Old vs new scene finding, interleaved on the same file, as the indexer runs it: scenes()
consumed while every 32 scenes' pictures are encoded with ViT-B-32 (bf16, 2 threads).

    nice python bench/video_speed.py [--against COMMIT] [--rounds 2] [--file unique180]

The old code is `mmsearch/video.py` + `mmsearch/video_decode.py` at COMMIT (git show), loaded
as a package of its own. Reports wall and CPU per run, the ratio new/old per round, and
whether the scenes are the same (start, end; the last one may differ: the old keyframe pass
never flushed its frame-threaded decoder, so it lost the file's last keyframes).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import video_clips as clips  # noqa: E402
from video import accuracy  # noqa: E402

from mmsearch import video  # noqa: E402


def old_module(commit: str, where: Path):
    pkg = where / "oldvideo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("video", "video_decode"):
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:mmsearch/{name}.py"],
                              check=True, capture_output=True, text=True).stdout
        (pkg / f"{name}.py").write_text(text.replace("mmsearch.video_decode", "oldvideo.video_decode"))
    sys.path.insert(0, str(where))
    return importlib.import_module("oldvideo.video")


def run(module, path: Path, encoder) -> tuple[list, dict]:
    wall, cpu, spent, batch, found = time.perf_counter(), time.process_time(), 0.0, [], []

    def flush():
        nonlocal spent, batch
        if batch:
            t = time.perf_counter()
            encoder.encode_images(batch, batch_size=32)
            spent += time.perf_counter() - t
            batch = []

    for scene in module.scenes(str(path)):
        found.append(scene)
        batch.append(scene.frame)
        if len(batch) == 32:
            flush()
    flush()
    return found, {"wall_s": round(time.perf_counter() - wall, 1),
                   "cpu_s": round(time.process_time() - cpu, 1),
                   "caller_encoding_wall_s": round(spent, 1), "scenes": len(found),
                   "load_1min": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", default="69567dc")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--file", default="unique180")
    ap.add_argument("--out", default=str(ROOT / "bench/results/video_speed.json"))
    args = ap.parse_args()
    import torch

    from mmsearch.config import ModelSpec
    from mmsearch.encoder import Encoder

    torch.set_num_threads(2)
    enc = Encoder(ModelSpec.parse("ViT-B-32", "random")).warm()
    unique, plan = clips.cached("unique180", 180, seed=0)
    if args.file == "hour":
        path, plan = clips.cached_repeat(unique, plan, 20, "hour")
    else:
        path = unique
    enc.encode_images([s.frame for s in video.scenes(str(unique))][:8])  # warm
    with tempfile.TemporaryDirectory() as tmp:
        old = old_module(args.against, Path(tmp))
        rounds, same = [], True
        for r in range(args.rounds):
            row = {}
            for name, module in (("old", old), ("new", video)) if r % 2 == 0 else \
                    (("new", video), ("old", old)):
                found, timing = run(module, path, enc)
                row[name] = {**timing, **accuracy(found, plan)}
                row[name + "_scenes"] = [(round(s.start, 3), round(s.end, 3)) for s in found]
                print(r, name, row[name], flush=True)
            a, b = row.pop("old_scenes"), row.pop("new_scenes")
            row["same_scenes_but_last"] = a[:-1] == b[:-1]
            row["last_scene"] = {"old": a[-1], "new": b[-1]}
            same &= row["same_scenes_but_last"]
            row["new_over_old_wall"] = round(row["new"]["wall_s"] / row["old"]["wall_s"], 2)
            row["new_over_old_cpu"] = round(row["new"]["cpu_s"] / row["old"]["cpu_s"], 2)
            rounds.append(row)
    out = {"file": args.file, "against": args.against, "encoder": enc.spec.label,
           "precision": enc.dtype_name, "machine": f"{os.cpu_count()} cores", "rounds": rounds,
           "same_scenes_but_last_every_round": same}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
