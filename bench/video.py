"""Video scenes: decode vs encode time on 1 hour of 1080p H.264, scene accuracy, memory.

    nice python bench/video.py [--hour-times 20] [--out bench/results/video.json]

Footage (bench/video_clips.py, cached in bench/.cache/): 3 minutes of unique 1080p30 H.264
(~19 Mbps, a keyframe every 1.5 s, cuts off the keyframes) made of demo pictures panned with
sensor noise, muxed 20 times over into a real 1-hour file (its content repeats). Measured:
- thresholds: the thumbnail differences across true cuts and within shots (what chose the
  constants in mmsearch/video.py);
- accuracy on the unique 3 minutes: true cuts found within 0.5 s, extra boundaries;
- a static shot (10 min, 640x360, noise): scenes per minute;
- decode: `scenes()` over the hour (wall and CPU seconds, keyframe pass vs refinement);
- encode: the chosen frames through the demo model and ViT-B-32 (untrained weights: the
  speed is the architecture's), 2 threads;
- memory: peak RSS over the idle process (model loaded) while a subprocess indexes a 2-hour
  1080p file (a low-bitrate clip muxed 120 times: memory follows frame size, not bitrate);
- a text query per scene ("a red sneaker") against the scenes' vectors: the top scene's
  start within 1.5 s of the true one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

import video_clips as clips  # noqa: E402
from mmsearch import video, video_decode  # noqa: E402

FLOOR_S = 240.0


def thresholds(path: Path, plan: list[dict]) -> dict:
    """Differences of consecutive keyframes (shift-tolerant, as for CUT_KEY) and of
    consecutive frames (as for CUT_FRAME), across the true cuts and within shots."""
    import av

    cuts = [s["start"] for s in plan[1:]]
    reader = video.Reader(str(path), video.MAX_SECONDS)
    keys = [(t, th) for t, th, _ in reader.keyframes()]
    reader.close()
    k_cut, k_same = [], []
    for (a, ta), (b, tb) in zip(keys, keys[1:]):
        (k_cut if any(a < c <= b for c in cuts) else k_same).append(video.moved_diff(ta, tb))
    f_cut, f_same, prev = [], [], None
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            th, t = video_decode.thumb(frame), float(frame.time)
            if prev is not None:
                d = video.moved_diff(prev, th)
                (f_cut if any(abs(t - x) < 0.02 for x in cuts) else f_same).append(d)
            prev = th
    return {"keyframes_across_cut_min": round(min(k_cut), 2),
            "keyframes_within_shot_max": round(max(k_same), 2),
            "keyframes_within_shot_p99": round(float(np.percentile(k_same, 99)), 2),
            "frames_at_cut_min": round(min(f_cut), 2),
            "frames_within_shot_max": round(max(f_same), 2),
            "constants": {"CUT_KEY": video.CUT_KEY, "CUT_FRAME": video.CUT_FRAME,
                          "DRIFT": video.DRIFT}}


def spikes(path: Path, plan: list[dict]) -> dict:
    """Per keyframe span: the biggest packet over the span's median and over the next biggest,
    for spans holding a true cut and spans without (what chose SPIKE_RATIO/OVER_SECOND)."""
    import av

    cuts = [s["start"] for s in plan[1:]]
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        packets = sorted((float(p.pts * st.time_base), p.size, p.is_keyframe)
                         for p in c.demux(st) if p.size)
    keys = [i for i, p in enumerate(packets) if p[2]] + [len(packets)]
    with_cut, without = [], []
    for a, b in zip(keys, keys[1:]):
        span = sorted((size, t) for t, size, _ in packets[a + 1:b])
        if len(span) < 3:
            continue
        ratios = (span[-1][0] / span[len(span) // 2][0], span[-1][0] / span[-2][0])
        end = packets[b][0] if b < len(packets) else 1e9
        inside = [c for c in cuts if packets[a][0] < c < end]
        (with_cut if inside else without).append(ratios)
    return {"spans_with_cut": len(with_cut),
            "with_cut_min_over_median": round(min(r[0] for r in with_cut), 1),
            "with_cut_min_over_second": round(min(r[1] for r in with_cut), 2),
            "without_max_over_median": round(max(r[0] for r in without), 1),
            "without_max_over_second": round(max(r[1] for r in without), 2),
            "without_passing_both": sum(r[0] >= video.SPIKE_RATIO and
                                        r[1] >= video.SPIKE_OVER_SECOND for r in without),
            "with_cut_passing_both": sum(r[0] >= video.SPIKE_RATIO and
                                         r[1] >= video.SPIKE_OVER_SECOND for r in with_cut)}


def spike_vs_decode(path: Path, plan: list[dict], rounds: int = 2) -> dict:
    """The unique clip with cuts placed by packet sizes vs by decoding, interleaved."""
    out = {"spikes": [], "decoding": []}
    ratio = video.SPIKE_RATIO
    for _ in range(rounds):
        for way in out:
            video.SPIKE_RATIO = ratio if way == "spikes" else float("inf")
            try:
                found, timing = timed_scenes(path)
            finally:
                video.SPIKE_RATIO = ratio
            out[way].append({**timing, **accuracy(found, plan)})
    return out


def timed_scenes(path: Path) -> tuple[list, dict]:
    """scenes() with the time spent refining counted apart from the keyframe pass."""
    spent = {"refine_s": 0.0}
    readers = []
    original, init = video.Reader.refine, video.Reader.__init__

    def refine(self, t0, t1):  # times the decoding only, not what the caller does between
        frames = original(self, t0, t1)
        while True:
            t = time.perf_counter()
            try:
                item = next(frames)
            except StopIteration:
                return
            finally:
                spent["refine_s"] += time.perf_counter() - t
            yield item

    def track(self, *a, **k):
        init(self, *a, **k)
        readers.append(self)

    video.Reader.refine, video.Reader.__init__ = refine, track
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        found = list(video.scenes(str(path)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        video.Reader.refine, video.Reader.__init__ = original, init
    r = readers[0]
    return found, {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                   "refine_wall_s": round(spent["refine_s"], 1), "refinements": r.refinements,
                   "refined_frames": r.refined_frames, "keyframes_decoded": r.sampled,
                   "keyframe_pass_wall_s": round(wall - spent["refine_s"], 1)}


def accuracy(found: list, plan: list[dict]) -> dict:
    cuts = [s["start"] for s in plan[1:]]
    starts = [s.start for s in found[1:]]
    hit = [min((abs(s - c) for s in starts), default=9e9) for c in cuts]
    extra = [s for s in starts if min(abs(s - c) for c in cuts) > 0.5]
    return {"true_cuts": len(cuts), "found_within_0_5s": sum(h <= 0.5 for h in hit),
            "max_error_s": round(max(h for h in hit if h <= 0.5), 3),
            "extra_boundaries": len(extra), "scenes": len(found)}


def static_shot(minutes: float = 10) -> dict:
    path = clips.CACHE / "static640.mp4"
    if not path.exists():
        plan = [{"start": 0.0, "end": minutes * 60, "picture": "item-0004.png", "dx": 0, "dy": 0}]
        clips.write_clip(path, minutes * 60, size=(640, 360), gop=30, plan=plan)
    found = list(video.scenes(str(path)))
    return {"minutes": minutes, "scenes": len(found),
            "scenes_per_minute": round(len(found) / minutes, 2)}


def encode(frames: list, model: str, pretrained: str | None) -> dict:
    import torch

    from mmsearch.config import ModelSpec
    from mmsearch.encoder import Encoder

    torch.set_num_threads(2)
    enc = Encoder(ModelSpec.parse(model, pretrained)).warm()
    enc.encode_images(frames[:4])  # first-call overheads out of the timing
    t = time.perf_counter()
    vectors = enc.encode_images(frames, batch_size=32)
    dt = time.perf_counter() - t
    return {"model": enc.spec.label, "precision": enc.dtype_name, "frames": len(frames),
            "encode_s": round(dt, 2), "per_frame_ms": round(dt / len(frames) * 1e3, 1),
            "vectors": vectors, "encoder": enc}


def queries(found: list, plan: list[dict], encoder) -> dict:
    """One query per true scene with a unique label ("a red sneaker"): is the top scene's
    start within 1.5 s of the true scene's, or at least inside it (a pan re-sampled)?"""
    labels = json.loads((clips.DEMO / "labels.json").read_text())
    words = [f"a {labels[s['picture']]['colour']} {labels[s['picture']]['class']}" for s in plan]
    unique = [i for i, w in enumerate(words) if words.count(w) == 1]
    text = encoder.encode_texts([words[i] for i in unique])
    best = (text @ encoder.encode_images([s.frame for s in found]).T).argmax(axis=1)
    top = [found[b] for b in best]
    truth = [plan[i] for i in unique]
    return {"queries": len(unique),
            "top_scene_within_1_5s": sum(abs(f.start - t["start"]) <= 1.5
                                         for f, t in zip(top, truth)),
            "top_scene_inside_the_true_scene": sum(t["start"] - 1.5 <= f.start < t["end"]
                                                   for f, t in zip(top, truth)),
            "misses": [{"query": words[i], "true": [t["start"], t["end"]],
                        "top": round(f.start, 2)} for i, f, t in zip(unique, top, truth)
                       if not t["start"] - 1.5 <= f.start < t["end"]]}


