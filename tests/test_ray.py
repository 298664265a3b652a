"""`mmsearch index --ray` on a real local Ray cluster (a head and a worker node, 1 CPU each)
writing into a real Milvus server (`mmsearch serve-index`): the index equals the folder, a
re-run only does what changed, a worker node killed mid-run leaves no gap and no duplicate,
a catalogue imported through --ray equals its plain import, and an embedded --db is refused in
one line. Skipped when Ray is not installed (the `ray` extra; CI installs it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import demo_files
from test_app import free_port
from test_server import ENV, MMSEARCH, copy, server  # noqa: F401 (the server fixture)

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
# the nodes' workers import this checkout, as the test process does
RAY_ENV = {**ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                               ENV.get("PYTHONPATH")]))}
STORE = str(100 * 1024 * 1024)


def _ray(*argv, check=True):
    return subprocess.run([RAY, *argv], env=RAY_ENV, capture_output=True, text=True,
                          check=check, timeout=120)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and one worker node on this machine; yields (address, start_worker, worker
    raylet pid finder). Every Ray process is stopped afterwards, even on failure."""
    port, worker_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    temp = tmp_path_factory.mktemp("ray")

    def start_worker():
        _ray("start", "--address", address, "--num-cpus", "1", "--object-store-memory", STORE,
             "--node-manager-port", str(worker_port), "--disable-usage-stats")

    def worker_raylet() -> int | None:
        found = subprocess.run(["pgrep", "-f", f"raylet.*--node_manager_port={worker_port}"],
                               capture_output=True, text=True).stdout.split()
        return int(found[0]) if found else None

    try:
        _ray("start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
             "--num-cpus", "1", "--object-store-memory", STORE, "--include-dashboard", "false",
             "--disable-usage-stats", "--temp-dir", str(temp),
             # notice a dead node in ~3 s rather than Ray's default ~15 s (the killed-node test)
             "--system-config", json.dumps({"health_check_period_ms": 1000,
                                            "health_check_failure_threshold": 3}))
        start_worker()
        yield address, start_worker, worker_raylet
    finally:
        _ray("stop", "--force", check=False)


