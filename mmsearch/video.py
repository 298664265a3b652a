"""Videos as scenes: probe a video file, cut it into scenes, grab a frame at a time.

A SIMPLE STAND-IN for the interface in /work/notes/video_iface.md (helper vindex); the
helper vscenes' fast version replaces this file. It decodes every frame with PyAV, looks at
one frame per SAMPLE seconds, shrinks it to a THUMB x THUMB grayscale thumbnail and starts a
new scene where that thumbnail differs from the previous sample's by more than CUT (mean
absolute difference, 0-255), or where the current scene has lasted MAX_SCENE seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})
FRAME_SIDE = 448
SAMPLE = 0.25      # seconds between the frames compared: a cut is found within 0.25 s
THUMB = 16
CUT = 20.0         # mean |difference| of 16x16 grayscale thumbnails; two demo garments: > 30
MAX_SCENE = 30.0   # a static shot still gives <= 2 scenes a minute
MAX_SIDE = 16384   # wider or taller is not a real video


class BadVideo(Exception):
    """One-line reason a file cannot be read as a video (no path in it; the caller adds it)."""


@dataclass(frozen=True)
class Scene:
    start: float
    end: float
    frame: "object"  # PIL.Image.Image, RGB, long side <= FRAME_SIDE


@dataclass(frozen=True)
class VideoInfo:
    duration: float
    width: int
    height: int
    fps: float
    codec: str


def _open(path: str):
    import av

    try:
        if os.path.getsize(path) == 0:
            raise BadVideo("empty file")
    except OSError as exc:
        raise BadVideo(f"unreadable: {exc.strerror or exc}") from None
    try:
        container = av.open(path)
    except Exception:  # noqa: BLE001 - PyAV raises many kinds for a file it cannot parse
        raise BadVideo("not a video") from None
    if not container.streams.video:
        audio = bool(container.streams.audio)
        container.close()
        raise BadVideo("no video stream (audio only)" if audio else "not a video")
    return container


def _info(container) -> VideoInfo:
    stream = container.streams.video[0]
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise BadVideo(f"absurd dimensions {width}x{height}")
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = 0.0
    fps = float(stream.average_rate or 0)
    return VideoInfo(duration, width, height, fps, stream.codec_context.name or "")


def probe(path: str) -> VideoInfo:
    container = _open(path)
    try:
        return _info(container)
    finally:
        container.close()


def _small(frame, side: int):
    image = frame.to_image()
    image.thumbnail((side, side))
    return image.convert("RGB")


def _frames(container) -> Iterator[tuple[float, object]]:
    """(time, av.VideoFrame) of every decodable frame; BadVideo on a broken stream."""
    stream = container.streams.video[0]
    try:
        for frame in container.decode(stream):
            if frame.time is not None:
                yield float(frame.time), frame
    except Exception as exc:  # noqa: BLE001 - a truncated or corrupt stream
        if isinstance(exc, BadVideo):
            raise
        raise BadVideo("truncated: stopped decoding") from None


def scenes(path: str) -> Iterator[Scene]:
    container = _open(path)
    try:
        info = _info(container)
        start, frame, last_thumb, next_sample, last_time = None, None, None, 0.0, 0.0
        found = False
        for t, f in _frames(container):
            last_time = t
            if t < next_sample and start is not None:
                continue
            next_sample = t + SAMPLE
            thumb = np.asarray(f.to_image().convert("L").resize((THUMB, THUMB)), np.float32)
            if start is None:
                # the first scene starts at 0 even when the first frame's time is later
                start, frame, last_thumb = 0.0, _small(f, FRAME_SIDE), thumb
                continue
            cut = float(np.abs(thumb - last_thumb).mean()) > CUT or t - start >= MAX_SCENE
            last_thumb = thumb
            if cut:
                found = True
                yield Scene(start, t, frame)
                start, frame = t, _small(f, FRAME_SIDE)
        if start is None:
            raise BadVideo("truncated: no decodable frame" if not found else "no frames")
        yield Scene(start, max(info.duration, last_time, start), frame)
    finally:
        container.close()


def frame_at(path: str, time: float, side: int = FRAME_SIDE):
    """The frame shown at `time` seconds (the first one at or after it), long side <= side."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        if time > 0 and stream.time_base:
            container.seek(int(time / stream.time_base), stream=stream, backward=True)
        best = None
        for t, f in _frames(container):
            best = f
            if t + 1e-3 >= time:
                break
        if best is None:
            raise BadVideo("truncated: no decodable frame")
        return _small(best, side)
    finally:
        container.close()
