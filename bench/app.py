"""The app under load: cold start, first vs steady query, and concurrent clients.

    python bench/app.py [--clients 20] [--queries 50] [--out bench/results/app.json]

1. Cold start: time from launching `mmsearch ui` (a real subprocess) to the first answered
   text query, and that first query's latency vs the steady p50 (the app warms the model and
   the collection before it starts listening).
2. Load: N gradio_client clients in threads, each sending M mixed queries (text, example
   picture, find-similar) to the running app on localhost: errors, p50/p95 latency.
Clients do not download the result previews (a browser fetches them in parallel and caches
them; gradio_client fetches them one by one, ~60 ms each, which would dominate).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mmsearch.config import DEMO_PICTURES_DIR  # noqa: E402

QUERIES = ["a red sneaker", "sepatu lari ringan", "gaun biru", "a black bag", "celana panjang",
           "a white shirt", "kaos kuning", "an orange coat", "sandal hijau", "a purple dress"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_index(db: Path) -> None:
    subprocess.run([sys.executable, "-m", "mmsearch.cli", "index", str(DEMO_PICTURES_DIR),
                    "--db", str(db), "--model", "demo", "--json"], check=True,
                   capture_output=True, cwd=ROOT)


def cold_start(db: Path) -> tuple[dict, subprocess.Popen, str]:
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mmsearch.cli", "ui", "--db", str(db),
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    client = None
    while client is None:
        if proc.poll() is not None:
            raise RuntimeError("the app exited during start-up")
        try:
            # like a browser, which loads the previews in parallel (and caches them), rather
            # than gradio_client's one-by-one download of every result file
            client = Client(url, verbose=False, download_files=False)
        except Exception:
            time.sleep(0.2)
    t1 = time.perf_counter()
    client.predict(QUERIES[0], 10, api_name="/search_text")
    first = time.perf_counter() - t1
    ready = time.perf_counter() - t0
    steady = []
    for q in QUERIES * 3:
        t = time.perf_counter()
        client.predict(q, 10, api_name="/search_text")
        steady.append(time.perf_counter() - t)
    p50 = statistics.median(steady)
    return ({"launch_to_first_answer_s": round(ready, 2), "first_query_ms": round(first * 1000, 1),
             "steady_p50_ms": round(p50 * 1000, 1), "first_vs_steady": round(first / p50, 2)},
            proc, url)


def load(url: str, clients: int, queries: int, seed: int = 0,
         pictures_root: str | Path = DEMO_PICTURES_DIR) -> dict:
    """`pictures_root`: the indexed copy of the demo pictures (find-similar needs indexed paths)."""
    from gradio_client import Client, handle_file

    pictures = sorted(Path(pictures_root).glob("*.png"))
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        rng = random.Random(seed + i)
        client = Client(url, verbose=False, download_files=False)
        for _ in range(queries):
            kind = rng.choice(["text", "text", "image", "similar"])
            t = time.perf_counter()
            try:
                if kind == "text":
                    client.predict(rng.choice(QUERIES), 12, api_name="/search_text")
                elif kind == "image":
                    client.predict(handle_file(str(rng.choice(pictures))), 12,
                                   api_name="/search_image")
                else:
                    client.predict(str(rng.choice(pictures)), 12, api_name="/search_similar")
                with lock:
                    latencies.append(time.perf_counter() - t)
            except Exception as exc:  # counted, reported
                with lock:
                    errors.append(f"{kind}: {type(exc).__name__}: {str(exc)[:100]}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {"clients": clients, "queries_each": queries, "answered": len(lat),
            "errors": len(errors), "error_samples": errors[:5],
            "p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
            "p95_ms": round(lat[int(len(lat) * 0.95)] * 1000, 1) if lat else None,
            "throughput_qps": round(len(lat) / wall, 1)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "app.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "app.db"
        build_index(db)
        start, proc, url = cold_start(db)
        print("cold start:", json.dumps(start), flush=True)
        try:
            under_load = load(url, args.clients, args.queries)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        print("load:", json.dumps(under_load), flush=True)
    result = {"cold_start": start, "load": under_load}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
