"""What grouping a video's scenes into one result costs a query (mmsearch.moments).

    nice python bench/video_search.py [--videos 30] [--rounds 5] [--out bench/results/video_search.json]

One embedded index (the embedded demo model) of the 300 demo pictures and VIDEOS tiny videos,
each 6 shots of 2 s of random demo pictures (64x64 px, 8 fps, H.264, written with PyAV). The
class queries ("a dress", ...) run top-10, interleaved round by round, three ways: all items
(grouped: a second search of 5x the candidates when a scene is among the top 10), `--type
picture` (no scene can come: one search, as a photo library's every query) and `--type video`.
Beside them Milvus Lite's own `group_by_field="path"` on the bare vector search, the
alternative measured for the README. Indexing time of the videos is reported too (that of
the scene cutter installed in mmsearch/video.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CLASSES = ["boot", "pullover", "trouser", "shirt", "coat", "sandal", "sneaker", "dress", "bag",
           "tshirt"]


def make_video(path: Path, pictures: list[Path], shot: float = 2.0, fps: int = 8, size: int = 64):
    import av
    from PIL import Image

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for picture in pictures:
            frame = av.VideoFrame.from_image(Image.open(picture).convert("RGB").resize((size, size)))
            for _ in range(int(shot * fps)):
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="bench/results/video_search.json")
    args = ap.parse_args()

    from indexer.pipeline import index_paths
    from mmsearch.config import DEMO_PICTURES_DIR, IndexLocation, ModelSpec
    from mmsearch.encoder import Encoder
    from mmsearch.filters import Filters
    from mmsearch.index import IMAGE_VECTOR
    from mmsearch.search import Query, Searcher
    from mmsearch.stores import open_index

    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    library = tmp / "library"
    library.mkdir()
    pictures = sorted(DEMO_PICTURES_DIR.glob("*.png"))
    for p in pictures:
        shutil.copy2(p, library)
    rng = random.Random(0)
    for i in range(args.videos):
        make_video(library / f"clip-{i:03d}.mp4", rng.sample(pictures, 6))
    encoder = Encoder(ModelSpec.parse("demo")).warm()
    index = open_index(IndexLocation.resolve(db=tmp / "i.db"), model=encoder.spec,
                       create_model=encoder.spec, dim=encoder.dim)
    t = time.perf_counter()
    summary = index_paths([str(library)], index, encoder, progress=False, ocr=False)
    indexing = time.perf_counter() - t
    searcher = Searcher(index, encoder)
    vectors = dict(zip(CLASSES, encoder.encode_texts([f"a {c}" for c in CLASSES])))

    def grouped(kind):
        def run(c):
            return searcher.search(Query.of(texts=[f"a {c}"], filters=Filters.parse(type=kind)), 10)
        return run

    def group_by(c):
        return index.client.search(index.COLLECTION, data=[vectors[c].tolist()],
                                   anns_field=IMAGE_VECTOR, limit=10, group_by_field="path",
                                   output_fields=["key", "path"])

    def plain(c):
        return index.client.search(index.COLLECTION, data=[vectors[c].tolist()],
                                   anns_field=IMAGE_VECTOR, limit=10, output_fields=["key", "path"])

    ways = {"all (grouped)": grouped(None), "--type picture": grouped("picture"),
            "--type video": grouped("video"), "milvus group_by path (vector only)": group_by,
            "milvus plain top 10 (vector only)": plain}
    for way in ways.values():  # warm
        way(CLASSES[0])
    times: dict[str, list[float]] = {w: [] for w in ways}
    videos_in_top10 = []
    for _ in range(args.rounds):
        for c in CLASSES:
            for name, way in ways.items():
                t = time.perf_counter()
                res = way(c)
                times[name].append((time.perf_counter() - t) * 1000)
                if name == "all (grouped)":
                    videos_in_top10.append(sum(h.time is not None for h in res))
    p50 = {w: round(statistics.median(v), 2) for w, v in times.items()}
    base = p50["--type picture"]
    result = {"pictures": len(pictures), "videos": args.videos, "scenes": summary.scenes,
              "rows": index.count(), "index_seconds": round(indexing, 2),
              "videos_in_top10_mean": round(statistics.mean(videos_in_top10), 2),
              "query_p50_ms": p50,
              "ratio_to_type_picture": {w: round(v / base, 2) for w, v in p50.items()},
              "rounds": args.rounds, "load": os.getloadavg()[0]}
    index.close()
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
