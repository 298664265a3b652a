"""Killed runs resume without loss or duplicates; a busy index says so in one line."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import demo_files
from mmsearch.config import IndexLocation
from mmsearch.index import Index

CLI = [sys.executable, "-m", "mmsearch.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def count_rows(db) -> tuple[int, set[str]]:
    with Index.open(IndexLocation.resolve(db=db)) as index:
        paths = [r["path"] for r in index.rows_under("/")]
        return index.count(), set(paths)


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path):
    folder = tmp_path / "many"
    files = demo_files()
    for copy in range(5):  # 1500 pictures: several seconds of work to interrupt
        sub = folder / f"copy{copy}"
        sub.mkdir(parents=True)
        for f in files:
            shutil.copy2(f, sub / f.name)
    expected = {os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if f.endswith(".png")}
    db = tmp_path / "killed.db"
    args = [*CLI, "index", str(folder), "--db", str(db), "--model", "demo", "--batch-size", "16",
            "--json"]
    # start-up (imports, model, index) takes a machine-dependent while: measure it on an
    # empty folder, then kill at random moments after it, while pictures are being indexed
    (tmp_path / "empty").mkdir()
    t0 = time.monotonic()
    subprocess.run([*CLI, "index", str(tmp_path / "empty"), "--db", str(tmp_path / "e.db"),
                    "--model", "demo"], env=ENV, check=True, capture_output=True, timeout=300)
    startup = time.monotonic() - t0
    rng = random.Random(7)
    for attempt in range(4):
        proc = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(startup + rng.uniform(0.3, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    done = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["errors"] == []
    assert summary["added"] + summary["unchanged"] == len(expected)
    assert summary["unchanged"] > 0, "the killed runs' finished batches should have been kept"
    count, paths = count_rows(db)
    assert paths == expected and count == len(expected)  # none missing, no duplicates


def test_second_process_gets_one_clear_line(tmp_path, encoder):
    db = tmp_path / "busy.db"
    loc = IndexLocation.resolve(db=db)
    with Index.open(loc, model=encoder.spec, create_model=encoder.spec, dim=encoder.dim):
        done = subprocess.run([*CLI, "search", "a bag", "--db", str(db)], env=ENV,
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    err = done.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "in use" in err and "milvus-lite server" in err and "--uri" in err
