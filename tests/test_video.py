"""mmsearch.video on real video files written with PyAV (libx264) from the demo pictures.

Small on purpose (320x180, 10 fps, a keyframe every 1.5 s as phones do): the whole file runs
in seconds. Cuts are placed off the keyframes, where they are hardest to find.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsearch import video
from mmsearch.config import DEMO_PICTURES_DIR

av = pytest.importorskip("av")

W, H, FPS, GOP = 320, 180, 10, 15
# three clearly different demo pictures: an orange boot, a green shirt, a blue sneaker
SHOTS = ["item-0000.png", "item-0004.png", "item-0009.png"]


def canvas(name: str, size=(W, H)) -> np.ndarray:
    """The demo picture filling the frame's height, centred on its own background colour."""
    pic = Image.open(DEMO_PICTURES_DIR / name).convert("RGB")
    side = min(size)
    frame = Image.new("RGB", size, pic.getpixel((0, 0)))
    frame.paste(pic.resize((side, side)), ((size[0] - side) // 2, (size[1] - side) // 2))
    return np.asarray(frame)


def write(path: Path, shots: list[tuple[np.ndarray, float]], fps: int = FPS, rotation: int = 0,
          options: dict | None = None, noise: int = 3, gop: int = GOP) -> Path:
    """Encode (picture, seconds) shots back to back, with a little sensor noise per frame."""
    rng = np.random.default_rng(0)
    h, w = shots[0][0].shape[:2]
    with av.open(str(path), "w", options=options or {}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0",
                          "preset": "ultrafast"}
        if rotation:
            stream.set_display_rotation(rotation)
        for picture, seconds in shots:
            base = picture.astype(np.int16)
            for _ in range(round(seconds * fps)):
                jitter = rng.integers(-noise, noise + 1, base.shape, dtype=np.int16)
                pixels = np.clip(base + jitter, 0, 255).astype(np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def nearest_shot(image: Image.Image, candidates: list[np.ndarray]) -> int:
    small = np.asarray(image.convert("RGB").resize((64, 36)), dtype=np.float32)
    diffs = [np.abs(small - np.asarray(Image.fromarray(c).resize((64, 36)), dtype=np.float32)
                    ).mean() for c in candidates]
    return int(np.argmin(diffs))


@pytest.fixture(scope="module")
def three_shots(tmp_path_factory) -> tuple[Path, list[np.ndarray], list[float]]:
    """Three 3.3-3.4 s shots: hard cuts at 3.3 s and 6.7 s, neither on a keyframe (1.5 s)."""
    pictures = [canvas(n) for n in SHOTS]
    path = write(tmp_path_factory.mktemp("v") / "three.mp4",
                 [(pictures[0], 3.3), (pictures[1], 3.4), (pictures[2], 3.3)])
    return path, pictures, [0.0, 3.3, 6.7]


@pytest.mark.parametrize("placed_by", ["packet sizes", "decoding"])
def test_three_hard_cuts_give_three_scenes_starting_at_the_cuts(three_shots, monkeypatch,
                                                                 placed_by):
    path, pictures, cuts = three_shots
    decoded = []
    refine = video.Reader.refine
    monkeypatch.setattr(video.Reader, "refine",
                        lambda self, t0, t1: decoded.append(t0) or refine(self, t0, t1))
    if placed_by == "decoding":
        monkeypatch.setattr(video, "SPIKE_RATIO", float("inf"))
    found = list(video.scenes(str(path)))
    assert len(decoded) == (2 if placed_by == "decoding" else 0)
    assert len(found) == 3
    for scene, cut in zip(found, cuts):
        assert abs(scene.start - cut) <= 0.5
    assert [nearest_shot(s.frame, pictures) for s in found] == [0, 1, 2]
    # in time order, no gaps, to the video's end
    assert found[0].start == 0.0
    assert all(a.end == b.start for a, b in zip(found, found[1:]))
    assert abs(found[-1].end - 10.0) <= 0.2
    assert all(s.frame.mode == "RGB" and max(s.frame.size) <= video.FRAME_SIDE for s in found)


@pytest.mark.parametrize("name, codec, options", [
    ("hevc.mp4", "libx265", {"x265-params": "keyint=15:min-keyint=15:scenecut=0:log-level=none"}),
    ("vp9.webm", "libvpx-vp9", {"g": "15", "deadline": "realtime", "cpu-used": "8"}),
    ("mpeg4.avi", "mpeg4", {"g": "15"}),
    ("b_frames.mkv", "libx264", {"g": "15", "bf": "3", "sc_threshold": "0"}),
])
def test_other_codecs_and_containers_place_cuts_to_the_frame(tmp_path, name, codec, options):
    # x265 and bf=3 reorder frames (B-frames): the biggest packet is not the cut's frame there
    pictures = [canvas(n) for n in SHOTS]
    path = tmp_path / name
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for picture, seconds in zip(pictures, (3.3, 3.4, 3.3)):
            for _ in range(round(seconds * FPS)):
                for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    found = list(video.scenes(str(path)))
    assert len(found) == 3
    assert all(abs(s.start - cut) <= 0.11 for s, cut in zip(found, (0.0, 3.3, 6.7)))  # 1 frame
    assert [nearest_shot(s.frame, pictures) for s in found] == [0, 1, 2]


def test_cuts_are_found_when_keyframes_are_too_rare_to_sample(tmp_path):
    # one keyframe in 12 s (a screen recorder's stream): every frame is decoded instead
    pictures = [canvas(n) for n in SHOTS]
    path = write(tmp_path / "one_key.mp4", [(p, 4.0) for p in pictures], gop=1000)
    found = list(video.scenes(str(path)))
    assert [round(s.start, 1) for s in found] == [0.0, 4.0, 8.0]
    assert [nearest_shot(s.frame, pictures) for s in found] == [0, 1, 2]


def test_the_same_file_gives_the_same_scenes(three_shots):
    path = str(three_shots[0])
    first = [(s.start, s.end) for s in video.scenes(path)]
    again = [(s.start, s.end) for s in video.scenes(path)]
    assert first == again


def test_frame_at_shows_the_shot_of_that_time(three_shots):
    path, pictures, _ = three_shots
    assert [nearest_shot(video.frame_at(str(path), t), pictures) for t in (1.0, 5.0, 9.5)] \
        == [0, 1, 2]
    assert max(video.frame_at(str(path), 5.0, side=96).size) <= 96


def test_probe_reads_the_header(three_shots):
    info = video.probe(str(three_shots[0]))
    assert (info.width, info.height, info.codec) == (W, H, "h264")
    assert abs(info.fps - FPS) < 0.01 and abs(info.duration - 10.0) <= 0.2


def test_a_static_shot_of_two_minutes_is_at_most_four_scenes(tmp_path):
    path = write(tmp_path / "static.mp4", [(canvas(SHOTS[1]), 120.0)])
    found = list(video.scenes(str(path)))
    assert 1 <= len(found) <= 4
    assert found[0].start == 0.0 and abs(found[-1].end - 120.0) <= 0.2


def test_a_rotated_phone_video_comes_out_upright(tmp_path):
    upright = canvas(SHOTS[1], size=(H, W))  # portrait, 180x320
    stored = np.ascontiguousarray(np.rot90(upright, k=-1))  # turned clockwise: 320x180 stored
    # the display matrix says: turn 90 degrees counter-clockwise to show it
    path = write(tmp_path / "portrait.mp4", [(stored, 2.0)], rotation=90)
    scene = next(video.scenes(str(path)))
    assert scene.frame.size == (H, W)
    got = np.asarray(scene.frame, dtype=np.float32)
    assert np.abs(got - upright).mean() < np.abs(got - np.rot90(upright, 2)).mean() / 3
    assert video.frame_at(str(path), 1.0).size == (H, W)


def test_a_file_cut_short_keeps_its_scenes_then_says_truncated(tmp_path):
    pictures = [canvas(n) for n in SHOTS]
    path = write(tmp_path / "cut.mp4", [(pictures[0], 4.0), (pictures[1], 4.0),
                                        (pictures[2], 4.0)],
                 options={"movflags": "faststart"})  # the index first: it survives the cut
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 6 // 10])
    got = []
    with pytest.raises(video.BadVideo, match=r"^truncated: ends at [\d.]+ s of 12.0 s$"):
        for scene in video.scenes(str(path)):
            got.append(scene)
    assert [nearest_shot(s.frame, pictures) for s in got][:2] == [0, 1]


def test_a_container_that_never_ends_stops_at_the_bound(tmp_path):
    path = write(tmp_path / "long.mkv", [(canvas(SHOTS[0]), 6.0)])
    got = []
    with pytest.raises(video.BadVideo, match=r"^no end: stopped after 3 s$"):
        for scene in video.scenes(str(path), max_seconds=3.0):
            got.append(scene)
    assert got and got[-1].end <= 3.0


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100, layout="mono")
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    whole = write(tmp / "whole.mp4", [(canvas(SHOTS[0]), 2.0)])
    truncated = tmp / "truncated.mp4"  # moov (the index) is written last: cut, it is gone
    truncated.write_bytes(whole.read_bytes()[:4000])
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp / "notes.mp4"
    text.write_text("shopping list: milk, eggs\n" * 40)
    wide = write(tmp / "wide.mp4", [(np.full((16, 640, 3), 128, np.uint8), 1.0)])
    return {"empty": (empty, "empty file"),
            "truncated": (truncated, "truncated: no decodable frame"),
            "text": (text, "not a video"),
            "audio": (_audio_only(tmp / "song.mp4"), "no video stream (audio only)"),
            "wide": (wide, "absurd dimensions 640x16")}


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "audio", "wide"])
def test_a_bad_video_is_one_line_reason(tmp_path, kind):
    path, reason = _bad_files(tmp_path)[kind]
    for call in (video.probe, lambda p: list(video.scenes(p)), video.frame_at):
        args = (str(path), 0.5) if call is video.frame_at else (str(path),)
        with pytest.raises(video.BadVideo) as caught:
            call(*args)
        assert str(caught.value) == reason
        assert "\n" not in str(caught.value) and str(path) not in str(caught.value)
