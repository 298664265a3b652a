"""Decoding for mmsearch.video: opening a file safely, thumbnails, pictures, the passes.

The keyframe pass reads every packet but decodes keyframes only (`skip_frame="NONKEY"`, and
only keyframe packets are sent); a second handle decodes a span in full when asked. Each
sampled frame becomes a 32x18 colour thumbnail scaled by FFmpeg's swscale (0.9 ms at 1080p;
PIL's resize of the same frame takes 76 ms, measured here). Nothing imports av at import.
"""

from __future__ import annotations

import os
from collections import deque
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

FRAME_SIDE = 448          # long side of Scene.frame: CLIP models take 224-384 px
# the comparison thumbnail (w, h), whatever the video's shape. On bench footage (pans <= 2
# px/frame, keyframes 1.5 s apart) 64x36 with shifts up to 4 px kept shots <= 7.0 and cuts
# >= 17.4 apart; 32x18 (shifts <= 2) overlapped: shots up to 14.9, cuts from 16.4
THUMB = (64, 36)
# FFmpeg frame threads: 0.76-0.89x the wall time of PyAV's default (slice threads, which
# x264's one-slice frames cannot use) at the same CPU time, on the bench's 3 minutes (two
# interleaved rounds, load 3.6-11 on 2 cores); capped: each thread holds frames (memory)
THREADS, THREAD_COUNT = "FRAME", min(4, os.cpu_count() or 1)
MIN_STEP_S = 0.5          # keyframes closer than this to the last one are not decoded
MAX_GAP_S = 10.0          # keyframes rarer than this (on average): decode every frame
REP_STEP_S = 0.2          # while refining, keep a picture this often (for shots inside a GOP)
MAX_PACKETS_PER_S = 240   # more packets than this per second of the bound: timestamps stuck
MIN_SIDE, MAX_SIDE, MAX_ASPECT = 16, 16384, 10.0  # beyond these: "absurd dimensions"
NOT_VIDEO_FORMATS = ("tty", "image2", "_pipe", "mp3", "wav", "flac", "ogg", "aac")
CONTAINER_MAGIC = (b"ftyp", b"\x1a\x45\xdf\xa3", b"RIFF")  # mp4/mov, mkv/webm, avi


class BadVideo(Exception):
    """One-line reason a file cannot be read as a video (no path in it; the caller adds it)."""


def _av():
    import av

    return av


def open_video(path: str):
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
            check_size(w, h)
        except BadVideo:
            container.close()
            raise
    return container, stream


def check_size(w: int, h: int) -> None:
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE or max(w, h) / min(w, h) > MAX_ASPECT:
        raise BadVideo(f"absurd dimensions {w}x{h}")


def _span(seconds: float) -> str:
    return f"{seconds / 3600:g} hours" if seconds >= 3600 else f"{seconds:g} s"


def _short(e: Exception) -> str:
    return str(getattr(e, "strerror", None) or e).splitlines()[0][:80]


def duration_of(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return 0.0


def origin_of(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def thumb(frame) -> np.ndarray:
    return frame.reformat(width=THUMB[0], height=THUMB[1], format="rgb24",
                          interpolation="AREA").to_ndarray().astype(np.int16)


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def moved_diff(a: np.ndarray, b: np.ndarray, reach: int = 4) -> float:
    """diff after the best shift of up to `reach` thumbnail pixels (6% of the width): a pan
    between two keyframes is not a cut (~1.2 ms for 64x36)."""
    h, w = a.shape[:2]
    best = diff(a, b)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dx or dy:
                best = min(best, diff(a[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)],
                                       b[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]))
    return best


def picture(frame, side: int = FRAME_SIDE, sar=None) -> "Image.Image":
    """The frame upright (display matrix), at its display aspect, long side <= side, scaled by
    swscale (35x faster than PIL here)."""
    from PIL import Image

    check_size(frame.width, frame.height)
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


class Reader:
    """The keyframe pass over one file, and a second handle on it to decode spans in full."""

    def __init__(self, path: str, max_seconds: float):
        self.path, self.max_seconds = path, max_seconds
        self.container, self.stream = open_video(path)
        self._threads(self.stream)
        self.origin = origin_of(self.stream)
        self.sar = self.stream.sample_aspect_ratio  # anamorphic pixels (DV, some TV)
        self.duration = duration_of(self.container, self.stream)
        self.data_end = 0.0      # end of the last packet read (seconds from the start)
        self.stopped = ""        # why reading stopped early ("" = the file's end)
        self._span = None        # (container, stream) for refine(), opened when first needed
        self.dense = False       # every frame is sampled (no refinement needed)
        # (time, size) of recent non-key packets, for spike(): two gaps' worth at most
        self.sizes: deque = deque(maxlen=int(2 * MAX_GAP_S * MAX_PACKETS_PER_S))
        self.packets = self.keys = 0
        self.refinements = self.refined_frames = self.sampled = 0  # what refine() cost (bench/video.py)

    @staticmethod
    def _threads(stream) -> None:
        if THREADS:
            stream.thread_type, stream.thread_count = THREADS, THREAD_COUNT

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
            end = t + float((packet.duration or 0) * tb) if t is not None else 0.0
            if end > self.max_seconds or self.packets > MAX_PACKETS_PER_S * self.max_seconds:
                self.stopped = f"no end: stopped after {_span(self.max_seconds)}"
                break
            if t is not None and packet.size:
                self.data_end = max(self.data_end, end)
                if not packet.is_keyframe:
                    self.sizes.append((t, packet.size))
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
                self.sampled += 1
                yield ft, thumb(frame), frame

    def spike(self, t0: float, t1: float, ratio: float, over_second: float) -> float | None:
        """The time of the one packet in (t0, t1) far bigger than the others, if there is one:
        an encoder codes the first frame after a cut mostly anew. Cheap: no decoding. Not
        with B-frames: there the big packet is the next P-frame, up to 0.4 s after the cut
        (x265's default 4 B-frames at 10 fps, measured), so the span is decoded instead."""
        if self.stream.codec_context.has_b_frames:
            return None
        span = [(size, t) for t, size in self.sizes if t0 < t < t1]
        if len(span) < 3:
            return None
        span.sort()
        (second, _), (biggest, at) = span[-2], span[-1]
        median = span[len(span) // 2][0]
        return at if biggest >= ratio * median and biggest >= over_second * second else None

    def refine(self, t0: float, t1: float) -> Iterator[tuple[float, np.ndarray, object]]:
        """Every frame in [t0, t1], lazily (stop when you know enough): (time, thumbnail,
        picture or None; one every REP_STEP_S)."""
        av = _av()
        if self._span is None:
            self._span = open_video(self.path)
            # no deblocking, non-spec speed-ups: -15% CPU per frame here (bench footage), and
            # a thumbnail does not see the difference
            self._span[1].codec_context.options = {"skip_loop_filter": "all", "flags2": "+fast"}
            self._threads(self._span[1])
        container, stream = self._span
        tb = stream.time_base
        next_pic = -1.0
        self.refinements += 1
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
                    pic, next_pic = picture(frame, sar=self.sar), ft + REP_STEP_S
                self.refined_frames += 1
                yield ft, thumb(frame), pic
        except av.FFmpegError:
            pass  # what decoded is still good; the keyframe pass decides what is truncated
