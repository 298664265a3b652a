"""Shared deployments on a real `milvus-lite server` on localhost (started with `mmsearch
serve-index`): the indexer writing while the app answers, sharded indexing from concurrent
processes, and moving an embedded index to the server by export/import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
from gradio_client import Client

from conftest import demo_files, label_of
from indexer.pipeline import index_paths
from mmsearch.config import IndexLocation, Shard
from mmsearch.engine import ModelMismatchError
from mmsearch.items import item_id
from mmsearch.stores import open_index
from mmsearch.search import Searcher
from mmsearch.transfer import export_index, import_index
from test_app import free_port
from ui.app import launch

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
MMSEARCH = [sys.executable, "-m", "mmsearch.cli"]


@pytest.fixture
def server(tmp_path_factory):
    """`mmsearch serve-index` of a fresh index on a free localhost port; yields its URL.

    One server per test: with Milvus Lite 2.5.1 (the engine on Linux and macOS) the server has
    no databases (create_database is UNIMPLEMENTED, and a database named in a URI is ignored:
    every name would share one set of collections), so the tests that used to put their
    indexes in databases of one server (`URL/household`) each get a server of their own;
    `test_a_database_on_a_server_without_databases_is_one_clear_line` checks the refusal."""
    from pymilvus import MilvusClient

    data = tmp_path_factory.mktemp("served") / "index.db"
    port = free_port()
    proc = subprocess.Popen([*MMSEARCH, "serve-index", "--data-dir", str(data), "--port",
                             str(port)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            MilvusClient(uri=url, timeout=2).close()
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the index server did not start: {proc.communicate()[1][-2000:]}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read()[-2000:]  # SIGTERM stops it cleanly


def mmsearch(*argv, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([*MMSEARCH, *map(str, argv)], env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def copy(files, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, folder / f.name)
    return folder


def test_app_sees_pictures_indexed_while_it_answers(server, tmp_path, encoder):
    uri = server
    garments = copy([f for f in demo_files() if label_of(f)["class"] != "bag"][:30],
                    tmp_path / "garments")
    bags = copy(demo_files(cls="bag")[:10], tmp_path / "bags")
    done = mmsearch("index", garments, "--uri", uri, "--model", "demo", "--json")
    assert done.returncode == 0, done.stderr
    searcher = Searcher(open_index(IndexLocation.resolve(uri=uri)), encoder).warm()
    port = free_port()
    app = launch(searcher, port=port, block=False)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    before = client.predict("a bag", 5, api_name="/search_text")
    assert not any(label_of(i["caption"].split(" · ")[1])["class"] == "bag" for i in before)

    answered, errors, stop = [], [], threading.Event()

    def keep_asking():
        c = Client(f"http://127.0.0.1:{port}/", verbose=False)
        while not stop.is_set():
            try:
                answered.append(len(c.predict("a bag", 5, api_name="/search_text")))
            except Exception as exc:  # noqa: BLE001 - counted and reported below
                errors.append(repr(exc))

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        indexer = mmsearch("index", bags, "--uri", uri, "--json")  # while the app answers
    finally:
        stop.set()
        asker.join(timeout=60)
    try:
        assert indexer.returncode == 0, indexer.stderr
        assert json.loads(indexer.stdout)["added"] == 10
        assert not errors and answered and all(n == 5 for n in answered)
        after = client.predict("a bag", 5, api_name="/search_text")  # same app, no restart
        assert all(i["caption"].split(" · ")[1] in {f.name for f in bags.iterdir()}
                   for i in after)
        assert searcher.index.count() == 40
    finally:
        app.close()
        searcher.close()


def test_two_shards_index_one_folder_concurrently(server, tmp_path):
    uri = server
    folder = copy(demo_files(60), tmp_path / "pictures")
    procs = [subprocess.Popen([*MMSEARCH, "index", str(folder), "--uri", uri, "--model", "demo",
                               "--shard", f"{i}/2", "--json"], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    added = [json.loads(out)["added"] for out, _ in results]
    assert sum(added) == 60 and min(added) > 0  # no overlap: each picture added once
    with open_index(IndexLocation.resolve(uri=uri)) as index:
        stored = {r["path"] for r in index.rows_under(str(folder))}
        assert stored == {str(f) for f in folder.iterdir()}  # no gaps
        assert index.count() == 60
    # a shard's re-run sees only its share, and leaves the other shard's rows alone
    again = mmsearch("index", folder, "--uri", uri, "--shard", "0/2", "--json")
    summary = json.loads(again.stdout)
    assert (summary["unchanged"], summary["added"], summary["removed"]) == (added[0], 0, 0)


def test_shards_split_every_path_exactly_once():
    ids = [item_id(f"/photos/{i}.jpg") for i in range(3000)]
    for n in (1, 2, 3, 7):
        owners = [[s for s in range(n) if Shard(s, n).owns(i)] for i in ids]
        assert all(len(o) == 1 for o in owners)
        sizes = [sum(o == [s] for o in owners) for s in range(n)]
        assert min(sizes) > 0.8 * 3000 / n  # and roughly evenly
    for bad in ("2/2", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="i/N"):
            Shard.parse(bad)


def test_move_an_embedded_index_to_the_server_without_re_embedding(server, tmp_path,
                                                                   make_index, encoder):
    folder = copy(demo_files(25), tmp_path / "mine")
    embedded = make_index("mine.db")
    index_paths([str(folder)], embedded, encoder, progress=False)
    exported = tmp_path / "mine.parquet"
    assert export_index(embedded, exported) == 25
    moved, count = import_index(exported, IndexLocation.resolve(uri=server))
    with moved:
        assert count == 25 and moved.count() == 25
        assert moved.model == encoder.spec and moved.roots == [str(folder)]
        query = encoder.encode_texts(["a black bag"])[0]
        here, there = embedded.search(query, 10), moved.search(query, 10)
        assert [h.path for h in here] == [h.path for h in there]
        assert [round(h.score, 4) for h in here] == [round(h.score, 4) for h in there]
    # importing again replaces rows by path; the server index stays at 25
    again, _ = import_index(exported, IndexLocation.resolve(uri=server))
    with again:
        assert again.count() == 25
    # and the CLI does the same, refusing an index of another model
    other = tmp_path / "other.db"
    assert mmsearch("index", folder, "--db", other, "--model", "ViT-B-32", "--pretrained",
                    "random", "--json", "--batch-size", "8").returncode == 0
    done = mmsearch("import", exported, "--db", other)
    assert done.returncode == 1 and "demo" in done.stderr and "ViT-B-32" in done.stderr
    done = mmsearch("export", tmp_path / "cli.parquet", "--uri", server)
    assert done.returncode == 0 and "exported 25 pictures" in done.stdout
    with pytest.raises(ModelMismatchError):
        import_index(exported, IndexLocation.resolve(db=other))


def test_an_unreachable_server_is_one_clear_line(tmp_path):
    done = mmsearch("search", "a bag", "--uri", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "cannot open the index" in done.stderr
    done = mmsearch("import", tmp_path / "missing.parquet", "--db", tmp_path / "x.db")
    assert done.returncode == 1 and "not an mmsearch export" in done.stderr


def test_a_database_on_a_server_without_databases_is_one_clear_line(server, tmp_path):
    """`--uri http://host:PORT/NAME` puts an index in database NAME of a Milvus server (created
    on first use). Milvus Lite 2.5.1's server has no databases; it would ignore NAME and mix
    the indexes, so mmsearch refuses in one line (3.x's server has them)."""
    from mmsearch.lite import embedded_engine

    folder = copy(demo_files(3), tmp_path / "few")
    done = mmsearch("index", folder, "--uri", f"{server}/photos", "--model", "demo")
    if embedded_engine() == "directory":
        assert done.returncode == 0, done.stderr
        return
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "has no databases" in done.stderr and f"--uri {server}" in done.stderr
    done = mmsearch("search", "a bag", "--uri", f"{server}/photos")
    assert done.returncode == 1 and "has no databases" in done.stderr
    assert mmsearch("index", folder, "--uri", server, "--model", "demo").returncode == 0
