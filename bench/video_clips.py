"""Synthetic but realistic H.264 test footage for bench/video.py (cached under bench/.cache/).

A "unique" clip is made of scenes of varied length, each one demo picture upscaled (nearest,
so edges stay sharp) onto a 16:9 canvas with a static sensor-like grain texture, slowly panned
(so no two frames are identical and the encoder has real motion to code). Encoded with libx264
(bundled with PyAV), High profile with CABAC, no B-frames and a keyframe every GOP frames, as
phones record; `sc_threshold=0`, so cuts do not get keyframes of their own (the worst case for
placing a cut: it falls inside a GOP). Longer clips are the unique clip's packets muxed again
with shifted timestamps (no re-encoding: generating 1 hour at ~40 fps would take 45 minutes
on 2 cores), so they are real 1- and 2-hour files, whose content repeats.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
DEMO = ROOT / "assets" / "demo"
# scene lengths in seconds, drawn with replacement: mostly short shots, some long ones, as in
# edited footage (mean ~9 s)
# grain: a static texture (moves with the pan); noise: changes every frame. With crf 20 these
# gave 18.8 Mbps, I-frames ~380 KB and P-frames ~70 KB (a 6 s trial): about a phone's
# 1080p30 H.264 (12-17 Mbps), a little heavier
GRAIN, NOISE = 4, 3
LENGTHS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0, 40.0)


def scene_plan(seconds: float, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    names = sorted(p.name for p in DEMO.glob("item-*.png"))
    plan, t = [], 0.0
    while t < seconds - 0.5:
        length = min(rng.choice(LENGTHS), seconds - t)
        plan.append({"start": round(t, 3), "end": round(t + length, 3),
                     "picture": rng.choice(names), "dx": rng.choice((-1, 1)) * rng.uniform(0.5, 2),
                     "dy": rng.choice((-1, 1)) * rng.uniform(0, 1)})
        t += length
    return plan


def _canvas(picture: str, width: int, height: int, rng: np.random.Generator,
            grain: int) -> np.ndarray:
    """The picture filling a canvas 1.25x the frame, on its own background colour, with grain."""
    im = Image.open(DEMO / picture).convert("RGB")
    cw, ch = int(width * 1.25), int(height * 1.25)
    scale = ch // im.height
    big = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (cw, ch), im.getpixel((0, 0)))
    canvas.paste(big, ((cw - big.width) // 2, (ch - big.height) // 2))
    arr = np.asarray(canvas).astype(np.int16)
    arr += rng.integers(-grain, grain + 1, arr.shape, dtype=np.int16)
    return np.clip(arr, 0, 255).astype(np.uint8)


def write_clip(path: Path, seconds: float, size=(1920, 1080), fps: int = 30, gop: int = 45,
               seed: int = 0, crf: int = 20, grain: int = GRAIN, noise: int = NOISE,
               plan: list[dict] | None = None) -> list[dict]:
    """Encode `seconds` of footage to `path` (`plan`'s scenes, else a random plan); returns
    the scene plan (the ground truth)."""
    import av

    width, height = size
    plan = plan or scene_plan(seconds, seed)
    rng = np.random.default_rng(seed)
    # sensor noise that changes every frame, so P-frames carry residual as a camera's do: a
    # cycle of 7 fields (fresh noise per frame costs 30 ms; x264's 1-3 references see no cycle)
    fields = [rng.integers(0, 2 * noise + 1, (height, width, 3), dtype=np.uint8)
              for _ in range(7)]
    tmp = path.with_suffix(".part" + path.suffix)
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "superfast", "crf": str(crf), "bf": "0", "g": str(gop),
                          "keyint_min": str(gop), "sc_threshold": "0"}
        frame_no = 0
        for scene in plan:
            canvas = _canvas(scene["picture"], width, height, rng, grain)
            np.clip(canvas, noise, 255 - noise, out=canvas)
            x0, y0 = (canvas.shape[1] - width) // 2, (canvas.shape[0] - height) // 2
            n = round(scene["end"] * fps) - frame_no
            for i in range(n):
                x = int(np.clip(x0 + scene["dx"] * i, 0, canvas.shape[1] - width))
                y = int(np.clip(y0 + scene["dy"] * i, 0, canvas.shape[0] - height))
                pixels = canvas[y:y + height, x:x + width] + fields[(frame_no + i) % 7]
                pixels -= noise
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
            frame_no += n
        for packet in stream.encode():
            out.mux(packet)
    tmp.rename(path)
    return plan


def repeat_clip(src: Path, dst: Path, times: int) -> None:
    """`src`'s packets `times` over with shifted timestamps: a long real file, no re-encoding."""
    import av

    tmp = dst.with_suffix(".part" + dst.suffix)
    with av.open(str(src)) as inp:
        s_in = inp.streams.video[0]
        packets_span = None
        with av.open(str(tmp), "w") as out:
            s_out = out.add_stream_from_template(s_in)
            for rep in range(times):
                inp.seek(0)
                last = 0
                for packet in inp.demux(s_in):
                    if packet.size == 0 or packet.pts is None:
                        continue
                    span = packets_span or 0
                    last = max(last, packet.pts + (packet.duration or 0))
                    packet.pts += rep * span
                    packet.dts += rep * span
                    packet.stream = s_out
                    out.mux(packet)
                packets_span = packets_span or last
    tmp.rename(dst)


def cached(name: str, seconds: float, **kw) -> tuple[Path, list[dict]]:
    """The unique clip `name` of `seconds`, made once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path, truth = CACHE / f"{name}.mp4", CACHE / f"{name}.json"
    if not (path.exists() and truth.exists()):
        truth.write_text(json.dumps(write_clip(path, seconds, **kw)))
    return path, json.loads(truth.read_text())


def cached_repeat(src: Path, plan: list[dict], times: int, name: str) -> tuple[Path, list[dict]]:
    dst = CACHE / f"{name}.mp4"
    if not dst.exists():
        repeat_clip(src, dst, times)
    span = plan[-1]["end"]
    return dst, [{**s, "start": s["start"] + r * span, "end": s["end"] + r * span}
                 for r in range(times) for s in plan]
