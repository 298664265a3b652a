"""Videos in a folder index: real videos written with PyAV from the demo pictures, the real
demo model, a real Milvus Lite index in a tmp dir. Each video is a few 2 s shots of one demo
picture at 64x64 px, 8 frames a second, so a test's videos take milliseconds to write."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import demo_files
from indexer.pipeline import index_paths
from mmsearch import video as video_module
from mmsearch.cli import main
from mmsearch.filters import Filters, FilterError
from mmsearch.moments import scene_key
from mmsearch.request import SearchRequest
from mmsearch.search import Query, Searcher
from mmsearch.thumbnails import Thumbnails

av = pytest.importorskip("av")
SHOT = 2.0  # seconds per shot


def make_video(path: Path, pictures: list[Path], shot: float = SHOT, fps: int = 8,
               size: int = 64, codec: str = "libx264") -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for picture in pictures:
            frame = av.VideoFrame.from_image(Image.open(picture).convert("RGB").resize((size, size)))
            for _ in range(int(shot * fps)):
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def best_of(encoder, cls: str, text: str) -> Path:
    """The demo picture of class `cls` that the demo model finds most like `text`."""
    files = demo_files(cls=cls)
    vectors = encoder.encode_images([Image.open(f).convert("RGB") for f in files])
    return files[int(np.argmax(vectors @ encoder.encode_texts([text])[0]))]


@pytest.fixture
def library(tmp_path, encoder):
    """clip.mp4: boot, trouser (the query's), bag; other.mp4: dress, sneaker; 3 pictures."""
    root = tmp_path / "library"
    root.mkdir()
    trouser = best_of(encoder, "trouser", "a trouser")
    make_video(root / "clip.mp4", [demo_files(cls="boot")[0], trouser, demo_files(cls="bag")[0]])
    make_video(root / "other.mp4", [demo_files(cls="dress")[0], demo_files(cls="sneaker")[0]])
    for cls in ("shirt", "pullover", "coat"):
        shutil.copy2(demo_files(cls=cls)[0], root)
    return root


def scenes_of(index, path: Path) -> list[dict]:
    rows = index.iter_rows(("key", "path", "fields", "size", "hash"), f'path == "{path}"')
    return sorted(rows, key=lambda r: r["fields"]["time"])


def times(rows) -> list[float]:
    return [r["fields"]["time"] for r in rows]


def near(found, expected, within: float = 0.5) -> bool:
    """Scene starts as the interface promises them: each cut within 0.5 s."""
    return len(found) == len(expected) and all(abs(a - b) <= within
                                               for a, b in zip(found, expected))


def no_decoding(monkeypatch):
    def refuse(path):
        raise AssertionError(f"{path} was decoded")
    monkeypatch.setattr(video_module, "scenes", refuse)


def test_scenes_become_items_with_their_times(library, make_index, encoder):
    index = make_index()
    summary = index_paths([str(library)], index, encoder, progress=False, ocr=False)
    assert (summary.added, summary.skipped, summary.scenes) == (5, 0, 5)
    clip = library / "clip.mp4"
    rows = scenes_of(index, clip)
    assert near(times(rows), [0.0, 2.0, 4.0]) and rows[0]["fields"]["time"] == 0.0
    assert [r["key"] for r in rows] == [scene_key(str(clip), t) for t in times(rows)]
    assert rows[0]["key"] == f"{clip}#t=0.00"
    for r, following in zip(rows, rows[1:]):
        assert r["fields"]["end"] == pytest.approx(following["fields"]["time"])  # no gaps
    for r in rows:
        f = r["fields"]
        assert f["media"] == "video" and f["folders"] == "library" and f["end"] > f["time"]
        assert r["size"] == clip.stat().st_size and r["path"] == str(clip)
    assert rows[-1]["fields"]["end"] == pytest.approx(6.0, abs=0.5)
    assert [r["fields"].get("scenes") for r in rows] == [None, None, 3]  # the mark, last
    assert index.count() == 3 + 2 + 3
    # `mmsearch stats` says pictures, videos and scenes apart (scenes are items too)
    assert {k: index.stats()[k] for k in ("images", "videos", "scenes")} == \
        {"images": 3, "videos": 2, "scenes": 5}


def test_a_query_finds_the_video_at_the_right_moment(library, make_index, encoder):
    index = make_index()
    index_paths([str(library)], index, encoder, progress=False, ocr=False)
    hits = Searcher(index, encoder).search(Query.of(texts=["a trouser"]), k=5)
    assert hits[0].path == str(library / "clip.mp4")
    assert abs(hits[0].time - SHOT) <= 1.5
    assert len({h.path for h in hits}) == len(hits) == 5  # one result per video, pictures too
    only = Searcher(index, encoder).search(
        Query.of(texts=["a trouser"], filters=Filters.parse(type="video")), k=5)
    assert [h.path for h in only] == [str(library / "clip.mp4"), str(library / "other.mp4")]
    pictures = Searcher(index, encoder).search(
        Query.of(texts=["a trouser"], filters=Filters.parse(type="picture")), k=5)
    assert len(pictures) == 3 and all(h.time is None for h in pictures)
    with pytest.raises(FilterError):
        Filters.parse(type="movie")


def test_reindex_unchanged_touched_changed_deleted(library, make_index, encoder, monkeypatch):
    index = make_index()
    index_paths([str(library)], index, encoder, progress=False, ocr=False)
    clip = library / "clip.mp4"
    before = times(scenes_of(index, clip))
    with monkeypatch.context() as m:
        no_decoding(m)
        again = index_paths([str(library)], index, encoder, progress=False, ocr=False)
        assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 5, 0)
        st = clip.stat()
        os.utime(clip, (st.st_atime, st.st_mtime + 100))  # same bytes, new mtime
        touched = index_paths([str(library)], index, encoder, progress=False, ocr=False)
        assert (touched.unchanged, touched.updated) == (5, 0)
        assert times(scenes_of(index, clip)) == before

    # changed: two 3 s shots instead of three 2 s ones: its old scenes go
    make_video(clip, [demo_files(cls="sandal")[0], demo_files(cls="tshirt")[0]], shot=3.0)
    changed = index_paths([str(library)], index, encoder, progress=False, ocr=False)
    assert (changed.updated, changed.unchanged) == (1, 4)
    rows = scenes_of(index, clip)
    assert near(times(rows), [0.0, 3.0]) and index.count() == 2 + 2 + 3
    assert {r["size"] for r in rows} == {clip.stat().st_size}

    clip.unlink()
    gone = index_paths([str(library)], index, encoder, progress=False, ocr=False)
    assert (gone.removed, gone.unchanged) == (1, 4)
    assert scenes_of(index, clip) == [] and index.count() == 3 + 2


