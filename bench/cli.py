"""How long `mmsearch search` takes as a fresh process, three ways, side by side in one run:

- torch:    no app running, the query encoded by the torch model (what every search did before)
- towers:   no app running, the query encoded by the exported ONNX towers (no torch import)
- resident: an app (`mmsearch serve`) is running for the index and answers it

on the 300 demo pictures with the embedded model. Wall time of the whole process, median
of --runs runs each, interleaved so machine noise hits all three alike. With `--before REV`,
the cold towers search of that git revision too (a worktree of it), in the same rounds.

    python bench/cli.py [--runs 7] [--before REV] [--out bench/results/cli.json]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mmsearch.config import DEMO_PICTURES_DIR, ModelSpec  # noqa: E402

QUERY = "sepatu lari ringan merah"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cli.json"))
    ap.add_argument("--before", help="a git revision whose cold search is timed alongside")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmsearch-bench-cli-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XDG_DATA_HOME": str(work / "data"),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    cli = [sys.executable, "-m", "mmsearch.cli"]
    db = work / "demo.db"
    subprocess.run([*cli, "index", str(DEMO_PICTURES_DIR), "--db", str(db), "--model", "demo"],
                   env=env, check=True, capture_output=True, cwd=ROOT)
    from mmsearch.towers import towers_dir

    os.environ["XDG_DATA_HOME"] = env["XDG_DATA_HOME"]
    towers = towers_dir(ModelSpec.parse("demo"))
    hidden = towers.with_name(towers.name + ".hidden")
    cold = work / "cold.db"  # a copy: the served one is held by the server process
    (shutil.copytree if db.is_dir() else shutil.copy2)(db, cold)

    def timed(index: Path, extra_env: dict, cwd: Path = ROOT) -> float:
        t0 = time.perf_counter()
        subprocess.run([*cli, "search", QUERY, "-k", "10", "--db", str(index)],
                       env={**env, **extra_env}, check=True, capture_output=True, cwd=cwd)
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"torch": [], "towers": [], "resident": []}
    before = work / "before"
    if args.before:  # PYTHONPATH goes before the editable install's finder
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before],
                       cwd=ROOT, check=True, capture_output=True)
        times[f"towers@{args.before}"] = []
    port = free_port()
    server = subprocess.Popen([*cli, "serve", "--db", str(db), "--port", str(port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    announced = db.with_name(db.name + ".server.json")
    try:
        deadline = time.monotonic() + 180
        while not announced.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        for _ in range(args.runs):
            times["resident"].append(timed(db, {}))
            times["towers"].append(timed(cold, {}))
            if args.before:
                times[f"towers@{args.before}"].append(
                    timed(cold, {"PYTHONPATH": str(before)}, before))
            towers.rename(hidden)
            try:
                times["torch"].append(timed(cold, {}))
            finally:
                hidden.rename(towers)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
        if args.before:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT,
                           capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    result = {"what": "mmsearch search as a fresh process, 300 demo pictures, demo model",
              "query": QUERY, "runs": args.runs, "cpus": os.cpu_count(),
              "load": round(os.getloadavg()[0], 2),
              "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
              "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()}}
    result["ratio_vs_torch"] = {k: round(result["median_s"][k] / result["median_s"]["torch"], 3)
                                for k in times}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'way':<9} {'median s':>9} {'vs torch':>9}")
    for k in times:
        print(f"{k:<9} {result['median_s'][k]:>9.3f} {result['ratio_vs_torch'][k]:>8.2f}x")


if __name__ == "__main__":
    main()
