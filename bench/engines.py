"""Two embedded vector engines side by side: Milvus Lite 3.2.2 (pure Python, what mmsearch
uses now) and Milvus Lite 2.5.1 (the C++ Milvus core behind a local gRPC socket).

    python bench/engines.py [--sizes 10000,100000] [--out bench/results/engines.json]
    python bench/engines.py --sizes 10000,100000,1000000 --big-engines lite-2.5.1
    python bench/engines.py --sizes 10000 --skip-api        # a quick smoke run
    python bench/engines.py --append --skip-api --knobs --data manifold --sizes 100000,1000000 \
        --indexes HNSW,IVF_FLAT --insert500-rows 0   # a harder data set, added to the same JSON

The two engines need different pymilvus versions, so they cannot share one interpreter. This
script is both the driver and the worker: the driver (any Python with numpy) makes the data,
computes the exact answers, and runs each step of each engine as a subprocess of that engine's
own interpreter (`python engines.py --worker SPEC.json`); each step writes its result as JSON.

  lite-3.2.2   /work/main/.venv/bin/python   (pymilvus 3.0.2; set with --python-322)
  lite-2.5.1   /tmp/venv-lite25/bin/python   (pymilvus 2.6.17; set with --python-251), made by
               python3 -m venv /tmp/venv-lite25 && /tmp/venv-lite25/bin/pip install numpy \
                   milvus-lite==2.5.1 pymilvus==2.6.17 'setuptools<81'

Data: synthetic CLIP-like vectors exactly as bench/query.py makes them (unit-length 512-d
vectors around max(16, n/500) random cluster centres, seed 0), written once per size to an .npy
under --work and memory-mapped by every process, so both engines index the very same rows and
answer the very same 200 queries. Rows carry the project's schema (mmsearch/index.py): id
INT64 primary, path/folder VARCHAR, size INT64, mtime/taken DOUBLE, hash VARCHAR, width/height
INT32, vector FLOAT_VECTOR(512) COSINE. Row i lives in folder /photos/f{i % 10}, so the folder
filter `path like "/photos/f3/%"` matches 10% of rows; `taken` is uniform and the range filter
`taken >= median` matches 50%.

Per engine, size and index type:
  insert     rows/s for batches of 1000 rows (the project's PAGE; the collection that is then
             searched) and of 500 rows (a scratch index, at most --insert500-rows rows), each
             timed from the first insert to the end of flush(); and the wall time until the
             writing process has exited (3.2.2 keeps working in the background after a bulk
             insert, holding the index lock).
  disk       bytes of the index (3.2.2: a directory; 2.5.1: a file), after building and after
             the first search process (an engine may persist what it builds on load).
  start-up   a fresh process: interpreter start, import pymilvus, open the index,
             load_collection, first search. Measured twice (the second one sees whatever the
             first persisted). The breakdown is reported too.
  search     p50/p95 over the queries, k=10, unfiltered, folder-filtered and range-filtered,
             with output_fields path/width/height/hash as mmsearch asks; recall@10 against
             numpy's exact cosine top-10 under the same filter; and whether every hit matched
             the filter.
  memory     resident memory of the engine's process tree: the worker plus every descendant
             (2.5.1 runs a separate `milvus` binary), read from /proc; the driver samples the
             tree every 0.25 s for the peak, the worker reports it after load and after the
             searches.
Index types: 3.2.2 HNSW (M=16, efConstruction=200, ef=64, as mmsearch uses); 2.5.1 FLAT,
IVF_FLAT (nlist 1024 from 100k rows, 128 below; nprobe 16/32/64, and mmsearch's own search
params {"ef": 64} to show what an unchanged mmsearch would get) and AUTOINDEX. On 2.5.1 the
index type is changed in place (release, drop_index, create_index), timed, and each index gets
its own fresh search processes.

API checks (--skip-api to leave out): on a small index per engine, every call mmsearch/index.py
and mmsearch/catalog.py make (upsert, get, delete by ids, flush, query count(*), query_iterator,
describe_collection, list_databases, create_database, a second process opening a locked
index, HNSW), and on a 10k-row catalogue collection BM25 full-text search, hybrid_search with
WeightedRanker and RRFRanker, and JSON-field filters. One line each: ok, and what came back.

--knobs: on uniform random 64-d vectors (no clusters, where an ANN index must be tuned) does
recall change with nprobe (IVF_FLAT) and ef (HNSW, 3.2.2)? --data manifold: a harder,
less clustered data set than bench/query.py's (see manifold_like), to see how the ANN
indexes' recall holds up when neighbours are not all in one tight cluster.

Every wait is bounded: each subprocess has a timeout, each search loop a time cap, and the
whole run a budget (--budget-min); a step past the budget is skipped and recorded as such.
The machine is small and shared: compare the engines through ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

DIM = 512
K = 10
SEED = 0
FOLDERS = 10
FOLDER_FILTER = 'path like "/photos/f3/%"'
TAKEN_LO, TAKEN_SPAN = 1.45e9, 3.0e8
NPROBES = (16, 32, 64)
ENGINE_PYTHON = {"lite-3.2.2": "/work/main/.venv/bin/python",
                 "lite-2.5.1": "/tmp/venv-lite25/bin/python"}
COLLECTION = "images"


# --------------------------------------------------------------------------------------------
# shared helpers (driver and worker)
# --------------------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return kids


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (2.5.1 starts the `milvus` binary as a child)."""
    seen, todo = [], [pid]
    while todo and len(seen) < 256:
        p = todo.pop()
        if p not in seen:
            seen.append(p)
            todo += _children(p)
    return seen


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(pid: int) -> dict:
    """Resident MB of the tree now, the sum of each process's own peak (VmHWM), and who."""
    pids = process_tree(pid)
    procs = []
    for p in pids:
        try:
            name = Path(f"/proc/{p}/comm").read_text().strip()
        except OSError:
            continue
        procs.append({"pid": p, "name": name, "rss_mb": round(_status_kb(p, "VmRSS") / 1024),
                      "hwm_mb": round(_status_kb(p, "VmHWM") / 1024)})
    return {"rss_mb": sum(x["rss_mb"] for x in procs),
            "hwm_sum_mb": sum(x["hwm_mb"] for x in procs), "processes": procs}


