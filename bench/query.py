"""Query latency: Milvus (embedded) vs numpy brute force on the same vectors, ANN recall, and
the end-to-end text query (encode + search) through mmsearch's Searcher.

    python bench/query.py [--sizes 10000,100000] [--queries 200] [--out bench/results/query.json]
    python bench/query.py --sizes 1000000 --queries 100      # the 1M run (minutes, ~4 GB disk)
    python bench/query.py --uri http://127.0.0.1:19530 [--server-pid PID]   # a Milvus server

With --uri the collections go into a database of their own (`mmsearch_bench`), dropped after
each size; --server-pid reports the server process's resident memory.

Vectors are synthetic but shaped like CLIP embeddings (clustered, 512-d, unit length); the
store's speed does not depend on where vectors came from. The text encoder is ViT-B-32's
(untrained weights: speed only).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from mmsearch.config import IndexLocation, ModelSpec  # noqa: E402
from mmsearch.encoder import Encoder  # noqa: E402
from mmsearch.engine import _disk_bytes  # noqa: E402
from mmsearch.index import IMAGE_VECTOR, ITEMS, PAGE, Index  # noqa: E402
from mmsearch.items import Item  # noqa: E402
from mmsearch.stores import open_index  # noqa: E402
from mmsearch.search import Searcher  # noqa: E402

DIM = 512
K = 10
SPEC = ModelSpec.parse("ViT-B-32", "random")


def clip_like(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """Unit vectors around random cluster centres (CLIP image embeddings cluster by topic)."""
    labels = rng.integers(0, len(centres), size=n)
    v = centres[labels] + rng.normal(0, 0.6 / np.sqrt(DIM), size=(n, DIM)).astype(np.float32) * 1.5
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) * 1000  # ms


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def process_rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmRSS"))


def wait_for_index(index: Index, n: int, timeout: float = 3600) -> None:
    """A Milvus server builds segment indexes in the background after a flush; measure
    searches once they are built (Milvus Lite builds them on load and reports nothing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = index.client.describe_index(ITEMS, IMAGE_VECTOR) or {}
        if "indexed_rows" not in info or int(info["indexed_rows"]) >= n:
            return
        time.sleep(2)


def bench_size(n: int, queries: int, encoder: Encoder, vector_index: str, seed: int = 0,
               uri: str | None = None, server_pid: int | None = None) -> dict:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(16, n // 500), DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as tmp:
        loc = IndexLocation.resolve(uri=f"{uri.rstrip('/')}/{BENCH_DB}") if uri \
            else IndexLocation.resolve(db=Path(tmp) / "q.db")
        if uri:
            drop_bench_database(loc)
        index = open_index(loc, model=SPEC, create_model=SPEC, dim=DIM, vector_index=vector_index)
        vectors = np.empty((n, DIM), np.float32)
        t0 = time.perf_counter()
        for start in range(0, n, PAGE * 10):
            chunk = clip_like(min(PAGE * 10, n - start), rng, centres)
            vectors[start:start + len(chunk)] = chunk
            index.upsert([Item(f"/bench/{i:08d}.jpg", 1, 0.0, "h", 1, 1, image_vector=v)
                          for i, v in zip(range(start, start + len(chunk)), chunk)])
        index.flush()  # as the indexer does at the end of a run
        insert_s = time.perf_counter() - t0
        rss_after_insert = rss_mb()
        t0 = time.perf_counter()
        wait_for_index(index, n)
        index_build_s = time.perf_counter() - t0
        # what the app does at start-up in a new process: load the collection, which builds
        # (or reads back) the segment indexes synchronously. In this process the embedded
        # server stays up, so release first to make that load real.
        index.client.release_collection(ITEMS)
        t0 = time.perf_counter()
        index.client.load_collection(ITEMS)
        load_s = time.perf_counter() - t0
        qs = clip_like(queries, rng, centres)

        t0 = time.perf_counter()
        index.search(qs[0], K)
        first_search_ms = (time.perf_counter() - t0) * 1000
        milvus, hits = [], []
        for q in qs:
            t0 = time.perf_counter()
            res = index.search(q, K)
            milvus.append(time.perf_counter() - t0)
            hits.append([int(h.path[7:15]) for h in res])
        brute, exact = [], []
        for q in qs:
            t0 = time.perf_counter()
            scores = vectors @ q
            top = np.argpartition(-scores, K)[:K]
            top = top[np.argsort(-scores[top])]
            brute.append(time.perf_counter() - t0)
            exact.append(top.tolist())
        recall = statistics.mean(len(set(h) & set(e)) / K for h, e in zip(hits, exact))

        searcher = Searcher(index, encoder)
        texts = [f"a photo of a {w}" for w in ("dog", "cat", "beach", "red dress", "mountain",
                                                 "sepatu lari", "birthday cake", "car")]
        searcher.search_text(texts[0], K)
        encode, e2e = [], []
        for i in range(min(queries, 100)):
            t0 = time.perf_counter()
            encoder.encode_texts([texts[i % len(texts)]])
            encode.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            searcher.search_text(texts[i % len(texts)], K)
            e2e.append(time.perf_counter() - t0)
        server_rss = process_rss_mb(server_pid)
        result = {
            "vectors": n, "vector_index": vector_index, "store": "server" if uri else "embedded",
            "insert_rows_s": round(n / insert_s), "index_build_wait_s": round(index_build_s, 1),
            "load_s": round(load_s, 2), "server_rss_mb": server_rss and round(server_rss),
            "disk_mb": None if uri else round((_disk_bytes(loc) or 0) / 2**20, 1),
            "rss_mb_after_insert": round(rss_after_insert),
            "first_search_ms": round(first_search_ms, 1),
            "milvus_p50_ms": round(pct(milvus, 50), 2), "milvus_p95_ms": round(pct(milvus, 95), 2),
            "numpy_p50_ms": round(pct(brute, 50), 2), "numpy_p95_ms": round(pct(brute, 95), 2),
            "recall_at_10": round(recall, 4),
            "text_encode_p50_ms": round(pct(encode, 50), 2),
            "text_query_p50_ms": round(pct(e2e, 50), 2), "text_query_p95_ms": round(pct(e2e, 95), 2),
        }
        result["text_query_vs_encode_plus_numpy"] = round(
            result["text_query_p50_ms"] / (result["text_encode_p50_ms"] + result["numpy_p50_ms"]), 2)
        index.close()
        if uri:
            drop_bench_database(loc)
    return result


BENCH_DB = "mmsearch_bench"


def drop_bench_database(loc: IndexLocation) -> None:
    from pymilvus import MilvusClient

    address, name = loc.server_database()
    client = MilvusClient(uri=address, token=loc.token or "")
    if name in client.list_databases():
        inner = MilvusClient(uri=loc.uri, token=loc.token or "")
        for collection in inner.list_collections():
            inner.drop_collection(collection)
        inner.close()
        client.drop_database(name)
    client.close()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--vector-index", default="HNSW", choices=["HNSW", "FLAT"])
    ap.add_argument("--uri", help="benchmark a Milvus server instead of the embedded index")
    ap.add_argument("--server-pid", type=int, help="the server's process id, for its memory")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    encoder = Encoder(SPEC).warm()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows.append(bench_size(n, args.queries, encoder, args.vector_index, uri=args.uri,
                               server_pid=args.server_pid))
        print(json.dumps(rows[-1]), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"cpus": os.cpu_count(), "precision": encoder.dtype_name, "peak_rss_mb": round(peak),
              "results": rows}
    name = ("query_1m" if max(r["vectors"] for r in rows) >= 1_000_000 else "query") + \
        ("_server" if args.uri else "")
    out = args.out or Path(__file__).parent / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| vectors | Milvus p50/p95 ms | numpy p50/p95 ms | recall@10 | text query p50 ms "
          "(encode) | ratio to encode+numpy |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['vectors']:,} | {r['milvus_p50_ms']}/{r['milvus_p95_ms']} | "
              f"{r['numpy_p50_ms']}/{r['numpy_p95_ms']} | {r['recall_at_10']} | "
              f"{r['text_query_p50_ms']} ({r['text_encode_p50_ms']}) | "
              f"{r['text_query_vs_encode_plus_numpy']} |")
    return result


if __name__ == "__main__":
    main()
