"""Videos as scenes: decode with PyAV (FFmpeg), choose frames by content change.

One pass reads the whole file but decodes keyframes only (`skip_frame="NONKEY"`): a phone
puts one every 1-2 s, and decoding them is the cost (bench/video.py: ~1/20 of the frames).
Each keyframe becomes a 32x18 colour thumbnail, scaled by FFmpeg's swscale (0.9 ms at 1080p;
PIL's resize of the same frame takes 76 ms). Where two consecutive keyframes differ, the span
between them is decoded in full from a second handle on the file, and a frame-to-frame jump
there is a hard cut, placed to the frame. A scene's picture is its first keyframe (or, for a
shot shorter than a GOP, a frame from its middle); a scene whose content drifts away from
that picture (a pan, a slow dissolve) ends at a keyframe, at most once per DRIFT_MIN_S for
small drift, so a static shot of any length is one scene.

Bad files raise BadVideo with a one-line reason and no path; a file cut short yields the
scenes it has, then raises. Nothing here imports av until a function is called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})
FRAME_SIDE = 448          # long side of Scene.frame: CLIP models take 224-384 px
THUMB = (32, 18)          # the comparison thumbnail (w, h), whatever the video's shape
# Thresholds on the mean absolute RGB difference (0-255) of two thumbnails, chosen on
# bench/video.py's footage (see bench/results/video.json "thresholds"): hard cuts between
# demo pictures measured >= CUT_FRAME_MIN_SEEN, pans between consecutive frames <= a few.
CUT_KEY = 12.0            # consecutive keyframes this different: look for a cut between them
CUT_FRAME = 10.0          # consecutive frames this different: a hard cut
DRIFT = 8.0               # a keyframe this far from the scene's picture: the content moved on
DRIFT_MIN_S = 30.0        # ...but small drift ends a scene at most this often (<= 2 per minute)
BIG_CHANGE_MIN_S = 5.0    # a change as big as a cut, without a jump (a dissolve): this often
MIN_SCENE_S = 0.5         # no hard cut this soon after the last boundary (flashes, strobes)
MIN_STEP_S = 0.5          # keyframes closer than this to the last one are not decoded
MAX_GAP_S = 10.0          # keyframes rarer than this (on average): decode every frame
REP_STEP_S = 0.2          # while refining, keep a picture this often (for shots inside a GOP)
MAX_SECONDS = 12 * 3600.0  # "a container that never ends": stop reading at 12 hours
MAX_PACKETS = int(MAX_SECONDS * 240)  # ...or this many packets (timestamps that never advance)
MIN_SIDE, MAX_SIDE, MAX_ASPECT = 16, 16384, 10.0  # beyond these: "absurd dimensions"
NOT_VIDEO_FORMATS = ("tty", "image2", "_pipe", "mp3", "wav", "flac", "ogg", "aac")
CONTAINER_MAGIC = (b"ftyp", b"\x1a\x45\xdf\xa3", b"RIFF")  # mp4/mov, mkv/webm, avi


class BadVideo(Exception):
    """One-line reason a file cannot be read as a video (no path in it; the caller adds it)."""


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


def _av():
    import av

    return av


def _open(path: str):
    """(container, video stream) or BadVideo."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise BadVideo(f"unreadable: {e.strerror or e}") from None
    if size == 0:
        raise BadVideo("empty file")
    av = _av()
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError as e:
        with open(path, "rb") as f:
            head = f.read(12)
        if any(m in head for m in CONTAINER_MAGIC):
            raise BadVideo("truncated: no decodable frame") from None
        raise BadVideo("not a video" if isinstance(e, av.InvalidDataError)
                       else f"not a video ({_short(e)})") from None
    except OSError as e:
        raise BadVideo(f"unreadable: {e.strerror or e}") from None
    fmt = container.format.name
    video = [s for s in container.streams.video
             if not (s.disposition & av.stream.Disposition.attached_pic)]
    if any(n in fmt for n in NOT_VIDEO_FORMATS):
        container.close()
        raise BadVideo("not a video" if not container.streams.audio or video
                       else "no video stream (audio only)")
    if not video:
        audio = bool(container.streams.audio)
        container.close()
        raise BadVideo("no video stream (audio only)" if audio else "no video stream")
    stream = video[0]
    if stream.codec_context is None:
        container.close()
        raise BadVideo("no decodable stream (unknown codec)")
    w, h = stream.codec_context.width, stream.codec_context.height
    if w and h:
        try:
            _check_size(w, h)
        except BadVideo:
            container.close()
            raise
    return container, stream


def _check_size(w: int, h: int) -> None:
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE or max(w, h) / min(w, h) > MAX_ASPECT:
        raise BadVideo(f"absurd dimensions {w}x{h}")


def _span(seconds: float) -> str:
    return f"{seconds / 3600:g} hours" if seconds >= 3600 else f"{seconds:g} s"


