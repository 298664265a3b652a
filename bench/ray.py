"""Indexing on a Ray cluster vs plain `mmsearch index`, same files, same run, interleaved.

    python bench/ray.py [--count 240] [--rounds 3] [--model vit|demo] [--plan-sizes 20000,200000]
                         [--skip throughput,kill,plan] [--catalog]

A local Ray cluster (a head and one worker node on this machine, 1 CPU each, 200 MB object
stores) and a fresh `mmsearch serve-index` (Milvus Lite 2.5.1's server) per run; both
commands write into that server (`--uri`), so they differ only in how the work is spread.
Pictures: bench/indexing.py's 12 MP JPEGs (scikit-image photos with sensor-like noise).
Measured, each as a fresh CLI process timed end to end (start-up, model load, Ray connection
and actor start included):

- throughput: pictures/s of `mmsearch index DIR --uri U` and of the same with `--ray`;
  with `--catalog`, also of `mmsearch index --catalog FILE --uri U` with and without `--ray`
  (the same pictures as a catalogue file: each a title and its text vector too);
- a worker node killed mid-run (its raylet, kill -9, once a third of the rows are written):
  the run must finish with the index equal to the folder and no key twice;
- the driver's memory planning N synthetic files (empty .jpg files, a tenth of them stored
  in the index but gone from disk): peak RSS of pipeline.plan_windows (what --ray runs) and
  of pipeline.plan (the single-machine planner, a list), at each N.
Results: bench/results/ray.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
RAY = str(Path(sys.executable).with_name("ray"))
MODELS = {"vit": ["--model", "ViT-B-32", "--pretrained", "random"], "demo": ["--model", "demo"]}
STORE = str(200 * 1024 * 1024)
ITEMS = "mmsearch_items"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """`ray start` a head and a worker node on this machine; `stop` ends every Ray process."""

    def __init__(self, tmp: Path):
        self.port, self.worker_port = free_port(), free_port()
        self.tmp = tmp / "ray"
        self.address = f"127.0.0.1:{self.port}"
        subprocess.run([RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port",
                        str(self.port), "--num-cpus", "1", "--object-store-memory", STORE,
                        "--include-dashboard", "false", "--disable-usage-stats",
                        "--temp-dir", str(self.tmp)], env=ENV, check=True, capture_output=True)
        self.add_worker()

    def add_worker(self) -> None:
        subprocess.run([RAY, "start", "--address", self.address, "--num-cpus", "1",
                        "--object-store-memory", STORE, "--node-manager-port",
                        str(self.worker_port), "--disable-usage-stats"], env=ENV, check=True,
                       capture_output=True)

    def worker_raylet(self) -> int | None:
        out = subprocess.run(["pgrep", "-f", f"raylet.*--node_manager_port={self.worker_port}"],
                             capture_output=True, text=True).stdout.split()
        return int(out[0]) if out else None

    def kill_worker(self) -> None:
        pid = self.worker_raylet()
        if pid:
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        subprocess.run([RAY, "stop", "--force"], env=ENV, capture_output=True)


class Server:
    """A fresh `mmsearch serve-index` on a free port."""

    def __init__(self, tmp: Path):
        from pymilvus import MilvusClient

        data = Path(tempfile.mkdtemp(dir=tmp)) / "index.db"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "mmsearch.cli", "serve-index",
                                      "--data-dir", str(data), "--port", str(port)], env=ENV,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                MilvusClient(uri=self.url, timeout=2).close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def keys(self) -> list[str]:
        from mmsearch.config import IndexLocation
        from mmsearch.stores import open_index

        with open_index(IndexLocation.resolve(uri=self.url)) as index:
            return [r["path"] for r in index.iter_rows(("path",))]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


PEAK_RSS = ("import resource, sys; from mmsearch.cli import main; code = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
            "sys.exit(code)")


def index_run(target: list[str], n: int, url: str, model: list[str], ray: str | None = None,
              kill=None) -> dict:
    """One `mmsearch index TARGET` process (a folder, or --catalog FILE) of `n` pictures,
    timed end to end, the server's row count sampled every 0.25 s meanwhile; `kill()` is
    called once a third of them are written."""
    from pymilvus import MilvusClient

    argv = [sys.executable, "-c", PEAK_RSS, "index", *target, "--uri", url, *model,
            "--no-ocr", "--json", *(["--ray", ray] if ray else [])]
    t0 = time.perf_counter()
    proc = subprocess.Popen(["nice", *argv], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    client, samples, killed_at = MilvusClient(uri=url), [], None
    while proc.poll() is None:
        try:
            rows = client.query(ITEMS, filter="", output_fields=["count(*)"],
                                consistency_level="Strong")[0]["count(*)"]
        except Exception:  # the collection is not there yet
            rows = 0
        samples.append((time.perf_counter() - t0, rows))
        if kill and killed_at is None and rows >= n // 3:
            kill()
            killed_at = rows
        time.sleep(0.25)
    client.close()
    out, err = proc.communicate(timeout=1800)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"rc {proc.returncode}: {out[-1000:]} {err[-3000:]}")
    try:
        summary = json.loads(out.strip().splitlines()[-1])
    except ValueError:
        raise RuntimeError(f"not a summary: {out[-2000:]!r} {err[-2000:]}") from None
    extra = out.strip().splitlines()[:-1]  # --json's stdout must be the summary alone
    return {"seconds": round(seconds, 2), "summary": summary, "stdout_extra": extra[:20],
            "steady_img_per_s": steady_rate(samples, n), "rows_at_kill": killed_at,
            "driver_peak_rss_mb": round(int(err.strip().splitlines()[-1]) / 1024)}


def steady_rate(samples: list[tuple[float, int]], n: int) -> float | None:
    """Rows/s between the samples where 10% and 90% of the rows were written: the rate once
    started (start-up, model loads and the Ray connection left out)."""
    lo = next(((t, r) for t, r in samples if r >= 0.1 * n), None)
    hi = next(((t, r) for t, r in samples if r >= 0.9 * n), None)
    if not lo or not hi or hi[0] <= lo[0]:
        return None
    return round((hi[1] - lo[1]) / (hi[0] - lo[0]), 2)


def throughput(tmp: Path, target: list[str], n: int, rounds: int, model: list[str]) -> dict:
    cluster = Cluster(tmp)
    runs: dict[str, list] = {"plain": [], "ray": []}
    try:
        for r in range(rounds):
            order = ("plain", "ray") if r % 2 == 0 else ("ray", "plain")
            for kind in order:
                server = Server(tmp)
                try:
                    got = index_run(target, n, server.url, model,
                                    cluster.address if kind == "ray" else None)
                finally:
                    server.stop()
                assert got["summary"]["added"] == n, got
                got["img_per_s"] = round(n / got["seconds"], 2)
                runs[kind].append(got)
                print(kind, got["img_per_s"], "img/s end to end,", got["steady_img_per_s"],
                      "steady", flush=True)
    finally:
        cluster.stop()

    def ratios(key):
        return [round(ray[key] / plain[key], 3) if ray[key] and plain[key] else None
                for plain, ray in zip(runs["plain"], runs["ray"])]

    def median(xs):
        xs = sorted(x for x in xs if x is not None)
        return xs[len(xs) // 2] if xs else None

    return {"pictures": n, "runs": runs, "ratios_end_to_end": ratios("img_per_s"),
            "ratios_steady": ratios("steady_img_per_s"),
            "ratio_end_to_end_median": median(ratios("img_per_s")),
            "ratio_steady_median": median(ratios("steady_img_per_s"))}


def killed_worker(tmp: Path, folder: Path, n: int, model: list[str]) -> dict:
    cluster = Cluster(tmp)
    server = Server(tmp)
    try:
        got = index_run([str(folder)], n, server.url, model, cluster.address,
                        kill=cluster.kill_worker)
        alive = cluster.worker_raylet() is None  # the raylet stayed dead: the run went on without it
        keys = server.keys()
    finally:
        server.stop()
        cluster.stop()
    files = sorted(str(p) for p in folder.iterdir())
    return {**got, "worker_stayed_dead": alive, "rows": len(keys), "distinct": len(set(keys)),
            "index_equals_folder": sorted(keys) == files,
            "no_duplicates": len(keys) == len(set(keys))}


PLAN = """
import sys
from mmsearch.config import IndexLocation
from mmsearch.stores import open_index
from indexer import pipeline

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])  # kB