def disk_bytes(path: Path) -> int:
    """An index's size: 3.2.2 makes a directory, 2.5.1 a file (plus a lock file beside it)."""
    path = Path(path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    total = path.stat().st_size if path.exists() else 0
    for extra in path.parent.glob(f".{path.name}*"):
        if extra.is_file():
            total += extra.stat().st_size
    return total


def clip_like(n, rng, centres):
    """bench/query.py's synthetic CLIP image embeddings: unit vectors around cluster centres."""
    import numpy as np

    labels = rng.integers(0, len(centres), size=n)
    v = centres[labels] + rng.normal(0, 0.6 / np.sqrt(DIM), size=(n, DIM)).astype(np.float32) * 1.5
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def manifold_like(n, rng, parts):
    """A harder, less clustered variant (--data manifold): a shared direction (CLIP vectors have
    a large common component), a topic centre and a 32-d continuous within-topic variation plus
    a little isotropic noise. Random pairs have cosine ~0.25, a query's nearest row ~0.73."""
    import numpy as np

    g, centres, basis = parts
    labels = rng.integers(0, len(centres), size=n)
    z = rng.normal(size=(n, basis.shape[0])).astype(np.float32) @ basis
    v = 0.7 * g + 0.8 * centres[labels] + 0.8 * z \
        + rng.normal(0, 0.5 / np.sqrt(DIM), size=(n, DIM)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# worker: runs inside one engine's interpreter
# --------------------------------------------------------------------------------------------
T_WORKER_START = time.time()


def _quiet():
    import logging

    for name in ("pymilvus", "milvus_lite", "grpc", ""):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _err(exc: BaseException) -> str:
    text = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


def _schema(DataType, MilvusClient):
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                   description="mmsearch images")
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("path", DataType.VARCHAR, max_length=4096)
    s.add_field("folder", DataType.VARCHAR, max_length=4096)
    s.add_field("size", DataType.INT64)
    s.add_field("mtime", DataType.DOUBLE)
    s.add_field("taken", DataType.DOUBLE)
    s.add_field("hash", DataType.VARCHAR, max_length=64)
    s.add_field("width", DataType.INT32)
    s.add_field("height", DataType.INT32)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    return s


def _rows(vectors, taken, start, stop):
    """The project's row shape for rows start..stop-1 (id = row number)."""
    out = []
    block = vectors[start:stop].tolist()
    for i, v in zip(range(start, stop), block):
        out.append({"id": i, "path": f"/photos/f{i % FOLDERS}/{i:08d}.jpg",
                    "folder": f"/photos/f{i % FOLDERS}", "size": 1_000_000 + i,
                    "mtime": float(taken[i]), "taken": float(taken[i]),
                    "hash": f"{i:032x}", "width": 4000, "height": 3000, "vector": v})
    return out


def worker_build(spec: dict) -> dict:
    """Create the collection with the project's schema, insert n rows in batches, flush."""
    import numpy as np

    t_import = time.time()
    from pymilvus import DataType, MilvusClient

    _quiet()
    import_s = time.time() - t_import
    vectors = np.load(spec["vectors"], mmap_mode="r")
    taken = np.load(spec["taken"], mmap_mode="r")
    n, batch = spec["rows"], spec["batch"]
    t0 = time.time()
    client = MilvusClient(spec["db"])
    open_s = time.time() - t0
    params = client.prepare_index_params()
    params.add_index("vector", index_type=spec["index_type"], metric_type="COSINE",
                     params=spec["index_params"])
    client.create_collection(COLLECTION, schema=_schema(DataType, MilvusClient),
                             index_params=params)
    t0 = time.time()
    prep = 0.0
    for start in range(0, n, batch):
        tp = time.time()
        rows = _rows(vectors, taken, start, min(n, start + batch))
        prep += time.time() - tp
        client.insert(COLLECTION, rows)
    insert_s = time.time() - t0
    t1 = time.time()
    client.flush(COLLECTION)
    flush_s = time.time() - t1
    total = time.time() - t0
    mem = tree_memory(os.getpid())
    count = int(client.query(COLLECTION, filter="", output_fields=["count(*)"])[0]["count(*)"])
    client.close()
    return {"rows": n, "batch": batch, "count": count, "import_s": round(import_s, 2),
            "open_s": round(open_s, 2), "insert_s": round(insert_s, 2),
            "flush_s": round(flush_s, 2), "row_prep_s": round(prep, 2),
            "rows_per_s": round(n / total), "rows_per_s_engine_only": round(n / max(1e-9, total - prep)),
            "memory_after_insert": mem}


def worker_reindex(spec: dict) -> dict:
    """Replace the vector index in place: release, drop_index, create_index, then load once
    (the index is built by then or during that load; both are timed)."""
    from pymilvus import MilvusClient

    _quiet()
    client = MilvusClient(spec["db"])
    client.release_collection(COLLECTION)
    t0 = time.time()
    client.drop_index(COLLECTION, "vector")
    params = client.prepare_index_params()
    params.add_index("vector", index_type=spec["index_type"], metric_type="COSINE",
                     params=spec["index_params"])
    client.create_index(COLLECTION, params)
    create_s = time.time() - t0
    info = client.describe_index(COLLECTION, "vector")
    t0 = time.time()
    client.load_collection(COLLECTION)
    load_s = time.time() - t0
    client.close()
    return {"create_index_s": round(create_s, 2), "load_after_create_s": round(load_s, 2),
            "describe_index": {k: str(v) for k, v in (info or {}).items()}}


def worker_search(spec: dict) -> dict:
    """A fresh process: open, load, first search (start-up), then the timed query sets."""
    import numpy as np

    t_import = time.time()
    from pymilvus import MilvusClient

    _quiet()
    import_s = time.time() - t_import
    queries = np.load(spec["queries"], mmap_mode="r")
    t0 = time.time()
    client = MilvusClient(spec["db"])
    open_s = time.time() - t0
    t0 = time.time()
    client.load_collection(COLLECTION)
    load_s = time.time() - t0
    out_fields = ["path", "width", "height", "hash"]
    variants = spec["variants"]

    def one(q, params, flt):
        return client.search(COLLECTION, data=[q.tolist()], anns_field="vector", limit=K,
                             filter=flt, output_fields=out_fields,
                             search_params={"metric_type": "COSINE", "params": params})[0]

    t0 = time.time()
    first = one(queries[0], variants[0]["params"], "")
    first_search_s = time.time() - t0
    t_first_answer = time.time()
    result = {"import_s": round(import_s, 2), "open_s": round(open_s, 2),
              "load_s": round(load_s, 2), "first_search_s": round(first_search_s, 3),
              "worker_start_epoch": T_WORKER_START, "first_answer_epoch": t_first_answer,
              "first_hits": len(first), "memory_after_load": tree_memory(os.getpid()),
              "runs": []}
    filters = {"none": "", "folder": FOLDER_FILTER, "range": f"taken >= {spec['taken_x']!r}"}
    for variant in variants if spec["queries_n"] else []:
        for fname, flt in filters.items():
            for q in queries[1:4]:  # warm this code path: plans, caches
                one(q, variant["params"], flt)
            lat, ids, ok_filter = [], [], True
            t_cap = time.time() + spec["max_run_s"]
            for q in queries[:spec["queries_n"]]:
                t = time.perf_counter()
                hits = one(q, variant["params"], flt)
                lat.append(time.perf_counter() - t)
                row = [int(h["id"]) for h in hits]
                ids.append(row)
                if fname == "folder":
                    ok_filter &= all(h["entity"]["path"].startswith("/photos/f3/") for h in hits)
                if time.time() > t_cap:
                    break
            result["runs"].append({"variant": variant["name"], "params": variant["params"],
                                   "filter": fname, "latencies_s": lat, "ids": ids,
                                   "hits_match_folder": ok_filter if fname == "folder" else None})
    result["memory_after_search"] = tree_memory(os.getpid())
    client.close()
    return result


def worker_lockprobe(spec: dict) -> dict:
    """Open an index another process holds: what does mmsearch's user see?"""
    from pymilvus import MilvusClient

    _quiet()
    t0 = time.time()
    try:
        c = MilvusClient(spec["db"])
        c.list_collections()
        c.close()
        return {"opened": True, "s": round(time.time() - t0, 2)}
    except BaseException as exc:  # noqa: BLE001 - we report whatever it is
        return {"opened": False, "s": round(time.time() - t0, 2), "error": _err(exc),
                "error_type": f"{type(exc).__module__}.{type(exc).__name__}"}


def worker_api(spec: dict) -> dict:
    """One line per call the project makes, on a small folder index and a 10k catalogue."""
    import numpy as np
    from pymilvus import (AnnSearchRequest, DataType, Function, FunctionType, MilvusClient,
                          RRFRanker, WeightedRanker)
    from pymilvus.exceptions import MilvusException

    _quiet()
    checks = []

    def check(name, fn):
        t0 = time.time()
        try:
            detail = fn()
            ok = True
        except BaseException as exc:  # noqa: BLE001
            detail, ok = _err(exc), False
            if isinstance(exc, MilvusException):
                detail += " [MilvusException]"
            else:
                detail += f" [{type(exc).__module__}.{type(exc).__name__}, not a MilvusException]"
        checks.append({"check": name, "ok": ok, "detail": detail, "s": round(time.time() - t0, 3)})
        return ok

    vectors = np.load(spec["vectors"], mmap_mode="r")
    taken = np.load(spec["taken"], mmap_mode="r")
    n = 2000
    client = MilvusClient(spec["db"])
    check("db on disk is", lambda: "directory" if Path(spec["db"]).is_dir() else "file")

    def create_hnsw():
        p = client.prepare_index_params()
        p.add_index("vector", index_type="HNSW", metric_type="COSINE",
                    params={"M": 16, "efConstruction": 200})
        client.create_collection("hnsw_try", schema=_schema(DataType, MilvusClient), index_params=p)
        return "created"
    check("create_collection with HNSW", create_hnsw)
    fallback = spec["index_type"]

    def create_main():
        p = client.prepare_index_params()
        p.add_index("vector", index_type=fallback, metric_type="COSINE",
                    params=spec["index_params"])
        client.create_collection(COLLECTION, schema=_schema(DataType, MilvusClient),
                                 index_params=p)
        return fallback
    check("create_collection (project schema)", create_main)
    check("insert 2000 rows", lambda: str(client.insert(COLLECTION, _rows(vectors, taken, 0, n))
                                          ["insert_count"]))
    check("flush", lambda: str(client.flush(COLLECTION)))

    def count():
        return int(client.query(COLLECTION, filter="", output_fields=["count(*)"])[0]["count(*)"])
    check("query count(*) with empty filter", lambda: f"{count()} rows")

    def upsert():
        row = _rows(vectors, taken, 5, 6)[0]
        row["size"] = 42
        client.upsert(COLLECTION, [row])
        got = client.get(COLLECTION, ids=[5], output_fields=["path", "size", "mtime", "hash"])
        assert got and got[0]["size"] == 42, got
        return f"size now {got[0]['size']}, rows {count()}"
    check("upsert existing id + get(ids)", upsert)

    def delete():
        before = count()
        client.delete(COLLECTION, ids=list(range(10, 20)))
        after = count()
        assert after == before - 10, (before, after)
        return f"{before} -> {after}"
    check("delete(ids=[...])", delete)
    check("delete(filter=...)", lambda: str(client.delete(COLLECTION, filter="id in [30, 31]")))

    def iterate():
        it = client.query_iterator(COLLECTION, batch_size=1000, filter=FOLDER_FILTER,
                                   output_fields=["path", "size", "mtime", "hash"])
        total, pages = 0, 0
        try:
            while pages < 100 and (batch := it.next()):
                total, pages = total + len(batch), pages + 1
        finally:
            it.close()
        return f"{total} rows in {pages} pages"
    check("query_iterator(batch_size=1000, filter)", iterate)
    check("describe_collection fields",
          lambda: ",".join(f["name"] for f in client.describe_collection(COLLECTION)["fields"]))
    check("describe_index", lambda: str({k: v for k, v in client.describe_index(COLLECTION, "vector").items()
                                         if k in ("index_type", "indexed_rows", "state")}))
    check("list_databases", lambda: str(client.list_databases()))
    check("create_database", lambda: str(client.create_database("mmsearch_other")))
    check("release + has_collection + load", lambda: str((client.release_collection(COLLECTION),
                                                          client.has_collection(COLLECTION),
                                                          client.load_collection(COLLECTION))[1]))

    def search_project_params():
        res = client.search(COLLECTION, data=[vectors[0].tolist()], anns_field="vector", limit=5,
                            filter='taken >= 0 and not (id in [1, 2])',
                            output_fields=["path", "width", "height", "hash"],
                            search_params={"metric_type": "COSINE", "params": {"ef": 64}})
        return f"{len(res[0])} hits, top id {res[0][0]['id']}, entity keys {sorted(res[0][0]['entity'])}"
    check("search with mmsearch params {'ef': 64}", search_project_params)

    # the filter expressions mmsearch/filters.py and catalog.py write, one search each
    def filtered(expr, kind="search"):
        def fn():
            if kind == "query":
                rows = client.query(COLLECTION, filter=expr, output_fields=["id"], limit=5)
                return f"{len(rows)} rows"
            res = client.search(COLLECTION, data=[vectors[0].tolist()], anns_field="vector",
                                limit=5, filter=expr, output_fields=["path"],
                                search_params={"metric_type": "COSINE", "params": {}})
            return f"{len(res[0])} hits"
        return fn
    for expr in ['(path like "/photos/f3/%")', r'path like "/photos/my\\_dir/%"',
                 f"(taken >= {TAKEN_LO + 1e8!r}) and (taken < {TAKEN_LO + 2e8!r})",
                 "(width >= 100) and (height >= 100)", "width > height", "width == height",
                 "not (id in [1, 2])", "id not in [1, 2]", "not ((id > 5))"]:
        check(f"search filter: {expr}", filtered(expr))
    check("query filter: not (id in [1, 2])", filtered("not (id in [1, 2])", "query"))
    check("search without output_fields returns",
          lambda: str(sorted(client.search(COLLECTION, data=[vectors[0].tolist()], limit=1)[0][0]
                             ["entity"])))

    def lock():
        r = subprocess.run([sys.executable, __file__, "--worker-inline", json.dumps(
            {"mode": "lockprobe", "db": spec["db"]})], capture_output=True, text=True, timeout=120)
        line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
        return json.loads(line[-1][7:]) if line else f"rc {r.returncode}: {r.stderr[-300:]}"
    check("second process opens the same index", lock)
    client.close()

    # -- a catalogue: VARCHAR primary, JSON fields, BM25 over text, two vector fields -------
    m = 10_000
    cat = MilvusClient(spec["db_catalog"])
    brands = ["adidas", "nike", "batik", "uniqlo", "zara"]
    colours = ["merah", "biru", "hitam", "putih", "hijau"]

    def make_catalog():
        s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
        s.add_field("title", DataType.VARCHAR, max_length=2048)
        s.add_field("text", DataType.VARCHAR, max_length=16384, enable_analyzer=True)
        s.add_field("fields", DataType.JSON)
        s.add_field("image_vector", DataType.FLOAT_VECTOR, dim=DIM)
        s.add_field("text_vector", DataType.FLOAT_VECTOR, dim=DIM)
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                input_field_names=["text"], output_field_names=["sparse"]))
        p = cat.prepare_index_params()
        for name in ("image_vector", "text_vector"):
            p.add_index(name, index_type=fallback, metric_type="COSINE",
                        params=spec["index_params"])
        p.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        cat.create_collection("items", schema=s, index_params=p)
        for start in range(0, m, 500):
            rows = []
            for i, v in zip(range(start, min(m, start + 500)), vectors[start:start + 500].tolist()):
                title = f"gaun {colours[i % 5]} {brands[(i // 5) % 5]} model{i}"
                rows.append({"id": f"sku-{i}", "title": title, "text": title,
                             "fields": {"price": (i * 37) % 10_000, "brand": brands[(i // 5) % 5]},
                             "image_vector": v, "text_vector": v})
            cat.insert("items", rows)
        cat.flush("items")
        return f"{m} items"
    if not check("catalogue collection (BM25 function, JSON, 2 vectors)", make_catalog):
        cat.close()
        return {"checks": checks}

    def bm25():
        res = cat.search("items", data=["model4242"], anns_field="sparse", limit=3,
                         output_fields=["title"], search_params={"metric_type": "BM25"})
        top = res[0][0]
        assert top["id"] == "sku-4242", res
        return f"top {top['id']} ({top['entity']['title']}), score {top['distance']:.2f}"
    check("BM25 full-text search", bm25)

    def hybrid(ranker, label):
        def fn():
            expr = 'fields["price"] < 5000 and fields["brand"] == "nike"'
            reqs = [AnnSearchRequest([vectors[7].tolist()], "image_vector",
                                     {"metric_type": "COSINE", "params": {}}, limit=100, expr=expr),
                    AnnSearchRequest(["gaun merah"], "sparse", {"metric_type": "BM25"},
                                     limit=100, expr=expr)]
            res = cat.hybrid_search("items", reqs, ranker=ranker, limit=10,
                                    output_fields=["title", "fields"])
            hits = res[0]
            bad = [h["id"] for h in hits if not (h["entity"]["fields"]["price"] < 5000
                                                  and h["entity"]["fields"]["brand"] == "nike")]
            assert hits and not bad, (len(hits), bad)
            return f"{label}: {len(hits)} hits, all match the JSON filter; top {hits[0]['id']}"
        return fn
    check("hybrid_search WeightedRanker + JSON filter", hybrid(WeightedRanker(0.6, 0.4), "weighted"))
    check("hybrid_search RRFRanker + JSON filter", hybrid(RRFRanker(60), "rrf"))

    def json_query():
        rows = cat.query("items", filter='fields["price"] < 100', output_fields=["fields"], limit=1000)
        assert rows and all(r["fields"]["price"] < 100 for r in rows)
        return f"{len(rows)} rows with price < 100"
    check("query with JSON filter", json_query)

    def cat_filter(expr):
        def fn():
            res = cat.search("items", data=[vectors[3].tolist()], anns_field="image_vector",
                             limit=5, filter=expr, output_fields=["fields"],
                             search_params={"metric_type": "COSINE", "params": {}})
            return f"{len(res[0])} hits"
        return fn
    for expr in ['(fields["brand"] == "nike" or fields["brand"] == "zara") or not ((fields["price"] > 42))',
                 'not (fields["brand"] == "nike")', 'fields["price"] != 3',
                 'not (id in ["sku-1", "sku-2"])',
                 'fields["price"] < 5000 and not (id in ["sku-1", "sku-2"])']:
        check(f"catalogue search filter: {expr}", cat_filter(expr))
    check("get VARCHAR ids", lambda: str([r["id"] for r in cat.get("items", ids=["sku-1", "sku-2"],
                                                                   output_fields=["id"])]))
    cat.close()
    return {"checks": checks}


def worker_knobs(spec: dict) -> dict:
    """Does the engine honour the search-time knobs? Uniform random vectors (no clusters: the
    hardest case for an ANN index, where nprobe/ef must matter), IVF_FLAT nlist 256, recall@10
    against exact at several nprobe values; on 3.2.2 also HNSW ef. Identical recall at nprobe 1
    and 256 means the parameter never reached the index that answered."""
    import numpy as np
    from pymilvus import DataType, MilvusClient

    _quiet()
    n, d = spec["rows"], 64
    rng = np.random.default_rng(7)
    v = rng.normal(size=(n, d)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    q = rng.normal(size=(50, d)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = np.argsort(-(q @ v.T), axis=1)[:, :K]
    client = MilvusClient(spec["db"])
    out = {"rows": n, "dim": d, "queries": len(q), "indexes": {}}
    plans = [("IVF_FLAT", {"nlist": 256}, "nprobe", (1, 16, 256))]
    if spec.get("hnsw"):
        plans.append(("HNSW", {"M": 16, "efConstruction": 200}, "ef", (10, 64, 256)))
    for itype, iparams, knob, values in plans:
        name = f"knobs_{itype.lower()}"
        s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("vector", DataType.FLOAT_VECTOR, dim=d)
        p = client.prepare_index_params()
        p.add_index("vector", index_type=itype, metric_type="COSINE", params=iparams)
        client.create_collection(name, schema=s, index_params=p)
        for start in range(0, n, 1000):
            client.insert(name, [{"id": i, "vector": row} for i, row in
                                 zip(range(start, start + 1000), v[start:start + 1000].tolist())])
        client.flush(name)
        client.release_collection(name)
        client.load_collection(name)
        res = {}
        for val in values:
            t0 = time.perf_counter()
            hits = client.search(name, q.tolist(), limit=K,
                                 search_params={"metric_type": "COSINE", "params": {knob: val}})
            ms = (time.perf_counter() - t0) * 1000 / len(q)
            rec = float(np.mean([len({h["id"] for h in hh} & set(exact[i].tolist())) / K
                                 for i, hh in enumerate(hits)]))
            res[f"{knob}={val}"] = {"recall_at_10": round(rec, 3), "ms_per_query": round(ms, 2)}
        out["indexes"][itype] = {"index_params": iparams, "search": res,
                                 "knob_changes_recall": len({r["recall_at_10"] for r in res.values()}) > 1}
    client.close()
    return out


def worker_main(spec: dict) -> None:
    fn = {"build": worker_build, "reindex": worker_reindex, "search": worker_search,
          "api": worker_api, "lockprobe": worker_lockprobe, "knobs": worker_knobs}[spec["mode"]]
    try:
        result = {"ok": True, **fn(spec)}
    except BaseException as exc:  # noqa: BLE001 - the driver records it and carries on
        import traceback

        result = {"ok": False, "error": _err(exc), "traceback": traceback.format_exc()[-2000:]}
    try:
        import milvus_lite
        import pymilvus

        result["versions"] = {"pymilvus": pymilvus.__version__,
                              "milvus_lite": getattr(milvus_lite, "__version__", "?")}
    except Exception:  # noqa: BLE001
        pass
    if spec.get("out"):
        Path(spec["out"]).write_text(json.dumps(result))
    print("RESULT " + json.dumps({k: v for k, v in result.items() if k != "runs"}), flush=True)


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------
class Driver:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.deadline = time.time() + args.budget_min * 60
        self.pythons = {"lite-3.2.2": args.python_322, "lite-2.5.1": args.python_251}
        self.seq = 0
        self.nprobes = [int(x) for x in args.nprobes.split(",")]

    def left_s(self) -> float:
        return self.deadline - time.time()

    def run(self, engine: str, spec: dict, timeout: float) -> dict:
        """Run one worker step in the engine's interpreter; sample its process tree's memory."""
        timeout = max(10.0, min(timeout, self.left_s()))
        self.seq += 1
        spec = dict(spec, out=str(self.work / f"step{self.seq:03d}.json"))
        Path(spec["out"]).unlink(missing_ok=True)
        spec_file = self.work / f"step{self.seq:03d}.spec.json"
        spec_file.write_text(json.dumps(spec))
        log = open(self.work / f"step{self.seq:03d}.log", "w")
        t0 = time.time()
        proc = subprocess.Popen([self.pythons[engine], os.path.abspath(__file__), "--worker",
                                 str(spec_file)], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        peak = {"rss_mb": 0, "processes": 0}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                mem = tree_memory(proc.pid)
                if mem["rss_mb"] > peak["rss_mb"]:
                    peak.update(rss_mb=mem["rss_mb"], processes=len(mem["processes"]),
                                names=[p["name"] for p in mem["processes"]])
                stop.wait(0.25)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            for pid in reversed(process_tree(proc.pid)):  # our own worker and its children
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            proc.wait(timeout=30)
        stop.set()
        sampler.join(timeout=5)
        log.close()
        wall = time.time() - t0
        out = Path(spec["out"])
        result = json.loads(out.read_text()) if out.exists() else {
            "ok": False, "error": "timed out" if timed_out else f"exit code {proc.returncode}",
            "log_tail": (self.work / f"step{self.seq:03d}.log").read_text()[-1500:]}
        result.update(spawn_epoch=t0, process_wall_s=round(wall, 2), timed_out=timed_out,
                      peak_tree_rss_mb=peak["rss_mb"], peak_tree=peak.get("names"),
                      timeout_s=round(timeout))
        print(f"  [{time.strftime('%H:%M:%S')}] {engine} {spec['mode']:8s} "
              f"{spec.get('label', '')}: {wall:6.1f} s, ok={result.get('ok')}"
              f"{'' if result.get('ok') else ' ' + str(result.get('error'))[:200]}", flush=True)
        return result

    # -- data ------------------------------------------------------------------------------
    def data(self, n: int) -> dict:
        import numpy as np

        kind = self.args.data
        tag = "" if kind == "clusters" else f"{kind}_"
        paths = {k: self.work / f"{k}_{tag}{n}.npy" for k in ("vectors", "queries", "taken")}
        if not all(p.exists() for p in paths.values()):
            rng = np.random.default_rng(SEED)
            centres = rng.normal(size=(max(16, n // 500), DIM)).astype(np.float32)
            centres /= np.linalg.norm(centres, axis=1, keepdims=True)
            if kind == "clusters":
                def make(m):
                    return clip_like(m, rng, centres)
            else:
                g = rng.normal(size=DIM).astype(np.float32)
                g /= np.linalg.norm(g)
                basis = rng.normal(size=(32, DIM)).astype(np.float32)
                basis /= np.linalg.norm(basis, axis=1, keepdims=True) * np.sqrt(32)

                def make(m):
                    return manifold_like(m, rng, (g, centres, basis))
            vec = np.lib.format.open_memmap(paths["vectors"], "w+", np.float32, (n, DIM))
            for s in range(0, n, 100_000):
                vec[s:s + 100_000] = make(min(100_000, n - s))
            vec.flush()
            del vec
            np.save(paths["queries"], make(self.args.queries + 4))
            np.save(paths["taken"], TAKEN_LO + rng.random(n) * TAKEN_SPAN)
        taken = np.load(paths["taken"], mmap_mode="r")
        x = float(np.median(taken))
        return {**{k: str(v) for k, v in paths.items()}, "taken_x": x,
                "range_fraction": float((taken >= x).mean())}

    def exact(self, n: int, data: dict) -> dict:
        """numpy's exact cosine top-10 (vectors are unit length) under each filter."""
        import numpy as np

        vec = np.load(data["vectors"], mmap_mode="r")
        q = np.load(data["queries"])[: self.args.queries]
        taken = np.load(data["taken"], mmap_mode="r")
        best = {f: (np.full((len(q), K), -np.inf, np.float32), np.zeros((len(q), K), np.int64))
                for f in ("none", "folder", "range")}
        t0 = time.time()
        for s in range(0, n, 50_000):
            block = np.asarray(vec[s:s + 50_000])
            scores = q @ block.T  # (queries, rows)
            ids = np.arange(s, s + len(block))
            masks = {"none": None, "folder": (ids % FOLDERS) == 3,
                     "range": np.asarray(taken[s:s + len(block)]) >= data["taken_x"]}
            for f, mask in masks.items():
                sc = scores if mask is None else np.where(mask[None, :], scores, -np.inf)
                top = np.argpartition(-sc, K, axis=1)[:, :K]
                cand_s = np.concatenate([best[f][0], np.take_along_axis(sc, top, 1)], 1)
                cand_i = np.concatenate([best[f][1], ids[top]], 1)
                keep = np.argsort(-cand_s, axis=1)[:, :K]
                best[f] = (np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1))
        print(f"  exact top-{K} for {n:,} rows x {len(q)} queries x 3 filters: "
              f"{time.time() - t0:.1f} s", flush=True)
        return {f: b[1] for f, b in best.items()}

    # -- one engine, one size ----------------------------------------------------------------
    def summarise(self, search: dict, truth: dict, spawn: float) -> dict:
        import numpy as np

        if not search.get("ok"):
            return {"error": search.get("error"), "timed_out": search.get("timed_out")}
        out = {"startup_to_first_answer_s": round(search["first_answer_epoch"] - spawn, 2),
               "startup_breakdown_s": {k: search[k] for k in ("import_s", "open_s", "load_s",
                                                              "first_search_s")},
               "rss_mb_after_load": search["memory_after_load"]["rss_mb"],
               "rss_mb_after_search": search["memory_after_search"]["rss_mb"],
               "peak_tree_rss_mb": search["peak_tree_rss_mb"],
               "processes": [p["name"] for p in search["memory_after_search"]["processes"]],
               "search": {}}
        for run in search["runs"]:
            lat = np.array(run["latencies_s"]) * 1000
            exact = truth[run["filter"]]
            rec = [len(set(h) & set(exact[i].tolist())) / K for i, h in enumerate(run["ids"])]
            entry = {"queries": len(lat), "p50_ms": round(float(np.percentile(lat, 50)), 2),
                     "p95_ms": round(float(np.percentile(lat, 95)), 2),
                     "recall_at_10": round(float(np.mean(rec)), 4),
                     "short_answers": sum(len(h) < K for h in run["ids"])}
            if run["hits_match_folder"] is not None:
                entry["hits_match_filter"] = run["hits_match_folder"]
            out["search"].setdefault(run["variant"], {"params": run["params"]})[run["filter"]] = entry
        return out

    def search_twice(self, engine, db, data, variants, timeout, label):
        """Two fresh processes: the full query sets, then start-up alone again."""
        spec = {"mode": "search", "db": db, "queries": data["queries"], "variants": variants,
                "taken_x": data["taken_x"], "queries_n": self.args.queries,
                "max_run_s": self.args.max_run_s, "label": label}
        first = self.run(engine, spec, timeout)
        again = self.run(engine, dict(spec, queries_n=0, label=label + " (start-up again)"), timeout)
        return first, again

    def bench(self, engine: str, n: int, data: dict, truth: dict) -> dict:
        big = n >= 1_000_000
        t_build = self.args.step_timeout * (10 if big else 3 if n >= 100_000 else 1)
        base = self.work / engine / str(n)
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        db = str(base / "index.db")
        report = {"engine": engine, "rows": n, "indexes": {}}
        if engine == "lite-3.2.2":
            plan = [("HNSW", {"M": 16, "efConstruction": 200}, [{"name": "ef64", "params": {"ef": 64}}])]
        else:
            nlist = 1024 if n >= 100_000 else 128
            plan = [("FLAT", {}, [{"name": "flat", "params": {}}]),
                    ("IVF_FLAT", {"nlist": nlist},
                     [{"name": f"nprobe{p}", "params": {"nprobe": p}} for p in self.nprobes]
                     + [{"name": "mmsearch_params_ef64", "params": {"ef": 64}}]),
                    ("AUTOINDEX", {}, [{"name": "auto", "params": {}}])]
        if self.args.indexes:
            wanted = {x.strip().upper() for x in self.args.indexes.split(",")}
            plan = [p for p in plan if p[0] in wanted]
        if not plan:
            return {**report, "skipped": "no index type of this engine in --indexes"}
        # insert, batches of 1000 (the collection that is searched)
        build = self.run(engine, {"mode": "build", "db": db, "rows": n, "batch": 1000,
                                  "index_type": plan[0][0], "index_params": plan[0][1],
                                  "vectors": data["vectors"], "taken": data["taken"],
                                  "label": f"{n:,} rows, batch 1000"}, t_build)
        report["insert_batch_1000"] = {k: build.get(k) for k in (
            "rows_per_s", "rows_per_s_engine_only", "insert_s", "flush_s", "count",
            "process_wall_s", "peak_tree_rss_mb", "error", "timed_out")}
        if not build.get("ok"):
            return report
        report["disk_mb_after_build"] = round(disk_bytes(Path(db)) / 2**20, 1)
        # insert, batches of 500, into a scratch index
        m = min(n, self.args.insert500_rows)
        if m <= 0:
            return self.bench_indexes(engine, n, data, truth, report, plan, db, base, big, t_build)
        scratch = base / "scratch500"
        scratch.mkdir()
        b500 = self.run(engine, {"mode": "build", "db": str(scratch / "index.db"), "rows": m,
                                 "batch": 500, "index_type": plan[0][0],
                                 "index_params": plan[0][1], "vectors": data["vectors"],
                                 "taken": data["taken"], "label": f"{m:,} rows, batch 500"},
                        t_build)
        report["insert_batch_500"] = {k: b500.get(k) for k in (
            "rows", "rows_per_s", "rows_per_s_engine_only", "insert_s", "flush_s",
            "process_wall_s", "error", "timed_out")}
        shutil.rmtree(scratch, ignore_errors=True)
        return self.bench_indexes(engine, n, data, truth, report, plan, db, base, big, t_build)

    def bench_indexes(self, engine, n, data, truth, report, plan, db, base, big, t_build):
        for i, (itype, iparams, variants) in enumerate(plan):
            if self.left_s() < 60:
                report["indexes"][itype] = {"skipped": "run budget spent"}
                continue
            entry = {"index_params": iparams}
            if i > 0:
                re = self.run(engine, {"mode": "reindex", "db": db, "index_type": itype,
                                       "index_params": iparams, "label": itype}, t_build)
                entry["reindex"] = {k: re.get(k) for k in ("create_index_s", "load_after_create_s",
                                                           "describe_index", "process_wall_s",
                                                           "error")}
                if not re.get("ok"):
                    report["indexes"][itype] = entry
                    continue
            timeout = self.args.step_timeout * (8 if big else 2 if n >= 100_000 else 1) \
                * (1 + len(variants) // 2)
            first, again = self.search_twice(engine, db, data, variants, timeout, f"{itype} {n:,}")
            entry.update(self.summarise(first, truth, first["spawn_epoch"]))
            if again.get("ok"):
                entry["startup_again_s"] = round(again["first_answer_epoch"] - again["spawn_epoch"], 2)
                entry["startup_again_breakdown_s"] = {k: again[k] for k in (
                    "import_s", "open_s", "load_s", "first_search_s")}
            else:
                entry["startup_again_error"] = again.get("error")
            entry["disk_mb_after_search"] = round(disk_bytes(Path(db)) / 2**20, 1)
            report["indexes"][itype] = entry
        if not self.args.keep:
            shutil.rmtree(base, ignore_errors=True)
        return report

    def api(self, engine: str, data: dict) -> dict:
        base = self.work / engine / "api"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        index_type, params = ("HNSW", {"M": 16, "efConstruction": 200}) \
            if engine == "lite-3.2.2" else ("IVF_FLAT", {"nlist": 128})
        res = self.run(engine, {"mode": "api", "db": str(base / "api.db"),
                                "db_catalog": str(base / "cat.db"), "index_type": index_type,
                                "index_params": params, "vectors": data["vectors"],
                                "taken": data["taken"], "label": "API checks"},
                       self.args.step_timeout * 2)
        shutil.rmtree(base, ignore_errors=True)
        return {"index_type": index_type, "checks": res.get("checks"), "error": res.get("error"),
                "versions": res.get("versions")}

    def knobs(self, engine: str) -> dict:
        base = self.work / engine / "knobs"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        res = self.run(engine, {"mode": "knobs", "db": str(base / "knobs.db"),
                                "rows": self.args.knobs_rows, "hnsw": engine == "lite-3.2.2",
                                "label": "search knobs"}, self.args.step_timeout * 3)
        shutil.rmtree(base, ignore_errors=True)
        return {k: res.get(k) for k in ("rows", "dim", "queries", "indexes", "error",
                                        "process_wall_s", "versions")}


def table(results: list[dict]) -> str:
    lines = ["| rows | engine / index / params | insert rows/s (1000; 500) | disk MB | start-up s "
             "(again) | p50/p95 ms | filtered p50 ms folder, range | recall@10 (folder, range) | "
             "RSS MB load/peak |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ins = f"{(r.get('insert_batch_1000') or {}).get('rows_per_s')}; " \
              f"{(r.get('insert_batch_500') or {}).get('rows_per_s')}"
        for itype, e in r["indexes"].items():
            for vname, v in (e.get("search") or {}).items():
                a, f, g = v.get("none", {}), v.get("folder", {}), v.get("range", {})
                lines.append(
                    f"| {r['rows']:,} | {r['engine']} {itype} {vname} | {ins} | "
                    f"{e.get('disk_mb_after_search')} | {e.get('startup_to_first_answer_s')} "
                    f"({e.get('startup_again_s')}) | {a.get('p50_ms')}/{a.get('p95_ms')} | "
                    f"{f.get('p50_ms')}, {g.get('p50_ms')} | {a.get('recall_at_10')} "
                    f"({f.get('recall_at_10')}, {g.get('recall_at_10')}) | "
                    f"{e.get('rss_mb_after_load')}/{e.get('peak_tree_rss_mb')} |")
            if not e.get("search"):
                lines.append(f"| {r['rows']:,} | {r['engine']} {itype} | {ins} | | | | | | "
                             f"{e.get('skipped') or e.get('error') or e.get('startup_again_error')} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--engines", default="lite-3.2.2,lite-2.5.1")
    ap.add_argument("--big-engines", default="lite-2.5.1",
                    help="engines to run at sizes >= 1M (3.2.2 took ~10 min to load 1M rows)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--insert500-rows", type=int, default=200_000,
                    help="rows for the batch-500 insert measurement (a scratch index)")
    ap.add_argument("--max-run-s", type=float, default=150.0,
                    help="time cap per query set (variant x filter); fewer queries past it")
    ap.add_argument("--step-timeout", type=float, default=300.0,
                    help="subprocess timeout at 10k rows; scaled up for larger sizes")
    ap.add_argument("--budget-min", type=float, default=45.0, help="whole-run budget")
    ap.add_argument("--work", default="/tmp/mmsearch-engines")
    ap.add_argument("--python-322", default=ENGINE_PYTHON["lite-3.2.2"])
    ap.add_argument("--python-251", default=ENGINE_PYTHON["lite-2.5.1"])
    ap.add_argument("--data", default="clusters", choices=["clusters", "manifold"],
                    help="clusters: bench/query.py's generator; manifold: a harder, less "
                         "clustered one (see manifold_like)")
    ap.add_argument("--indexes", default="",
                    help="only these index types, e.g. HNSW,IVF_FLAT (default: all)")
    ap.add_argument("--nprobes", default=",".join(map(str, NPROBES)))
    ap.add_argument("--knobs", action="store_true",
                    help="also check that nprobe/ef change recall (uniform random vectors)")
    ap.add_argument("--knobs-rows", type=int, default=100_000)
    ap.add_argument("--append", action="store_true",
                    help="add this run to --out's extra_runs instead of replacing the file")
    ap.add_argument("--skip-api", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the indexes under --work")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "engines.json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-inline", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker or args.worker_inline:
        spec = json.loads(Path(args.worker).read_text()) if args.worker else json.loads(args.worker_inline)
        worker_main(spec)
        return {}

    drv = Driver(args)
    t_start = time.time()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    big_engines = {e.strip() for e in args.big_engines.split(",")}
    sizes = [int(s) for s in args.sizes.split(",")]
    out = {"machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
           "started": time.strftime("%Y-%m-%d %H:%M:%S"), "args": {k: str(v) for k, v in vars(args).items()
                                                                  if not k.startswith("worker")},
           "data": args.data, "k": K, "folder_filter": FOLDER_FILTER, "results": [], "skipped": []}
    previous = json.loads(args.out.read_text()) if args.append and args.out.exists() else None
    if previous is not None:
        previous.setdefault("extra_runs", []).append(out)

    def save():
        out["total_s"] = round(time.time() - t_start)
        out["machine"]["loadavg_now"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(previous if previous is not None else out, indent=1) + "\n")

    if not args.skip_api:
        data = drv.data(sizes[0] if sizes[0] >= 10_000 else 10_000)
        out["api"] = {e: drv.api(e, data) for e in engines}
        save()
    if args.knobs:
        out["knobs"] = {e: drv.knobs(e) for e in engines}
        save()
    for n in sizes:
        print(f"== {n:,} rows", flush=True)
        data = drv.data(n)
        truth = drv.exact(n, data)
        for engine in engines:
            if n >= 1_000_000 and engine not in big_engines:
                out["skipped"].append({"engine": engine, "rows": n, "why": "not in --big-engines"})
                continue
            if drv.left_s() < 120:
                out["skipped"].append({"engine": engine, "rows": n, "why": "run budget spent"})
                continue
            out["results"].append({**drv.bench(engine, n, data, truth),
                                   "range_filter": f"taken >= {data['taken_x']!r}",
                                   "range_fraction": round(data["range_fraction"], 4)})
            save()
    save()
    print(table(out["results"]))
    for e, kn in (out.get("knobs") or {}).items():
        print(f"\n{e} search knobs, {kn.get('rows')} uniform random rows:")
        for itype, r in (kn.get("indexes") or {}).items():
            print(f"  {itype}: " + ", ".join(f"{k} recall {v['recall_at_10']}"
                                              for k, v in r["search"].items()))
    if out.get("api"):
        for e, a in out["api"].items():
            print(f"\n{e} API checks ({a.get('versions')}):")
            for c in a.get("checks") or []:
                print(f"  {'ok  ' if c['ok'] else 'FAIL'} {c['check']}: {str(c['detail'])[:160]}")
    return out


if __name__ == "__main__":
    main()
