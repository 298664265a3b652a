"""One resident process per index: the JSON API of a running app, and the command line asking
it (instead of failing "in use"), as real subprocesses against a real app on localhost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import demo_files, picture_folder
from mmsearch.resident import announcement_path, find
from mmsearch.search import Searcher
from test_app import free_port
from ui.app import launch

CLI = [sys.executable, "-m", "mmsearch.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
ROOT = Path(__file__).parent.parent


def cli(*argv, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, argv)], env=ENV, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture
def running(indexed, encoder):
    """A folder index with 12 pictures, served by the app (no --auth) in this process."""
    index, folder = indexed("served", 12)
    port = free_port()
    app = launch(Searcher(index, encoder), port=port, block=False)
    yield {"index": index, "url": f"http://127.0.0.1:{port}", "db": index.location.db,
           "folder": folder, "app": app, "searcher": Searcher(index, encoder)}
    app.close()


def test_the_app_announces_itself_for_this_user_only(running):
    path = announcement_path(running["index"].location)
    assert path.exists() and not path.is_symlink() and path.stat().st_mode & 0o777 == 0o600
    assert not list(path.parent.glob(f".{path.name}.*.tmp"))
    found = find(running["index"].location)
    assert found is not None and found.url == running["url"] and found.pid == os.getpid()


def test_the_command_line_asks_the_running_app(running, tmp_path):
    db = running["db"]
    expected = [h.path for h in running["searcher"].search_text("a red sneaker", 5)]
    done = cli("search", "a red sneaker", "-k", 5, "--json", "--db", db)
    assert done.returncode == 0, done.stderr
    assert [h["path"] for h in json.loads(done.stdout)] == expected
    picture = demo_files(12)[3]
    done = cli("search", "--image", picture, "-k", 1, "--json", "--db", db)
    assert json.loads(done.stdout)[0]["path"].endswith(picture.name)
    stats = json.loads(cli("stats", "--json", "--db", db).stdout)
    assert stats["images"] == 12 and stats["model"] == "demo"
    # indexing while the app holds the index: the app does it (this used to be "in use")
    more = tmp_path / "more"
    more.mkdir()
    for f in demo_files(15)[12:]:
        shutil.copy(f, more / f.name)
    done = cli("index", more, "--db", db, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == 3 and running["index"].count() == 15
    groups = json.loads(cli("duplicates", "--json", "--db", db).stdout)
    assert isinstance(groups, list)
    bad = cli("search", "a bag", "--since", "yesterday", "--db", db)
    assert bad.returncode == 1 and "cannot read the date" in bad.stderr
    assert bad.stderr.count("\n") == 1


def test_the_api_needs_the_token_and_the_apps_own_names(running):
    url = running["url"]
    token = find(running["index"].location).token
    body = {"text": "a bag", "k": 3}
    assert httpx.post(url + "/api/search", json=body, timeout=30).status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * 43}
    assert httpx.post(url + "/api/search", json=body, headers=wrong, timeout=30).status_code \
        == 401
    good = {"Authorization": f"Bearer {token}"}
    r = httpx.post(url + "/api/search", json=body, headers=good, timeout=30)
    assert r.status_code == 200 and r.json()["kind"] == "folder" and len(r.json()["results"]) == 3
    rebound = httpx.post(url + "/api/search", json=body, timeout=30,
                         headers={**good, "Host": "attacker.example"})
    assert rebound.status_code == 421
    cross = httpx.post(url + "/api/index", json={"paths": ["/"]}, timeout=30,
                       headers={**good, "Origin": "http://attacker.example"})
    assert cross.status_code == 403
    assert httpx.post(url + "/api/index", json={"paths": ["/"]}, timeout=30).status_code == 401
    docs = httpx.get(url + "/api/openapi.json", timeout=30).json()
    assert {"/search", "/stats", "/duplicates", "/index"} <= set(docs["paths"])
    assert httpx.get(url + "/api/docs", timeout=30).status_code == 200


def test_with_auth_the_cli_still_gets_in_and_strangers_do_not(indexed, encoder):
    index, _ = indexed("authed", 4)
    port = free_port()
    app = launch(Searcher(index, encoder), port=port, block=False, auth=[("ana", "s3cret")])
    try:
        done = cli("search", "a bag", "-k", 2, "--json", "--db", index.location.db)
        assert done.returncode == 0 and len(json.loads(done.stdout)) == 2, done.stderr
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(url + "/api/docs", timeout=30).status_code == 401  # login first
        assert httpx.get(url + "/api/stats", timeout=30).status_code == 401  # token first
    finally:
        app.close()


def test_a_stale_or_foreign_announcement_is_ignored(tmp_path):
    from mmsearch.config import IndexLocation

    folder = picture_folder(tmp_path / "p", 1)
    db = tmp_path / "alone.db"
    assert cli("index", folder, "--db", db, "--model", "demo").returncode == 0
    location = IndexLocation.resolve(db=db)
    path = announcement_path(location)
    record = {"url": "http://127.0.0.1:9", "token": "t", "pid": 2**22 + 12345,
              "index": str(location)}
    path.write_text(json.dumps(record))
    os.chmod(path, 0o600)
    assert find(location) is None  # no such process
    path.write_text(json.dumps(record | {"pid": os.getpid()}))
    os.chmod(path, 0o644)
    assert find(location) is None  # others could have written or read it
    os.chmod(path, 0o600)
    assert find(location) is not None
    real = path.with_name("elsewhere.json")  # a symlink in its place is not followed
    path.rename(real)
    path.symlink_to(real)
    assert find(location) is None
    path.unlink()
    real.rename(path)
    # an announced app that no longer answers: the command does the work itself
    done = cli("stats", "--json", "--db", db)
    assert done.returncode == 0 and json.loads(done.stdout)["images"] == 1, done.stderr


def test_headless_serve_answers_and_withdraws(tmp_path):
    folder = picture_folder(tmp_path / "p", 6)
    db = tmp_path / "headless.db"
    assert cli("index", folder, "--db", db, "--model", "demo").returncode == 0
    port = free_port()
    server = subprocess.Popen([*CLI, "serve", "--db", str(db), "--port", str(port)], env=ENV,
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    announced = db.with_name(db.name + ".server.json")
    try:
        deadline = time.monotonic() + 120
        while not announced.exists() and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.2)
        assert announced.exists(), server.stderr.read().decode() if server.poll() else "slow"
        done = cli("search", "a bag", "-k", 3, "--json", "--db", db)
        assert done.returncode == 0 and len(json.loads(done.stdout)) == 3, done.stderr
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert not announced.exists()
