"""Videos as scenes: decode with PyAV (FFmpeg), choose frames by content change.

One pass reads every packet but decodes keyframes only (a phone puts one every 1-2 s;
mmsearch/video_decode.py). Each becomes a 64x36 colour thumbnail. Where two consecutive
keyframes differ by more than a small shift explains (a pan is not a cut), the span between
them is decoded from a second handle on the file, up to the first frame-to-frame jump: a hard
cut, placed to the frame. (One packet far bigger than its span's others places the cut with
no decoding at all, on clean footage.) A scene's picture is its first keyframe, or for a shot
shorter than a GOP a frame from its middle. A scene whose content moves away from its picture
ends at a keyframe: after BIG_CHANGE_MIN_S for a change as big as a cut that came without a
jump (a dissolve, a whip pan), after DRIFT_MIN_S for mere drift (<= 2 a minute); a static
shot of any length is one scene.

Bad files raise BadVideo with a one-line reason and no path; a file cut short yields the
scenes it has, then raises. Nothing here imports av until a function is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from mmsearch.video_decode import (FRAME_SIDE, BadVideo, Reader, diff, duration_of,  # noqa: F401
                                   moved_diff, open_video, origin_of, picture)

if TYPE_CHECKING:
    from PIL import Image

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})
# Thresholds on the mean absolute RGB difference (0-255) of two 64x36 thumbnails, chosen on
# bench/video.py's footage (bench/results/video.json "thresholds"): consecutive keyframes
# (1.5 s apart, best shift <= 4 px) differed <= 7.0 within shots and >= 17.4 across cuts;
# consecutive frames <= 1.6 within shots and >= 17.4 at cuts. Each constant sits between.
CUT_KEY = 12.0            # consecutive keyframes this different: look for a cut between them
CUT_FRAME = 10.0          # consecutive frames this different: a hard cut
DRIFT = 8.0               # a keyframe this far from the scene's picture: the content moved on
DRIFT_MIN_S = 30.0        # ...but small drift ends a scene at most this often (<= 2 per minute)
BIG_CHANGE_MIN_S = 5.0    # a change as big as a cut, without a jump (a dissolve): this often
MIN_SCENE_S = 0.5         # no hard cut this soon after the last boundary (flashes, strobes)
# A cut between keyframes is placed by packet size alone when one packet stands out (an
# encoder codes the frame after a cut mostly anew); otherwise the span is decoded. Measured
# on x264: in the test videos (little noise) the packet after a cut was 5.4-5.8x the span's
# median and 3.4-3.5x the next biggest; in bench/video.py's noisy 1080p ("spikes") spans
# with a cut had only >= 2.0x and >= 1.26x, spans without <= 1.4x and <= 1.12x, so there it
# never fires. A false spike costs a wrong cut, a missed one only decoding: both must hold.
# SPIKE_RATIO = inf turns this off (bench/video.py compares both ways).
SPIKE_RATIO, SPIKE_OVER_SECOND = 4.0, 2.0
MAX_SECONDS = 12 * 3600.0  # "a container that never ends": stop reading at 12 hours


@dataclass(frozen=True)
class Scene:
    start: float              # seconds from the video's start
    end: float                # seconds; the next scene's start, or the video's end
    frame: "Image.Image"      # RGB, upright, the scene's representative frame, long side <= FRAME_SIDE


@dataclass(frozen=True)
class VideoInfo:
    duration: float   # seconds, from the header (0.0 when it does not say)
    width: int        # as stored: a phone's portrait video may say 1920x1080 (frames come upright)
    height: int
    fps: float
    codec: str


def probe(path: str) -> VideoInfo:
    """The header's facts (no frame decoded); BadVideo if it is not a readable video."""
    container, stream = open_video(path)
    with container:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        cc = stream.codec_context
        return VideoInfo(duration=duration_of(container, stream), width=cc.width, height=cc.height,
                         fps=float(rate) if rate else 0.0, codec=cc.name)


def scenes(path: str, max_seconds: float = MAX_SECONDS) -> Iterator[Scene]:
    """The video's scenes in time order, covering [0, end] without gaps; BadVideo before the
    first scene, or after the good ones of a file cut short. `max_seconds`: stop there."""
    reader = Reader(path, max_seconds)
    try:
        yield from _scenes(reader)
    finally:
        reader.close()