with open_index(IndexLocation.resolve(uri=sys.argv[1])) as index:
    # the import peak (torch, pymilvus) would hide the plan's own: reset the high-water mark
    # (Linux: 5 > clear_refs) once everything is imported and the index is open
    open("/proc/self/clear_refs", "w").write("5")
    before = status("VmRSS")
    if sys.argv[3] == "windows":
        jobs = removed = 0
        for part in pipeline.plan_windows([sys.argv[2]], index):
            jobs += len(part.jobs); removed += len(part.removed)
    else:
        work = pipeline.plan([sys.argv[2]], index)
        jobs, removed = len(work.jobs), len(work.removed)
print(jobs, removed, before, status("VmHWM"))
"""


def plan_memory(tmp: Path, sizes: list[int]) -> dict:
    """Peak RSS of planning N files (empty .jpg files; a tenth of N stored rows are gone)."""
    import numpy as np

    from mmsearch.config import IndexLocation, ModelSpec
    from mmsearch.items import Item
    from mmsearch.stores import open_index

    out = {}
    for n in sizes:
        folder = tmp / f"plan{n}"
        for d in range(0, n, 1000):  # 1,000 files a folder, as a photo library has
            sub = folder / f"d{d // 1000:04d}"
            sub.mkdir(parents=True)
            for i in range(d, min(n, d + 1000)):
                (sub / f"IMG_{i:07d}.jpg").touch()
        server = Server(tmp)
        try:
            spec = ModelSpec.parse("demo")
            rng = np.random.default_rng(0)
            with open_index(IndexLocation.resolve(uri=server.url), model=spec, create_model=spec,
                            dim=64) as index:
                gone = [str(folder / "gone" / f"IMG_{i:07d}.jpg") for i in range(n // 10)]
                for i in range(0, len(gone), 1000):
                    vecs = rng.standard_normal((len(gone[i:i + 1000]), 64)).astype(np.float32)
                    index.upsert([Item(path=p, size=1, mtime=1.0, hash="x", image_vector=v)
                                  for p, v in zip(gone[i:i + 1000], vecs)])
                index.flush()
            row = {}
            for how in ("windows", "list"):
                t0 = time.perf_counter()
                done = subprocess.run([sys.executable, "-c", PLAN, server.url, str(folder), how],
                                      env=ENV, capture_output=True, text=True, check=True)
                jobs, removed, before, peak = map(int, done.stdout.split())
                assert (jobs, removed) == (n, n // 10), (jobs, removed)
                row[how] = {"rss_before_mb": round(before / 1024),
                            "peak_rss_mb": round(peak / 1024),
                            "growth_mb": round((peak - before) / 1024, 1),
                            "seconds": round(time.perf_counter() - t0, 1)}
                print(n, how, row[how], flush=True)
            out[str(n)] = row
        finally:
            server.stop()
    return out


def main(argv=None) -> dict:
    from indexing import SIZES, make_pictures

    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=240)
    ap.add_argument("--distinct", type=int, default=24, help="distinct pictures, hard-linked "
                    "to make up --count (decoding work is the same, making them is not)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", choices=sorted(MODELS), default="vit")
    ap.add_argument("--plan-sizes", default="20000,200000")
    ap.add_argument("--skip", default="", help="comma-separated: throughput,kill,plan")
    ap.add_argument("--catalog", action="store_true", help="also a catalogue round: the same "
                    "pictures as a catalogue file (a title and a price each), `index --catalog` "
                    "with and without --ray")
    ap.add_argument("--out", default=str(ROOT / "bench/results/ray.json"))
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    result: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
                    "cluster": "local: head + 1 worker node, --num-cpus 1 each, 200 MB stores",
                    "pictures": f"{args.count} 12 MP JPEGs", "model": " ".join(MODELS[args.model])}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not {"throughput", "kill"} <= skip or args.catalog:
            made = make_pictures(tmp / "made", args.distinct, SIZES["12mp"])
            folder = tmp / "pictures"
            folder.mkdir()
            for i in range(args.count):
                os.link(made[i % len(made)], folder / f"photo-{i:05d}.jpg")
            model = MODELS[args.model]
        if "throughput" not in skip:
            result["throughput"] = throughput(tmp, [str(folder)], args.count, args.rounds,
                                              model)
        if args.catalog:
            file = tmp / "products.jsonl"
            file.write_text("".join(json.dumps({
                "id": f"P{i:05d}", "image": f"pictures/photo-{i:05d}.jpg", "price": i,
                "title": f"product {i}", "description": "a photo for sale"}) + "\n"
                for i in range(args.count)))
            result["catalog_throughput"] = throughput(tmp, ["--catalog", str(file)], args.count,
                                                      args.rounds, model)
        if "kill" not in skip:
            result["worker_killed"] = killed_worker(tmp, folder, args.count, model)
            assert result["worker_killed"]["rows_at_kill"] is not None, "the run ended unkilled"
            print("killed worker:", {k: v for k, v in result["worker_killed"].items()
                                     if k not in ("summary", "stdout_extra")}, flush=True)
        if "plan" not in skip:
            result["plan_memory"] = plan_memory(tmp, [int(x) for x in args.plan_sizes.split(",")])
    if skip and Path(args.out).exists():  # a partial re-run replaces only the parts it ran
        ran = {"throughput", "catalog_throughput", "worker_killed", "plan_memory"} & set(result)
        result = {**json.loads(Path(args.out).read_text()), **{k: result[k] for k in ran}}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