def _short(e: Exception) -> str:
    return str(getattr(e, "strerror", None) or e).splitlines()[0][:80]


def _duration(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return 0.0


def _origin(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def probe(path: str) -> VideoInfo:
    """The header's facts (no frame decoded); BadVideo if it is not a readable video."""
    container, stream = _open(path)
    with container:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        cc = stream.codec_context
        return VideoInfo(duration=_duration(container, stream), width=cc.width, height=cc.height,
                         fps=float(rate) if rate else 0.0, codec=cc.name)


def _thumb(frame) -> np.ndarray:
    return frame.reformat(width=THUMB[0], height=THUMB[1], format="rgb24",
                          interpolation="AREA").to_ndarray().astype(np.int16)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def _moved_diff(a: np.ndarray, b: np.ndarray, reach: int = 2) -> float:
    """_diff after the best shift of up to `reach` thumbnail pixels (6% of the width): a pan
    between two keyframes is not a cut. On bench footage panning <= 2 px/frame, keyframes
    1.5 s apart within a shot differed by up to 21 unshifted, 13.5 shifted; across cuts >= 28."""
    h, w = a.shape[:2]
    best = _diff(a, b)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dx or dy:
                best = min(best, _diff(a[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)],
                                       b[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]))
    return best


def _picture(frame, side: int = FRAME_SIDE, sar=None) -> "Image.Image":
    """The frame upright (display matrix), at its display aspect, long side <= side, scaled by
    swscale (35x faster than PIL here)."""
    from PIL import Image

    _check_size(frame.width, frame.height)
    w, h = frame.width, frame.height
    if sar and sar.numerator > 0 and sar.denominator > 0 and sar != 1:
        w = w * sar.numerator / sar.denominator
    scale = min(1.0, side / max(w, h))
    tw, th = max(2, round(w * scale)), max(2, round(h * scale))
    image = frame.reformat(width=tw, height=th, format="rgb24", interpolation="AREA").to_image()
    turn = {90: Image.Transpose.ROTATE_90, -90: Image.Transpose.ROTATE_270,
            180: Image.Transpose.ROTATE_180, -180: Image.Transpose.ROTATE_180}
    rotation = round((getattr(frame, "rotation", 0) or 0) / 90) * 90
    return image.transpose(turn[rotation]) if rotation in turn else image


class _Reader:
    """The keyframe pass over one file, and a second handle on it to decode spans in full."""

    def __init__(self, path: str, max_seconds: float):
        self.path, self.max_seconds = path, max_seconds
        self.container, self.stream = _open(path)
        self.origin = _origin(self.stream)
        self.sar = self.stream.sample_aspect_ratio  # anamorphic pixels (DV, some TV)
        self.duration = _duration(self.container, self.stream)
        self.data_end = 0.0      # end of the last packet read (seconds from the start)
        self.stopped = ""        # why reading stopped early ("" = the file's end)
        self._span = None        # (container, stream) for refine(), opened when first needed
        self.dense = False       # every frame is sampled (no refinement needed)
        self.packets = self.keys = 0

    def close(self) -> None:
        self.container.close()
        if self._span:
            self._span[0].close()

    def _time(self, pts, tb) -> float | None:
        return None if pts is None else float(pts * tb) - self.origin

    def _sparse(self) -> bool:
        """True when the container's index shows keyframes too rare to sample by (or none)."""
        entries = self.stream.index_entries
        if len(entries) < 2:
            return False  # no index (mkv without cues, avi): the keyframe pass will tell
        keys = sum(1 for e in entries if e.is_keyframe)
        return keys == 0 or (self.duration or 0) / keys > MAX_GAP_S

    def keyframes(self) -> Iterator[tuple[float, np.ndarray, object]]:
        """(time, thumbnail, frame) for keyframes at least MIN_STEP_S apart, in time order;
        every frame (self.dense) when keyframes are rarer than MAX_GAP_S or never flagged."""
        self.dense = self._sparse()
        found = False
        for item in self._pass():
            found = True
            yield item
        if not found and not self.dense and not self.stopped and self.keys == 0 and self.packets:
            self.dense, self.data_end = True, 0.0
            self.container.seek(0)
            yield from self._pass()

    def _pass(self) -> Iterator[tuple[float, np.ndarray, object]]:
        av, stream, dense = _av(), self.stream, self.dense
        # keyframes only: belt and braces, as only keyframe packets are sent
        stream.codec_context.skip_frame = "DEFAULT" if dense else "NONKEY"
        tb, last, self.packets, self.keys = stream.time_base, -1e9, 0, 0
        demux = self.container.demux(stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.FFmpegError as e:
                self.stopped = f"unreadable after {self.data_end:.1f} s ({_short(e)})"
                break
            self.packets += 1
            self.keys += packet.is_keyframe
            t = self._time(packet.pts if packet.pts is not None else packet.dts, tb)
            if t is not None and packet.size:
                end = t + float((packet.duration or 0) * tb)
                if end > self.max_seconds or self.packets > MAX_PACKETS:
                    self.stopped = f"no end: stopped after {_span(self.max_seconds)}"
                    break
                self.data_end = max(self.data_end, end)
            if packet.size and not dense and not (
                    packet.is_keyframe and (t is None or t - last >= MIN_STEP_S)):
                continue
            try:
                frames = stream.decode(packet)
            except av.FFmpegError:
                continue  # one corrupt packet: the next keyframe may decode
            for frame in frames:
                ft = self._time(frame.pts, frame.time_base or tb)
                if ft is None or ft <= last:
                    continue
                last = ft
                yield ft, _thumb(frame), frame

    def refine(self, t0: float, t1: float) -> list[tuple[float, np.ndarray, object]]:
        """Every frame in [t0, t1]: (time, thumbnail, picture or None every REP_STEP_S)."""
        av = _av()
        if self._span is None:
            self._span = _open(self.path)
        container, stream = self._span
        tb = stream.time_base
        out, next_pic = [], -1.0
        try:
            container.seek(round((t0 + self.origin) / tb), stream=stream, backward=True)
            for frame in container.decode(stream):
                ft = self._time(frame.pts, frame.time_base or tb)
                if ft is None or ft < t0 - 1e-3:
                    continue
                if ft > t1 + 1e-3:
                    break
                pic = None
                if ft >= next_pic:
                    pic, next_pic = _picture(frame, sar=self.sar), ft + REP_STEP_S
                out.append((ft, _thumb(frame), pic))
        except av.FFmpegError:
            pass  # what decoded is still good; the keyframe pass decides what is truncated
        return out


def scenes(path: str, max_seconds: float = MAX_SECONDS) -> Iterator[Scene]:
    """The video's scenes in time order, covering [0, end] without gaps; BadVideo before the
    first scene, or after the good ones of a file cut short. `max_seconds`: stop there."""
    reader = _Reader(path, max_seconds)
    try:
        yield from _scenes(reader)
    finally:
        reader.close()


def _scenes(reader: _Reader) -> Iterator[Scene]:
    start, anchor, pic = 0.0, None, None      # the open scene: start, its thumbnail, picture
    prev = None                               # (time, thumbnail) of the last keyframe
    for t, thumb, frame in reader.keyframes():
        if prev is None:
            anchor, pic, prev = thumb, _picture(frame, sar=reader.sar), (t, thumb)
            continue
        cuts = []
        if _moved_diff(prev[1], thumb) >= CUT_KEY:
            span = ([(prev[0], prev[1], None), (t, thumb, None)] if reader.dense
                    else reader.refine(prev[0], t))
            cuts = _cuts(span, prev[1], start)
        for cut, sub_pic in cuts:
            yield Scene(start, cut, pic)
            start, pic = cut, sub_pic
        if cuts:  # the last shot reaches this keyframe: it is the shot's picture
            anchor, pic = thumb, _picture(frame, sar=reader.sar)
        else:
            length = t - start
            if ((length >= BIG_CHANGE_MIN_S and _moved_diff(anchor, thumb) >= CUT_KEY)
                    or (length >= DRIFT_MIN_S and _diff(anchor, thumb) >= DRIFT)):
                yield Scene(start, t, pic)
                start, anchor, pic = t, thumb, _picture(frame, sar=reader.sar)
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


def _cuts(frames: list, before: np.ndarray, start: float) -> list[tuple[float, object]]:
    """Hard cuts among refined frames: (time, picture of the shot from there when that shot
    ends before the span does, else None: the next keyframe is its picture)."""
    times, last = [], start
    for ft, thumb, _ in frames:
        if ft - last >= MIN_SCENE_S and _moved_diff(before, thumb) >= CUT_FRAME:
            times.append(ft)
            last = ft
        before = thumb
    out = []
    for i, cut in enumerate(times):
        if i + 1 == len(times):
            out.append((cut, None))
            break
        middle = (cut + times[i + 1]) / 2
        # pictures are kept every REP_STEP_S < MIN_SCENE_S: the shot has one near its middle
        pics = [(abs(ft - middle), p) for ft, _, p in frames if p is not None]
        out.append((cut, min(pics, key=lambda x: x[0])[1]))
    return out


def frame_at(path: str, time: float, side: int = FRAME_SIDE) -> "Image.Image":
    """The frame shown at `time` seconds, upright, long side <= side (for thumbnails)."""
    av = _av()
    container, stream = _open(path)
    with container:
        origin, tb = _origin(stream), stream.time_base
        best = None
        try:
            container.seek(max(0, round((max(time, 0.0) + origin) / tb)), stream=stream,
                           backward=True)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                if best is not None and float(frame.pts * tb) - origin > time + 1e-3:
                    break
                best = _picture(frame, side, stream.sample_aspect_ratio)
        except av.FFmpegError:
            pass
        if best is None:
            raise BadVideo("truncated: no decodable frame")
        return best