def test_a_killed_run_resumes_without_duplicate_scenes(tmp_path, make_index, encoder,
                                                       monkeypatch):
    root = tmp_path / "v"
    root.mkdir()
    clip = make_video(root / "four.mp4", [demo_files(cls=c)[0]
                                          for c in ("boot", "trouser", "bag", "dress")])
    index = make_index()
    real = index.upsert
    calls = []

    def killed(items):  # the machine dies after the video's first batch of scenes
        calls.append(len(items))
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(items)
    monkeypatch.setattr(index, "upsert", killed)
    with pytest.raises(KeyboardInterrupt):
        index_paths([str(root)], index, encoder, batch_size=2, progress=False, ocr=False)
    monkeypatch.setattr(index, "upsert", real)
    half = scenes_of(index, clip)
    assert len(half) == 2 and not any("scenes" in r["fields"] for r in half)

    resumed = index_paths([str(root)], index, encoder, batch_size=2, progress=False, ocr=False)
    assert resumed.added + resumed.updated == 1 and resumed.scenes == 4
    rows = scenes_of(index, clip)
    assert near(times(rows), [0.0, 2.0, 4.0, 6.0])
    assert index.count() == 4 and rows[-1]["fields"]["scenes"] == 4
    no_decoding(monkeypatch)
    assert index_paths([str(root)], index, encoder, progress=False, ocr=False).unchanged == 1


