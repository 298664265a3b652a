"""What each group of item columns costs in Milvus Lite 2.5.1: insert rate and the load of a
fresh process (open + load + first answer), side by side, on synthetic rows.

Column sets, the first five each a superset of the one before:
- pictures: schema 1's folder columns (path, folder, size, mtime, taken, hash, width, height,
  the 512-d vector);
- items: + key, text (plain), fields (JSON) — what a photo item has (mmsearch.items);
- products: + title, description, text_hash, source — a catalogue's optional group;
- bm25: + BM25 over the text (analyzer, sparse field, BM25 function), texts as a photo's
  would be ("photos 2014");
- bm25_empty: the same with every text empty;
- meta: a photo item as mmsearch.items now makes it: path, taken, width, height and the
  vector as columns, the rest (key, folder, size, mtime, hash, text, fields) in the dynamic
  field, plus the SimHash codes of a FLAT collection;
- columns_codes: `items` with the codes and float16 copies, as photo items were made before.

Each set is written by its own process (PAGE-sized inserts, as mmsearch writes), then opened
by two fresh processes; the faster open counts. With --rounds N the sets take turns N times
(the machine is shared: ratios within a round, medians over rounds). Results:
bench/results/columns.json.

    python bench/columns.py [--rows 100000] [--rounds 3] [--sets pictures,items,...]
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DIM = 512
PAGE = 1000
SETS = ("pictures", "items", "products", "bm25", "bm25_empty", "meta", "columns_codes")
OUT = Path(__file__).resolve().parent / "results" / "columns.json"


def schema(client, name: str):
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    if name == "meta":
        return meta_schema(client)
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    for f in ("path", "folder"):
        s.add_field(f, DataType.VARCHAR, max_length=4096)
    s.add_field("size", DataType.INT64)
    s.add_field("mtime", DataType.DOUBLE)
    s.add_field("taken", DataType.DOUBLE)
    s.add_field("hash", DataType.VARCHAR, max_length=64)
    s.add_field("width", DataType.INT32)
    s.add_field("height", DataType.INT32)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    p = client.prepare_index_params()
    p.add_index("vector", index_type="FLAT", metric_type="COSINE")
    if name != "pictures":
        s.add_field("key", DataType.VARCHAR, max_length=4096)
        s.add_field("text", DataType.VARCHAR, max_length=16384,
                    enable_analyzer=name.startswith("bm25"))
        s.add_field("fields", DataType.JSON)
    if name == "columns_codes":
        codes(s, p)
        s.add_field("half", DataType.VARCHAR, max_length=1368)
    if name not in ("pictures", "items", "columns_codes"):
        for f, n in (("title", 2048), ("description", 16384), ("text_hash", 64),
                     ("source", 4096)):
            s.add_field(f, DataType.VARCHAR, max_length=n)
    if name.startswith("bm25"):
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                input_field_names=["text"], output_field_names=["sparse"]))
        p.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    return s, p


def codes(s, p) -> None:
    from pymilvus import DataType

    s.add_field("simhash", DataType.BINARY_VECTOR, dim=1024)
    p.add_index("simhash", index_type="BIN_FLAT", metric_type="HAMMING")


def meta_schema(client):
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("path", DataType.VARCHAR, max_length=4096)
    s.add_field("taken", DataType.DOUBLE)
    s.add_field("width", DataType.INT32)
    s.add_field("height", DataType.INT32)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    p = client.prepare_index_params()
    p.add_index("vector", index_type="FLAT", metric_type="IP")
    codes(s, p)
    return s, p


def write(db: str, name: str, rows: int) -> dict:
    import numpy as np
    from pymilvus import MilvusClient

    client = MilvusClient(db)
    s, p = schema(client, name)
    client.create_collection("t", schema=s, index_params=p)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for start in range(0, rows, PAGE):
        n = min(PAGE, rows - start)
        v = rng.standard_normal((n, DIM)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        page = []
        for i in range(n):
            j = start + i
            folder = f"/photos/{2010 + j % 15}"
            row = {"id": j, "path": f"{folder}/img{j:07d}.jpg", "folder": folder,
                   "size": 100_000, "mtime": 1.6e9 + j, "taken": 1.6e9 + j, "hash": f"{j:032x}",
                   "width": 4000, "height": 3000, "vector": v[i].tolist()}
            if name in ("meta", "columns_codes"):
                row |= {"simhash": np.packbits(v[i] > 0).tobytes() * 2}
            if name == "columns_codes":
                row["half"] = base64.b64encode(v[i].astype(np.float16).tobytes()).decode()
            if name != "pictures":
                row |= {"key": row["path"], "fields": {"folders": f"photos {2010 + j % 15}"},
                        "text": "" if name == "bm25_empty" else f"photos {2010 + j % 15}"}
            if name not in ("pictures", "items", "meta", "columns_codes"):
                row |= {"title": "", "description": "", "text_hash": "0" * 32, "source": ""}
            page.append(row)
        client.insert("t", page)
    seconds = time.perf_counter() - t0
    client.flush("t")
    client.close()
    return {"insert_rows_per_s": round(rows / seconds)}


def open_once(db: str) -> dict:
    t0 = time.perf_counter()
    from pymilvus import MilvusClient

    client = MilvusClient(db)
    client.load_collection("t")
    client.search("t", data=[[1.0 / DIM ** 0.5] * DIM], anns_field="vector", limit=10,
                  output_fields=["path"])
    return {"open_load_first_answer_s": round(time.perf_counter() - t0, 2)}


def child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         timeout=3600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise SystemExit(f"{args[0]} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--sets", default=",".join(SETS[:5]))
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # one measurement in this fresh process
        what, db, *rest = args.child
        result = write(db, rest[0], int(rest[1])) if what == "write" else open_once(db)
        print(json.dumps(result))
        return
    results = []
    names = args.sets.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name in names:
                db = str(Path(tmp) / f"{name}.db")
                row = {"set": name, "round": round_, "rows": args.rows,
                       **child(["--child", "write", db, name, str(args.rows)])}
                opens = [child(["--child", "open", db])["open_load_first_answer_s"]
                         for _ in range(2)]
                row["open_load_first_answer_s"] = min(opens)
                print(json.dumps(row), flush=True)
                results.append(row)
                shutil.rmtree(Path(tmp), ignore_errors=True)
                Path(tmp).mkdir(exist_ok=True)
    medians = {name: {key: round(statistics.median(r[key] for r in results if r["set"] == name), 2)
                      for key in ("insert_rows_per_s", "open_load_first_answer_s")}
               for name in names}
    base = medians[names[0]]
    for name in names:
        medians[name]["open_vs_first"] = round(
            medians[name]["open_load_first_answer_s"] / base["open_load_first_answer_s"], 2)
        medians[name]["insert_vs_first"] = round(
            medians[name]["insert_rows_per_s"] / base["insert_rows_per_s"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"engine": "milvus-lite 2.5.1", "dim": DIM,
                                    "medians": medians, "results": results}, indent=1) + "\n")
    for name, m in medians.items():
        print(f"{name:<11} insert {m['insert_rows_per_s']:>6} rows/s ({m['insert_vs_first']}x)  "
              f"open+load+first answer {m['open_load_first_answer_s']:>5} s "
              f"({m['open_vs_first']}x)")


if __name__ == "__main__":
    main()
