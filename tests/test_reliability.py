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
from mmsearch.stores import open_index

CLI = [sys.executable, "-m", "mmsearch.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def count_rows(db) -> tuple[int, set[str]]:
    with open_index(IndexLocation.resolve(db=db)) as index:
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
    # start-up (imports, model, index) takes a machine-dependent while: measure it on a
    # one-picture folder, then kill at random moments after it, while pictures are indexed
    (tmp_path / "one").mkdir()
    shutil.copy2(files[0], tmp_path / "one" / files[0].name)
    t0 = time.monotonic()
    subprocess.run([*CLI, "index", str(tmp_path / "one"), "--db", str(tmp_path / "e.db"),
                    "--model", "demo"], env=ENV, check=True, capture_output=True, timeout=300)
    startup = time.monotonic() - t0
    rng = random.Random(7)
    for _ in range(4):
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
    with open_index(loc, model=encoder.spec, create_model=encoder.spec, dim=encoder.dim):
        done = subprocess.run([*CLI, "search", "a bag", "--db", str(db)], env=ENV,
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    err = done.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    # the advice is the server that binds 127.0.0.1, never `milvus-lite server` (0.0.0.0)
    assert "in use" in err and "mmsearch serve-index" in err and "--uri" in err
    assert "milvus-lite server" not in err


def test_an_engine_started_early_keeps_the_index_locked(tmp_path, encoder):
    """A cold `mmsearch search` starts the engine in a thread while pymilvus is imported
    (lite.start_early): the in-use check of the connection that follows must not drop the
    lock that start took (POSIX locks are per process), and closing must free the index."""
    from mmsearch.lite import start_early

    db = tmp_path / "early.db"
    loc = IndexLocation.resolve(db=db)
    open_index(loc, model=encoder.spec, create_model=encoder.spec, dim=encoder.dim).close()
    search = [*CLI, "search", "a bag", "--db", str(db)]
    start_early(loc)
    with open_index(loc, model=encoder.spec) as index:
        assert index.rows_now() == 0
        busy = subprocess.run(search, env=ENV, capture_output=True, text=True, timeout=300)
    assert busy.returncode == 1 and "in use" in busy.stderr, busy.stderr
    free = subprocess.run(search, env=ENV, capture_output=True, text=True, timeout=300)
    assert free.returncode == 0, free.stderr
    assert "no results" in free.stdout


def test_an_engine_started_early_loads_the_index_itself(tmp_path, encoder):
    """`start_engine_early` also asks the new engine to load the index's collections, before
    pymilvus is imported: a cold search's longest step no longer waits for that import. A
    fresh engine has them released; after the early start they become loaded with nobody
    else asking, and the index then opens and searches as ever."""
    from mmsearch.engine import connect
    from mmsearch.items import ITEMS
    from mmsearch.lite import _embedded_opened
    from mmsearch.stores import start_engine_early

    db = tmp_path / "early.db"
    loc = IndexLocation.resolve(db=db)
    open_index(loc, model=encoder.spec, create_model=encoder.spec, dim=encoder.dim).close()

    def load_state(client) -> str:
        return client.get_load_state(ITEMS)["state"].name

    client = connect(loc)
    try:
        assert load_state(client) == "NotLoad"  # what a fresh engine has
    finally:
        client.close()
        _embedded_opened(loc.db, -1)
    start_engine_early(loc)
    client = connect(loc)
    try:
        deadline = time.monotonic() + 120
        while load_state(client) != "Loaded" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert load_state(client) == "Loaded"
    finally:
        client.close()
        _embedded_opened(loc.db, -1)
    start_engine_early(loc)
    with open_index(loc, model=encoder.spec) as index:
        assert index.rows_now() == 0 and index.search(encoder.encode_texts(["a bag"])[0], 5) == []


@pytest.mark.parametrize("name", ["mmsearch_items", "n" * 300, "ünï_côdé"])
def test_the_early_load_is_the_request_pymilvus_sends(name):
    """The early load is encoded by hand (pymilvus's messages come with its 0.5 s import):
    it must be byte for byte pymilvus's LoadCollectionRequest, to the method it names."""
    from pymilvus.grpc_gen import milvus_pb2

    from mmsearch.lite import LOAD_COLLECTION, load_collection_request

    sent = milvus_pb2.LoadCollectionRequest(collection_name=name).SerializeToString()
    assert load_collection_request(name) == sent
    service = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]
    method = service.methods_by_name["LoadCollection"]
    assert LOAD_COLLECTION == f"/{service.full_name}/{method.name}"


def test_a_new_embedded_index_gets_large_sqlite_pages(tmp_path):
    """Milvus Lite 2.5.1 reads every row of its SQLite file at each load, and with SQLite's
    4 kB pages a photo's row fills half a page: a new index's file gets lite.PAGE_SIZE pages
    (made beside, linked into place, with the usual mode). A file Milvus Lite made itself is
    used as it is and keeps its pages; the two answer alike."""
    import contextlib
    import sqlite3
    import stat

    from mmsearch.lite import PAGE_SIZE, embedded_engine

    if embedded_engine() != "file":
        pytest.skip("Milvus Lite 3.x keeps an index in a folder")

    def page_size(db) -> int:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            return con.execute("PRAGMA page_size").fetchone()[0]

    pics = tmp_path / "pics"
    pics.mkdir()
    for f in demo_files(8):
        shutil.copy2(f, pics / f.name)
    new, old = tmp_path / "new.db", tmp_path / "old.db"
    made = subprocess.run([sys.executable, "-c", "from pymilvus import MilvusClient; "
                           f"MilvusClient({str(old)!r}).close()"], env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0 and old.is_file(), made.stderr
    answers = []
    for db in (new, old):
        done = subprocess.run([*CLI, "index", str(pics), "--db", str(db), "--model", "demo"],
                              env=ENV, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and done.stdout.startswith("added 8,"), done.stderr
        found = subprocess.run([*CLI, "search", "a red sneaker", "--json", "--db", str(db)],
                               env={**ENV, "MMSEARCH_NO_RESIDENT": "1"}, capture_output=True,
                               text=True, timeout=300)
        assert found.returncode == 0, found.stderr
        answers.append([(h["path"], round(h["score"], 4)) for h in json.loads(found.stdout)])
    assert page_size(new) == PAGE_SIZE and page_size(old) == 4096
    assert answers[0] == answers[1] and len(answers[0]) == 8
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask
    assert not list(tmp_path.glob(".*.new"))


def as_nobody(argv: list[str], home: str) -> subprocess.CompletedProcess:
    """Run the CLI as an unprivileged user: root reads every file, a user does not."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run as an unprivileged user")
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *CLI, *argv]
    return subprocess.run(cmd, env={**ENV, "HOME": home}, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def shared_tmp():
    """A temp folder an unprivileged user can reach (pytest's own is private to root)."""
    import tempfile

    path = tempfile.mkdtemp(dir="/tmp", prefix="mmsearch-test-")
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_unreadable_files_and_fifos_are_reported(shared_tmp):
    pics = os.path.join(shared_tmp, "pics")
    os.mkdir(pics)
    for f in demo_files(5):
        shutil.copy2(f, os.path.join(pics, f.name))
    secret = os.path.join(pics, "private.png")
    shutil.copy2(demo_files(6)[-1], secret)
    os.chmod(secret, 0o000)
    os.mkfifo(os.path.join(pics, "pipe.jpg"))  # reading it would block forever
    os.chmod(pics, 0o755)
    db = os.path.join(shared_tmp, "i.db")
    done = as_nobody(["index", pics, "--db", db, "--model", "demo", "--json"], shared_tmp)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    reasons = {os.path.basename(e["path"]): e["reason"] for e in summary["errors"]}
    assert reasons == {"private.png": "unreadable: permission denied",
                       "pipe.jpg": "not a regular file"}
    assert summary["added"] == 5


def test_read_only_index_folder_is_one_clear_line(shared_tmp, encoder):
    db = os.path.join(shared_tmp, "ro.db")
    with open_index(IndexLocation.resolve(db=db), create_model=encoder.spec, dim=encoder.dim):
        pass
    os.chmod(db, 0o755)  # root's, so read-only for the user below
    done = as_nobody(["search", "a bag", "--db", db], shared_tmp)
    assert done.returncode == 1
    err = done.stderr.strip()
    assert "\n" not in err and "read-only" in err, err
    with open_index(IndexLocation.resolve(db=db)) as index:  # and it still opens for its owner
        assert index.count() == 0


def test_disk_full_is_one_clear_line_and_the_index_still_opens(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    # 120k: Milvus Lite 2.5.1 keeps the 300 demo rows in ~340 kB (3.x's folder took more)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs",
                                            str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("needs root and tmpfs mounts to fill a disk")
    try:
        db = mnt / "full.db"
        pics = tmp_path / "pics"
        pics.mkdir()
        for f in demo_files(300):
            shutil.copy2(f, pics / f.name)
        done = subprocess.run([*CLI, "index", str(pics), "--db", str(db), "--model", "demo"],
                              env=ENV, capture_output=True, text=True, timeout=300)
        assert done.returncode == 1
        err = done.stderr.strip()
        assert "\n" not in err and "disk is full" in err and "Traceback" not in err, err
        done = subprocess.run([*CLI, "stats", "--json", "--db", str(db)], env=ENV,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["model"] == "demo"
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_opening_the_app_to_the_network_warns_without_auth(tmp_path, encoder):
    db = tmp_path / "net.db"
    with open_index(IndexLocation.resolve(db=db), create_model=encoder.spec, dim=encoder.dim):
        pass
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*CLI, "ui", "--db", str(db), "--host", "0.0.0.0", "--port",
                             str(port)], env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert first.startswith("warning: --host 0.0.0.0") and "--auth" in first