MEMORY_CHILD = """
import sys, time
from mmsearch.config import ModelSpec
from mmsearch.encoder import Encoder
from mmsearch import video
from PIL import Image
def status(key):  # this process's own numbers: ru_maxrss would carry the parent's over exec
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
enc = Encoder(ModelSpec.parse("demo")).warm()
enc.encode_images([Image.new("RGB", (448, 252))] * 32)
import av
idle = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # the high-water mark starts again from here
batch, n, t = [], 0, time.perf_counter()
for scene in video.scenes(sys.argv[1]):
    batch.append(scene.frame); n += 1
    if len(batch) == 32:
        enc.encode_images(batch); batch = []
enc.encode_images(batch)
print(idle, status("VmHWM"), n, time.perf_counter() - t)
"""


def memory(path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(clips.ROOT)}
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(path)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    idle, peak = int(out[0]) / 1024, int(out[1]) / 1024  # KiB
    return {"video_hours": 2, "idle_rss_mb": round(idle), "peak_rss_mb": round(peak),
            "over_idle_mb": round(peak - idle), "scenes": int(out[2]),
            "wall_s": round(float(out[3]), 1), "floor_mb": 1536,
            "how": "a fresh process with the demo model loaded and warm (idle = its RSS); "
                   "peak = VmHWM while scenes() runs over the file and each 32 pictures are "
                   "encoded"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hour-times", type=int, default=20)
    ap.add_argument("--out", default=str(clips.ROOT / "bench/results/video.json"))
    args = ap.parse_args()
    load = os.getloadavg()
    unique, plan = clips.cached("unique180", 180, seed=0)
    hour, hour_plan = clips.cached_repeat(unique, plan, args.hour_times, "hour")
    span = hour_plan[-1]["end"]
    low, low_plan = clips.cached("lowrate60", 60, seed=3, crf=28)
    two_hours, _ = clips.cached_repeat(low, low_plan, 120, "two_hours")
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "load_at_start": [round(x, 2) for x in load],
              "footage": {"unique_s": plan[-1]["end"], "hour_s": span,
                          "hour_mbps": round(hour.stat().st_size * 8 / span / 1e6, 1),
                          "gop_frames": 45, "fps": 30, "size": "1920x1080"}}
    print("thresholds", flush=True)
    result["thresholds"] = thresholds(unique, plan)
    print(result["thresholds"], flush=True)
    result["spikes"] = spikes(unique, plan)
    print(result["spikes"], flush=True)
    result["spike_vs_decode_unique_3min"] = spike_vs_decode(unique, plan)
    print(result["spike_vs_decode_unique_3min"], flush=True)
    found, _ = timed_scenes(unique)
    result["accuracy_unique_3min"] = accuracy(found, plan)
    print(result["accuracy_unique_3min"], flush=True)
    result["static_shot"] = static_shot()
    print(result["static_shot"], flush=True)
    print("decode the hour", flush=True)
    hour_found, decode = timed_scenes(hour)
    decode["scenes"] = len(hour_found)
    decode["scenes_per_minute"] = round(len(hour_found) / (span / 60), 2)
    result["decode_hour"] = decode
    result["accuracy_hour"] = accuracy(hour_found, hour_plan)
    print(decode, result["accuracy_hour"], flush=True)
    frames = [s.frame for s in hour_found]
    result["encode_hour"] = {}
    for key, (model, pre) in {"demo": ("demo", None), "vit_b_32": ("ViT-B-32", "random")}.items():
        out = encode(frames, model, pre)
        if key == "demo":
            result["queries_unique_3min"] = queries(found, plan, out["encoder"])
        result["encode_hour"][key] = {k: v for k, v in out.items()
                                      if k not in ("vectors", "encoder")}
        print(key, result["encode_hour"][key], flush=True)
    vit = result["encode_hour"]["vit_b_32"]["encode_s"]
    result["total_hour_vit_b_32_s"] = round(decode["wall_s"] + vit, 1)
    result["total_hour_vit_b_32_cpu_s"] = round(decode["cpu_s"] + vit, 1)  # encode: wall
    result["floor_s"] = FLOOR_S
    print("memory (2-hour video)", flush=True)
    result["memory"] = memory(two_hours)
    result["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
