"""Real library sizes, end to end (issue "Fast at real library sizes"): one run per size of

- import: `mmsearch import` of N synthetic CLIP-like rows (rows/s),
- launch: `mmsearch serve` started -> its first answer to a text query (s), and its RSS,
- API: text queries through /api/search end to end, against ViT-B-32 text encode + numpy
  exact search over the same vectors in this process (the reference), p50 and the ratio,
- recall@10 of the index (queries by stored vectors, `similar`) against numpy exact,
- filtered (a folder filter, ~1/15 of the rows) against unfiltered, through the API,
- CLI: `mmsearch search` as a fresh process with the app up, and cold (nothing running:
  ONNX towers, no torch), interleaved with the peer `rclip -n` (3.3, ONNX + SQLite) over the
  same vectors when rclip is installed (bench/rclip_peer.py sets it up offline),
- and, with --rescan N, an unchanged re-scan of an N-picture folder (real files).

Vectors are synthetic (bench/query.py's clustered unit vectors); the model is ViT-B-32 with
untrained weights (speed only). Results: JSON in bench/results/scale.json.

    python bench/scale.py [--sizes 1000,100000,1000000] [--queries 100] [--rescan 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

import rclip_peer  # noqa: E402  (bench/rclip_peer.py)
from query import DIM, clip_like, process_rss_mb  # noqa: E402  (bench/query.py)

MODEL = {"name": "ViT-B-32", "pretrained": "random"}
K = 10
FOLDERS = 15  # synthetic year folders: a folder filter keeps ~1/15 of the rows
CLI = [sys.executable, "-m", "mmsearch.cli"]


def ms(values: list[float], p: float) -> float:
    return round(float(np.percentile(values, p)) * 1000, 2)


def write_export(path: Path, vectors: np.ndarray) -> list[str]:
    """A Parquet file in `mmsearch export` format holding the vectors; the row paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mmsearch.transfer import FILE_VERSION, FORMAT, _schema

    n = len(vectors)
    folders = [f"/photos/{2010 + i % FOLDERS}" for i in range(n)]
    paths = [f"{folders[i]}/img{i:07d}.jpg" for i in range(n)]
    meta = {"format": FORMAT, "schema": FILE_VERSION, "kind": "folder", "model": MODEL,
            "dim": DIM, "roots": sorted(set(folders)), "exported": time.time()}
    schema = _schema(DIM, meta, text_vectors=False)
    with pq.ParquetWriter(path, schema) as writer:
        for s in range(0, n, 50_000):
            e = min(n, s + 50_000)
            writer.write_table(pa.table({
                "path": paths[s:e], "folder": folders[s:e], "size": [100_000] * (e - s),
                "mtime": [1.6e9 + i for i in range(s, e)], "taken": [1.6e9 + i for i in range(s, e)],
                "hash": [f"{i:032x}" for i in range(s, e)], "width": [4000] * (e - s),
                "height": [3000] * (e - s), "vector": list(vectors[s:e]),
                **{name: [""] * (e - s) for name in ("key", "title", "description", "source")},
                "fields": ["{}"] * (e - s)}, schema=schema))
    return paths


class Served:
    """`mmsearch serve` for one index, answering its first query."""

    @staticmethod
    def start(db: Path, env: dict, port: int):
        t0 = time.perf_counter()
        proc = subprocess.Popen([*CLI, "serve", "--db", str(db), "--port", str(port)], env=env,
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        announced = db.with_name(db.name + ".server.json")
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline and proc.poll() is None:
            if announced.exists():
                try:
                    record = json.loads(announced.read_text())
                    api_search(record, {"text": "a photo", "k": K})
                    return proc, record, time.perf_counter() - t0
                except (OSError, ValueError):
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"mmsearch serve did not answer: {proc.stderr.read().decode()[-400:]}")