def _scenes(reader: Reader) -> Iterator[Scene]:
    start, anchor, pic = 0.0, None, None      # the open scene: start, its thumbnail, picture
    prev = None                               # (time, thumbnail) of the last keyframe
    for t, thumb, frame in reader.keyframes():
        if prev is None:
            anchor, pic, prev = thumb, picture(frame, sar=reader.sar), (t, thumb)
            continue
        cuts = []
        if _differs(prev[1], thumb, CUT_KEY):
            at = None if reader.dense else reader.spike(prev[0], t, SPIKE_RATIO,
                                                          SPIKE_OVER_SECOND)
            if at is not None:
                cuts = [(at, None)] if at - start >= MIN_SCENE_S else []
            else:
                span = ([(prev[0], prev[1], None), (t, thumb, None)] if reader.dense
                        else reader.refine(prev[0], t))
                cuts = _cuts(span, prev[1], start, thumb)
        for cut, sub_pic in cuts:
            yield Scene(start, cut, pic)
            start, pic = cut, sub_pic
        if cuts:  # the last shot reaches this keyframe: it is the shot's picture
            anchor, pic = thumb, picture(frame, sar=reader.sar)
        else:
            length = t - start
            if ((length >= BIG_CHANGE_MIN_S and _differs(anchor, thumb, CUT_KEY))
                    or (length >= DRIFT_MIN_S and diff(anchor, thumb) >= DRIFT)):
                yield Scene(start, t, pic)
                start, anchor, pic = t, thumb, picture(frame, sar=reader.sar)
        prev = (t, thumb)
    if pic is None:
        raise BadVideo(reader.stopped or "truncated: no decodable frame")
    end = max(reader.data_end, prev[0], start)
    yield Scene(start, end, pic)
    if reader.stopped:
        raise BadVideo(reader.stopped)
    if 0 < reader.duration <= reader.max_seconds and end < reader.duration - max(
            1.0, 0.02 * reader.duration):
        raise BadVideo(f"truncated: ends at {end:.1f} s of {reader.duration:.1f} s")


def _differs(a: np.ndarray, b: np.ndarray, threshold: float, reach: int = 4) -> bool:
    """moved_diff(a, b) >= threshold, without trying shifts when the plain diff is below it
    (a shift can only lower the difference)."""
    return diff(a, b) >= threshold and moved_diff(a, b, reach) >= threshold


def _cuts(frames, before: np.ndarray, start: float, after: np.ndarray
          ) -> list[tuple[float, object]]:
    """Hard cuts among a span's frames: (time, picture of the shot from there when that shot
    ends inside the span, else None: the keyframe ending the span is its picture). Stops
    decoding at a cut whose frame already looks like that keyframe (`after`): on average
    half a span is decoded for one cut inside it."""
    times, pics, last = [], [], start
    for ft, thumb, pic in frames:
        if pic is not None:
            pics.append((ft, pic))
        if ft - last >= MIN_SCENE_S and _differs(before, thumb, CUT_FRAME, reach=2):
            times.append(ft)
            last = ft
            if not _differs(thumb, after, CUT_KEY):
                break
        before = thumb
    out = []
    for i, cut in enumerate(times):
        if i + 1 == len(times):
            out.append((cut, None))
            break
        middle = (cut + times[i + 1]) / 2
        # pictures are kept every REP_STEP_S < MIN_SCENE_S: the shot has one near its middle
        out.append((cut, min(pics, key=lambda x: abs(x[0] - middle))[1]))
    return out


def frame_at(path: str, time: float, side: int = FRAME_SIDE) -> "Image.Image":
    """The frame shown at `time` seconds, upright, long side <= side (for thumbnails)."""
    import av

    container, stream = open_video(path)
    with container:
        origin, tb = origin_of(stream), stream.time_base
        best = None
        try:
            container.seek(max(0, round((max(time, 0.0) + origin) / tb)), stream=stream,
                           backward=True)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                if best is not None and float(frame.pts * tb) - origin > time + 1e-3:
                    break
                best = picture(frame, side, stream.sample_aspect_ratio)
        except av.FFmpegError:
            pass
        if best is None:
            raise BadVideo("truncated: no decodable frame")
        return best