def index_ray(folder, uri, address, *extra, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([*MMSEARCH, "index", str(folder), "--uri", uri, "--ray", address,
                           "--no-ocr", "--json", *map(str, extra)], env=RAY_ENV,
                          capture_output=True, text=True, timeout=timeout)


STORED = """
import json, sys
from mmsearch.config import IndexLocation
from mmsearch.stores import open_index
with open_index(IndexLocation.resolve(uri=sys.argv[1])) as index:
    print(json.dumps([r["path"] for r in index.client.query(
        index.COLLECTION, filter="", limit=10_000, output_fields=["path"],
        consistency_level="Strong")]))
"""


def stored_paths(uri) -> list[str]:
    """Every stored row's path, duplicates kept, read with Strong consistency (the
    collection's default, Bounded, may not show rows written a moment ago) and from a fresh
    process: this one's gRPC channel to the server, idle through a run after the polling
    client, was refused with GOAWAY "too_many_pings"."""
    done = subprocess.run([sys.executable, "-c", STORED, uri], env=RAY_ENV, capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def on_disk(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*.png"))


def rows_now(client) -> int:
    try:
        return client.query("mmsearch_items", filter="", output_fields=["count(*)"],
                            consistency_level="Strong")[0]["count(*)"]
    except Exception:  # noqa: BLE001 - the collection is not created yet
        return 0


def test_a_folder_indexed_on_ray_resumes_after_the_driver_dies_and_reruns_do_only_changes(
        cluster, server, tmp_path):
    from pymilvus import MilvusClient

    address, *_ = cluster
    folder = copy(demo_files(80), tmp_path / "pics")
    copy(demo_files(90)[80:], folder / "sub")
    (folder / "broken.png").write_bytes(b"not a picture")
    # the driver killed (SIGKILL) once the first rows are in: what was written stays
    driver = subprocess.Popen([*MMSEARCH, "index", str(folder), "--uri", server, "--ray",
                               address, "--model", "demo", "--no-ocr", "--batch-size", "4"],
                              env=RAY_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = MilvusClient(uri=server)
    try:
        deadline = time.monotonic() + 300
        while driver.poll() is None and time.monotonic() < deadline and not rows_now(client):
            time.sleep(0.2)
        driver.kill()
        driver.wait(timeout=60)
        time.sleep(2)  # the job's actors go with their driver
        before = rows_now(client)
    finally:
        client.close()
    assert 0 < before < 90, before
    first = index_ray(folder, server, address, "--batch-size", "8")
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout)  # stdout is the summary alone
    assert summary["added"] + summary["unchanged"] == 90 and summary["skipped"] == 1, summary
    assert 0 < summary["added"] <= 90 - before, (summary, before)  # only the rest was done
    assert summary["errors"][0]["path"] == str(folder / "broken.png")
    keys = stored_paths(server)
    assert sorted(keys) == [p for p in on_disk(folder) if not p.endswith("broken.png")]

    gone = folder / "sub" / sorted(os.listdir(folder / "sub"))[0]
    gone.unlink()
    changed = sorted(folder.glob("item-*.png"))[0]
    Image.open(changed).convert("L").convert("RGB").save(changed)
    (folder / "broken.png").unlink()
    again = index_ray(folder, server, address, "--batch-size", "8")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout) == {"added": 0, "updated": 1, "removed": 1,
                                        "unchanged": 88, "skipped": 0, "errors": []}
    keys = stored_paths(server)
    assert sorted(keys) == on_disk(folder) and len(keys) == len(set(keys))


def test_a_worker_node_killed_mid_run_leaves_no_gap_and_no_duplicate(cluster, server, tmp_path):
    """The worker node's raylet is killed (SIGKILL) once the first rows are in the index; Ray
    redoes its batches on the head node and the run completes."""
    from pymilvus import MilvusClient

    address, start_worker, worker_raylet = cluster
    if worker_raylet() is None:
        start_worker()
    # 2 MP PNGs: slow enough to decode that the run is still going when the kill comes
    folder = tmp_path / "big"
    folder.mkdir()
    for i, f in enumerate(demo_files(90)):
        Image.open(f).convert("RGB").resize((1600, 1200)).save(folder / f"big-{i:03d}.png",
                                                               compress_level=1)
    proc = subprocess.Popen([*MMSEARCH, "index", str(folder), "--uri", server, "--ray", address,
                             "--model", "demo", "--no-ocr", "--json", "--batch-size", "4"],
                            env=RAY_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    client, killed_at = MilvusClient(uri=server), None
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and killed_at is None:
            rows = rows_now(client)
            if rows > 0:
                os.kill(worker_raylet(), signal.SIGKILL)
                killed_at = rows
            time.sleep(0.2)
        out, err = proc.communicate(timeout=600)
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
    assert killed_at is not None and killed_at < 90, "the run ended before the kill"
    assert proc.returncode == 0, err[-3000:]
    assert worker_raylet() is None  # the run finished without the worker node
    assert json.loads(out)["added"] == 90
    keys = stored_paths(server)
    assert len(keys) == len(set(keys)) == 90 and sorted(keys) == on_disk(folder)


def test_ray_with_an_embedded_index_is_one_clear_line(tmp_path):
    folder = copy(demo_files(2), tmp_path / "pics")
    products = tmp_path / "products.csv"
    products.write_text("id,image,title\n1,pics/" + demo_files(1)[0].name + ",a shoe\n")
    for what in ([str(folder)], ["--catalog", str(products)]):
        done = subprocess.run([*MMSEARCH, "index", *what, "--db", str(tmp_path / "i.db"),
                               "--ray", "auto"], env=RAY_ENV, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 1 and not (tmp_path / "i.db").exists()
        assert done.stderr.strip().count("\n") == 0 and "--uri" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


ITEMS = """
import json, sys
from mmsearch.config import IndexLocation
from mmsearch.stores import open_index
where = {sys.argv[1]: sys.argv[2]}
fields = ["key", "path", "hash", "size", "title", "description", "text", "fields",
          "text_hash", "source", "image_vector", "text_vector"]
with open_index(IndexLocation.resolve(**where)) as index:
    rows = index.client.query(index.COLLECTION, filter="", limit=10_000, output_fields=fields,
                              consistency_level="Strong")
    print(json.dumps([{f: r[f] for f in fields} for r in rows], default=float))
"""


def stored_items(**where) -> dict[str, dict]:
    """Every stored item of an index (`uri=` or `db=`) by key, read in a fresh process (as
    stored_paths); a key stored twice fails here."""
    (name, value), = where.items()
    done = subprocess.run([sys.executable, "-c", ITEMS, name, str(value)], env=RAY_ENV,
                          capture_output=True, text=True, timeout=120, check=True)
    rows = json.loads(done.stdout)
    by_key = {r.pop("key"): r for r in rows}
    assert len(by_key) == len(rows), "a key stored twice"
    return by_key


def same_items(ray: dict[str, dict], plain: dict[str, dict]) -> None:
    """The same keys with the same stored fields, text and picture; vectors equal but for
    float rounding (each batch is encoded as one tensor, and the batches differ)."""
    assert sorted(ray) == sorted(plain)
    for key, row in ray.items():
        other = plain[key]
        for name in ("image_vector", "text_vector"):
            a, b = np.asarray(row.pop(name)), np.asarray(other[name])
            assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.999, (key, name)
        assert row == {k: v for k, v in other.items() if k not in ("image_vector",
                                                                     "text_vector")}, key


def test_a_catalogue_on_ray_equals_the_plain_import_and_reruns_do_only_changes(
        cluster, server, tmp_path):
    """The same catalogue file imported with --ray (into the server) and without (into an
    embedded index: the server of the tests, Milvus Lite 2.5.1's, keeps no second database):
    the same summary and the same items, first with a corrupt picture (its one line, the
    rest imported), then after a re-run that changes nothing, then after rows changed."""
    from test_catalog import PRODUCTS, shop

    address, *_ = cluster
    file = shop(tmp_path, PRODUCTS[:24])
    (tmp_path / "img" / "broken.png").write_bytes(b"not a picture")
    lines = file.read_text().splitlines()
    lines.insert(5, json.dumps({"id": "SKU-BROKEN", "image": "img/broken.png",
                                "title": "a picture that is not one"}))
    file.write_text("\n".join(lines) + "\n")
    plain_db = tmp_path / "plain.db"

    def both(expected: dict) -> None:
        ray = subprocess.run([*MMSEARCH, "index", "--catalog", str(file), "--uri", server,
                              "--ray", address, "--model", "demo", "--json", "--batch-size",
                              "4"], env=RAY_ENV, capture_output=True, text=True, timeout=600)
        assert ray.returncode == 0, ray.stderr[-3000:]
        plain = subprocess.run([*MMSEARCH, "index", "--catalog", str(file), "--db",
                                str(plain_db), "--model", "demo", "--json"], env=RAY_ENV,
                               capture_output=True, text=True, timeout=600)
        assert plain.returncode == 0, plain.stderr[-3000:]
        assert json.loads(ray.stdout) == json.loads(plain.stdout)  # stdout is the summary
        found = json.loads(ray.stdout)
        assert {k: found[k] for k in expected} == expected, found
        bad, = found["errors"]  # the corrupt picture's one line; the rest was imported
        assert bad["path"] == str(tmp_path / "img" / "broken.png"), bad
        assert bad["reason"].startswith("item 'SKU-BROKEN': "), bad
        same_items(stored_items(uri=server), stored_items(db=plain_db))

    both({"added": 24, "updated": 0, "removed": 0, "unchanged": 0, "skipped": 1})
    both({"added": 0, "updated": 0, "removed": 0, "unchanged": 24, "skipped": 1})

    rows = [json.loads(line) for line in file.read_text().splitlines()]
    rows[0]["title"] = "a retitled product"        # its text vector only is encoded again
    picture = tmp_path / rows[1]["image"]           # its picture only
    Image.open(picture).convert("L").convert("RGB").save(picture)
    del rows[2]                                     # gone from the file: removed
    rows[3]["price"] = 1                            # a field: its text changes too
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    both({"added": 0, "updated": 3, "removed": 1, "unchanged": 20, "skipped": 1})