def api_search(record: dict, body: dict) -> dict:
    request = urllib.request.Request(
        record["url"] + "/api/search", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {record['token']}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its children (Milvus Lite may run its engine as a child)."""
    total = process_rss_mb(pid) or 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(tree_rss_mb(int(c)) for c in children)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wall(argv: list[str], env: dict, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True, timeout=1800)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 3)


def bench_size(n: int, queries: int, work: Path, env: dict, reference_encoder,
               peer: tuple[str, Path] | None = None, cold_rounds: int = 3) -> dict:
    rng = np.random.default_rng(n)
    centres = clip_like(256, rng, np.eye(256, DIM, dtype=np.float32))
    vectors = clip_like(n, rng, centres)
    export = work / f"rows-{n}.parquet"
    paths = write_export(export, vectors)
    db = work / f"scale-{n}.db"
    t0 = time.perf_counter()
    subprocess.run([*CLI, "import", str(export), "--db", str(db)], env=env, cwd=ROOT,
                   check=True, capture_output=True, timeout=7200)
    import_s = time.perf_counter() - t0
    out: dict = {"rows": n, "import_rows_per_s": round(n / import_s, 1)}
    proc, record, launch_s = Served.start(db, env, free_port())
    out["launch_to_first_answer_s"] = round(launch_s, 2)
    try:
        words = [f"a photo of thing number {i}" for i in range(queries)]
        api, ref_encode, ref_search = [], [], []
        for text in words:
            t0 = time.perf_counter()
            api_search(record, {"text": text, "k": K})
            api.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            q = reference_encoder.encode_texts([text])[0]
            ref_encode.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            np.argpartition(-(vectors @ q), K)[:K]
            ref_search.append(time.perf_counter() - t0)
        reference = [a + b for a, b in zip(ref_encode, ref_search)]
        out["api_text_query_ms"] = {"p50": ms(api, 50), "p95": ms(api, 95)}
        out["reference_encode_plus_numpy_ms"] = {"p50": ms(reference, 50),
                                                 "encode_p50": ms(ref_encode, 50),
                                                 "numpy_p50": ms(ref_search, 50)}
        out["api_vs_reference"] = round(ms(api, 50) / ms(reference, 50), 2)
        picks = rng.choice(n, size=min(queries, n), replace=False)
        hits, plain, filtered = 0, [], []
        for i in picks:
            t0 = time.perf_counter()
            got = api_search(record, {"similar": [paths[i]], "k": K})["results"]
            plain.append(time.perf_counter() - t0)
            exact = set(np.argpartition(-(vectors @ vectors[i]), K)[:K].tolist())
            hits += len(exact & {int(r["path"][-11:-4]) for r in got})
            t0 = time.perf_counter()
            api_search(record, {"similar": [paths[i]], "k": K, "folder": "/photos/2013"})
            filtered.append(time.perf_counter() - t0)
        out["recall_at_10"] = round(hits / (K * len(picks)), 4)
        out["similar_query_ms"] = {"p50": ms(plain, 50), "filtered_p50": ms(filtered, 50)}
        out["filtered_vs_unfiltered"] = round(ms(filtered, 50) / ms(plain, 50), 2)
        out["serving_rss_mb"] = round(tree_rss_mb(proc.pid), 1)
        out["raw_vectors_mb"] = round(vectors.nbytes / 2**20, 1)
        search = [*CLI, "search", "a red dress", "-k", str(K), "--db", str(db)]
        # a new text each run: the app keeps the vectors of the texts it encoded last
        # (onnx_towers.RECENT_TEXTS), and a repeated one would skip the encode
        out["cli_with_app_up_s"] = round(statistics.median(
            wall([*CLI, "search", f"a red dress number {i}", "-k", str(K), "--db", str(db)],
                 env, 1) for i in range(5)), 3)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    cold_env = {**env, "MMSEARCH_NO_RESIDENT": "1"}
    if peer is None:
        out["cli_cold_s"] = wall(search, cold_env, cold_rounds)
    else:  # interleaved, so machine noise hits both alike
        rclip, datadir = peer
        t0 = time.perf_counter()
        rclip_peer.fill_db(datadir, work / "rclip-photos", vectors)
        out["rclip_db_fill_s"] = round(time.perf_counter() - t0, 1)
        (work / "rclip-photos").mkdir(exist_ok=True)
        ours, theirs, rss = [], [], []
        for _ in range(cold_rounds):
            ours.append(wall(search, cold_env, 1))
            got = rclip_peer.query_wall(rclip, work / "rclip-photos", datadir, "a red dress", 1)
            theirs.append(got["wall_s"])
            rss.append(got["peak_rss_mb"] or 0)
        out["cli_cold_s"] = round(statistics.median(ours), 3)
        out["rclip_cold_s"] = round(statistics.median(theirs), 3)
        out["rclip_peak_rss_mb"] = max(rss)
        out["cold_vs_rclip"] = round(out["cli_cold_s"] / out["rclip_cold_s"], 2)
        out["cold_rounds_s"] = {"mmsearch": [round(x, 3) for x in ours],
                                "rclip": [round(x, 3) for x in theirs]}
        out["cold_rounds_faster_than_rclip"] = sum(a < b for a, b in zip(ours, theirs))
        (datadir / "db.sqlite3").unlink(missing_ok=True)
    shutil.rmtree(db, ignore_errors=True) if db.is_dir() else db.unlink(missing_ok=True)
    export.unlink()
    return out


def bench_rescan(n: int, work: Path, env: dict) -> dict:
    """An unchanged re-scan of n real picture files (copies of the demo pictures)."""
    from mmsearch.config import DEMO_PICTURES_DIR

    folder = work / "rescan"
    sources = sorted(DEMO_PICTURES_DIR.glob("*.png"))
    for i in range(n):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[i % len(sources)], sub / f"p{i:06d}.png")
    db = work / "rescan.db"
    index = [*CLI, "index", str(folder), "--db", str(db), "--model", "demo"]
    t0 = time.perf_counter()
    subprocess.run(index, env=env, cwd=ROOT, check=True, capture_output=True, timeout=7200)
    first = time.perf_counter() - t0
    return {"pictures": n, "first_index_s": round(first, 1),
            "unchanged_rescan_s": wall(index[:-2], env, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--rescan", type=int, default=0, help="also time an unchanged re-scan of "
                    "this many picture files")
    ap.add_argument("--no-rclip", action="store_true", help="skip the rclip peer (found on PATH "
                    "or as $RCLIP_BIN)")
    ap.add_argument("--cold-rounds", type=int, default=3, help="interleaved rounds of the cold "
                    "`mmsearch search` against `rclip -n` (their medians are compared)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "scale.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmsearch-scale-"))
    env = {**os.environ, "XDG_DATA_HOME": str(work / "data"), "GRADIO_ANALYTICS_ENABLED": "False"}
    os.environ["XDG_DATA_HOME"] = env["XDG_DATA_HOME"]
    from mmsearch.config import ModelSpec
    from mmsearch.encoder import Encoder
    from mmsearch.onnx_export import export_towers
    from mmsearch.towers import towers_dir

    # The fresh processes below read this checkout's bytecode as an installed package's (pip
    # compiles a wheel at install; rclip's venv has its .pyc), also where PYTHONDONTWRITEBYTECODE
    # is set, as on these machines: else every `mmsearch search` compiled the CLI's modules
    # again, ~25 ms of a 0.17 s start here.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "mmsearch", "indexer", "ui"],
                   cwd=ROOT, check=True)
    spec = ModelSpec.from_record(MODEL)
    t0 = time.perf_counter()
    export_towers(Encoder(spec, precision="fp32"), towers_dir(spec), verify=False)
    # the reference encodes as the serving process does (torch, bf16 where the CPU has it)
    reference_encoder = Encoder(spec).warm()
    result = {"cpus": os.cpu_count(), "model": "ViT-B-32 (untrained weights: speed only)",
              "towers_export_s": round(time.perf_counter() - t0, 1), "sizes": []}
    peer = None
    rclip = None if args.no_rclip else rclip_peer.find_rclip()
    if rclip:
        datadir = work / "rclip-data"
        result["rclip"] = {"version": rclip_peer.version(rclip),
                           "model_export_s": round(rclip_peer.export_model(datadir), 1)}
        peer = (rclip, datadir)
    else:
        result["rclip"] = None  # not installed (pip install rclip; or RCLIP_BIN=/path/rclip)
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            result["sizes"].append(bench_size(n, args.queries, work, env, reference_encoder,
                                                  peer, args.cold_rounds))
            print(json.dumps(result["sizes"][-1]), flush=True)
        if args.rescan:
            result["rescan"] = bench_rescan(args.rescan, work, env)
            print(json.dumps(result["rescan"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
