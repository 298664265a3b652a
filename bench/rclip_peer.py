"""rclip, the peer, set up offline on synthetic rows so bench/scale.py can time `rclip -n`
beside `mmsearch search` in the same run.

rclip (3.3) runs ViT-B-32-256 through ONNX Runtime and keeps float32 vectors in SQLite; it
finds its model files under `$RCLIP_DATADIR/ViT-B-32-256-datacomp_s34b_b86k/` and its BPE
vocabulary under `$RCLIP_DATADIR/tokenizer/`. With no internet, the towers are exported here
from open_clip with untrained weights (right for speed, not for answers), with rclip's input
and output names. The rows go straight into its `images` table, as its indexer writes them.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np

MODEL_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"
DB_VERSION = 4  # rclip.db.DB.VERSION in rclip 3.3.0


def find_rclip() -> str | None:
    """The `rclip` command: $RCLIP_BIN, then PATH."""
    found = os.environ.get("RCLIP_BIN") or shutil.which("rclip")
    return found if found and os.access(found, os.X_OK) else None


def version(rclip: str) -> str:
    out = subprocess.run([rclip, "--version"], capture_output=True, text=True, timeout=120)
    return (out.stdout or out.stderr).strip()


def export_model(datadir: Path) -> float:
    """Untrained ViT-B-32-256 towers as rclip's textual.onnx / visual.onnx; seconds taken."""
    import open_clip
    import torch

    t0 = time.perf_counter()
    folder = datadir / MODEL_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    vocab = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    (datadir / "tokenizer").mkdir(exist_ok=True)
    shutil.copyfile(vocab, datadir / "tokenizer" / vocab.name)
    model = open_clip.create_model("ViT-B-32-256", pretrained=None).eval()

    from mmsearch.onnx_export import _Towers  # the wrappers mmsearch's own export uses

    examples = ((_Towers.text(model), torch.zeros(1, 77, dtype=torch.int64), "textual.onnx"),
                (_Towers.visual(model), torch.zeros(1, 3, 256, 256), "visual.onnx"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tower, example, name in examples:
            torch.onnx.export(tower, (example,), str(folder / name), dynamo=False,
                              opset_version=17, input_names=["input"],
                              output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return time.perf_counter() - t0


def fill_db(datadir: Path, root: Path, vectors: np.ndarray) -> list[str]:
    """rclip's SQLite with one row per vector, all under `root` (files need not exist for
    `rclip -n`); a fresh table each call. Returns the row paths."""
    db = datadir / "db.sqlite3"
    db.unlink(missing_ok=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE images (id INTEGER PRIMARY KEY, deleted BOOLEAN, filepath TEXT "
                "NOT NULL UNIQUE, modified_at DATETIME NOT NULL, size INTEGER NOT NULL, vector "
                "BLOB NOT NULL, indexing BOOLEAN, hash TEXT)")
    con.execute("CREATE UNIQUE INDEX existing_images ON images(filepath) WHERE deleted IS NULL")
    con.execute("CREATE INDEX hash_index ON images(hash) WHERE deleted IS NULL")
    con.execute("CREATE TABLE db_version (version INTEGER)")
    con.execute("INSERT INTO db_version(version) VALUES (?)", (DB_VERSION,))
    paths = [str(root / f"{2010 + i % 15}" / f"img{i:07d}.jpg") for i in range(len(vectors))]
    vectors = np.asarray(vectors, np.float32)
    con.executemany("INSERT INTO images(filepath, modified_at, size, vector, hash) "
                    "VALUES (?, ?, ?, ?, ?)",
                    ((p, 1.6e9 + i, 100_000, vectors[i].tobytes(), f"{i:032x}")
                     for i, p in enumerate(paths)))
    con.commit()
    con.close()
    return paths


def query_wall(rclip: str, root: Path, datadir: Path, text: str, runs: int) -> dict:
    """Median wall time of `rclip -n -f -t 10 TEXT` as a fresh process in `root`, and its
    peak RSS (from /usr/bin/time when present)."""
    env = {**os.environ, "RCLIP_DATADIR": str(datadir), "HF_HUB_OFFLINE": "1"}
    timer = ["/usr/bin/time", "-f", "%M"] if Path("/usr/bin/time").exists() else []
    times, rss = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run([*timer, rclip, "-n", "-f", "-t", "10", text], cwd=root, env=env,
                              capture_output=True, text=True, timeout=1800)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"rclip failed: {done.stderr.strip()[-400:]}")
        if timer:
            rss.append(int(done.stderr.strip().splitlines()[-1]) / 1024)
    return {"wall_s": round(float(np.median(times)), 3),
            "peak_rss_mb": round(max(rss)) if rss else None}