def test_bad_videos_are_one_line_each_and_the_rest_is_indexed(tmp_path, capsys):
    root = tmp_path / "mixed"
    root.mkdir()
    good = make_video(tmp_path / "good.mp4", demo_files(3))
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mov").write_text("this is not a video\n" * 40)
    (root / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with av.open(str(root / "audio.mp4"), "w") as out:  # sound only
        stream = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate = 8000
        for i in range(8):
            frame.pts = i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    shutil.copy2(demo_files(1)[0], root)
    db = tmp_path / "i.db"
    assert main(["index", str(root), "--db", str(db), "--model", "demo", "--no-ocr"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("added 1, updated 0, removed 0, unchanged 0, skipped 4")
    bad = {"empty.mp4": "empty file", "text.mov": "not a video",
           "truncated.mp4": "",  # (a stand-in said "not a video": the moov atom was at the end)
           "audio.mp4": "no video stream (audio only)"}
    for name, reason in bad.items():
        lines = [line for line in out if name in line]
        assert len(lines) == 1 and lines[0].startswith(f"  skipped {root / name}: {reason}")
        assert len(lines[0]) > len(f"  skipped {root / name}: ")
    assert len(out) == 5 and "Traceback" not in "\n".join(out)


def test_json_contract_type_similar_and_no_video(library, tmp_path, capsys, encoder):
    # the trouser twice in one video: a second strong moment
    trouser = best_of(encoder, "trouser", "a trouser")
    make_video(library / "twice.mkv", [trouser, demo_files(cls="boot")[0], trouser])
    db = tmp_path / "i.db"

    def run(*argv):
        assert main([str(a) for a in argv]) == 0
        return capsys.readouterr().out

    summary = json.loads(run("index", library, "--db", db, "--model", "demo", "--no-ocr",
                             "--no-video", "--json"))
    assert (summary["added"], summary.get("scenes", 0)) == (3, 0)
    summary = json.loads(run("index", library, "--db", db, "--no-ocr", "--json"))
    assert (summary["added"], summary["unchanged"], summary["scenes"]) == (3, 3, 8)
    # --no-video leaves stored videos as they are
    summary = json.loads(run("index", library, "--db", db, "--no-ocr", "--no-video", "--json"))
    assert (summary["removed"], summary["unchanged"]) == (0, 3)

    hits = json.loads(run("search", "a trouser", "--db", db, "-k", "8", "--json"))
    videos = [h for h in hits if "time" in h]
    assert len(videos) == 3 and len(hits) == 6  # 3 videos and 3 pictures, each once
    for h in videos:
        assert set(h) == {"path", "score", "taken", "key", "time", "end", "moments", "matched"}
        assert isinstance(h["time"], float) and h["end"] > h["time"]
        assert len(h["moments"]) <= 3
        assert all(set(m) == {"time", "score"} and m["score"] <= h["score"]
                   and m["time"] != h["time"] for m in h["moments"])
    twice = next(h for h in videos if h["path"].endswith("twice.mkv"))
    found = [twice["time"], *(m["time"] for m in twice["moments"])]
    assert any(t == 0.0 for t in found) and any(abs(t - 4.0) <= 0.5 for t in found)
    for h in hits:
        if "time" not in h:
            assert set(h) == {"path", "score", "taken", "matched"}

    table = run("search", "a trouser", "--db", db, "-k", "3", "--type", "video")
    assert f"{library / 'clip.mp4'} @ 0:02" in table or f"{library / 'twice.mkv'} @ 0:0" in table
    only = json.loads(run("search", "a trouser", "--db", db, "--type", "picture", "--json"))
    assert len(only) == 3 and not any("time" in h for h in only)

    similar = json.loads(run("search", "--similar", f"{library / 'clip.mp4'}@0:05", "--db", db,
                             "--type", "video", "-k", "1", "--json"))  # the bag: only there
    assert similar[0]["path"] == str(library / "clip.mp4")
    assert abs(similar[0]["time"] - 4.0) <= 0.5
    by_key = json.loads(run("search", "--similar", similar[0]["key"], "--db", db, "-k", "1",
                            "--json"))
    assert by_key[0]["key"] == similar[0]["key"]


def test_the_json_api_request_takes_type(library, make_index, encoder):
    index = make_index()
    index_paths([str(library)], index, encoder, progress=False, ocr=False)
    searcher = Searcher(index, encoder)
    results = SearchRequest(text="a trouser", type="video", k=5).run(searcher)
    assert [r["path"] for r in results] == [str(library / "clip.mp4"), str(library / "other.mp4")]
    second = scenes_of(index, library / "other.mp4")[1]["key"]
    assert SearchRequest(similar=[f"{library / 'other.mp4'}@0:02.6"], k=1).run(
        searcher)[0]["key"] == second


def test_a_video_and_its_reencoded_copy_are_duplicates(tmp_path, make_index, encoder):
    from mmsearch.duplicates import find_duplicates

    root = tmp_path / "d"
    root.mkdir()
    shots = [demo_files(cls=c)[0] for c in ("boot", "trouser", "bag")]
    make_video(root / "a.mp4", shots)
    make_video(root / "a-copy.mp4", shots, size=96, fps=10, codec="mpeg4")  # re-encoded
    make_video(root / "shares-one-shot.mkv", [shots[0], demo_files(cls="coat")[3],
                                              demo_files(cls="sandal")[2]])
    for f in demo_files(4):
        shutil.copy2(f, root)
    index = make_index()
    index_paths([str(root)], index, encoder, progress=False, ocr=False)
    groups = [[m.path for m in g] for g in find_duplicates(index)]
    assert [str(root / "a-copy.mp4"), str(root / "a.mp4")] in groups
    assert not any(str(root / "shares-one-shot.mkv") in g for g in groups)


def test_a_scene_preview_is_its_frame_from_an_indexed_file_only(library, make_index, encoder,
                                                                tmp_path):
    index = make_index()
    index_paths([str(library)], index, encoder, progress=False, ocr=False)
    clip = library / "clip.mp4"
    rows = scenes_of(index, clip)
    digest, (t0, t1) = rows[0]["hash"], times(rows)[:2]
    thumbs = Thumbnails(tmp_path / "thumbs", lambda: [str(library)])
    first, second = thumbs.ensure(str(clip), digest, t0), thumbs.ensure(str(clip), digest, t1)
    assert first and second and first != second
    a, b = (np.asarray(Image.open(p).convert("L"), np.float32) for p in (first, second))
    assert a.shape == (64, 64) and np.abs(a - b).mean() > 10  # two different shots
    assert Thumbnails(tmp_path / "t2", lambda: [str(tmp_path / "elsewhere")]).ensure(
        str(clip), digest, 0.0) is None
    assert thumbs.ensure(str(clip), "0" * 32, 4.0) is None  # not the indexed content


def test_a_video_that_breaks_half_way_keeps_its_good_scenes_and_says_so(
        tmp_path, make_index, encoder, monkeypatch):
    root = tmp_path / "v"
    root.mkdir()
    clip = make_video(root / "cut.mp4", [demo_files(cls=c)[0] for c in ("boot", "bag", "coat")])
    real = video_module.scenes

    def breaks(path):  # what the interface allows a truncated file: good scenes, then BadVideo
        for n, scene in enumerate(real(path)):
            if n == 2:
                raise video_module.BadVideo("truncated: stopped decoding")
            yield scene
    monkeypatch.setattr(video_module, "scenes", breaks)
    index = make_index()
    summary = index_paths([str(root)], index, encoder, progress=False, ocr=False)
    assert summary.added == 1 and summary.scenes == 2
    assert summary.errors == [{"path": str(clip), "reason": "truncated: stopped decoding "
                                                            "(2 scenes before it indexed)"}]
    rows = scenes_of(index, clip)
    assert len(rows) == 2 and rows[-1]["fields"]["scenes"] == 2  # whole as far as it goes
    no_decoding(monkeypatch)  # and not retried on every run
    assert index_paths([str(root)], index, encoder, progress=False, ocr=False).unchanged == 1


def test_the_app_serves_an_indexed_video_with_ranges_and_nothing_else(library, make_index,
                                                                       encoder):
    import urllib.error
    import urllib.request

    from test_app import free_port
    from ui.app import launch
    from ui.media import player_html

    index = make_index()
    index_paths([str(library)], index, encoder, progress=False, ocr=False)
    clip = library / "clip.mp4"
    second = scenes_of(index, clip)[1]
    port = free_port()
    app = launch(Searcher(index, encoder), port=port, block=False)
    base = f"http://127.0.0.1:{port}/media/video?key="

    def get(key: str, **headers):
        from urllib.parse import quote

        request = urllib.request.Request(base + quote(key, safe=""), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, b""
    try:
        status, headers, body = get(second["key"], Range="bytes=100-199")
        assert status == 206 and len(body) == 100
        assert headers["Content-Range"] == f"bytes 100-199/{clip.stat().st_size}"
        assert body == clip.read_bytes()[100:200]
        assert get(second["key"])[0] == 200
        assert get(str(next(library.glob("*.png"))))[0] == 404  # a picture: not here
        assert get(str(clip))[0] == 404 and get("/etc/passwd#t=0.00")[0] == 404
        html = player_html(index, second["key"])
        assert "#t=" + f"{second['fields']['time']:.2f}" in html and "clip.mp4 @ 0:0" in html
        os.utime(clip, (0, 0))  # changed since it was indexed: refused
        assert get(second["key"])[0] == 404 and player_html(index, second["key"]) == ""
    finally:
        app.close()
