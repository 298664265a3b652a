"""The `mmsearch` command line, run in-process (and once as a real subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import demo_files, label_of
from mmsearch.cli import main


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pics"
    (root / "sub").mkdir(parents=True)
    for i, f in enumerate(demo_files(40)):
        shutil.copy2(f, root / ("sub" if i % 2 else "") / f.name)
    return root


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_index_search_stats_json(folder, tmp_path, capsys):
    db = tmp_path / "cli.db"
    code, out, _ = run(capsys, "index", folder, "--db", db, "--model", "demo", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary == {"added": 40, "updated": 0, "removed": 0, "unchanged": 0, "skipped": 0,
                       "errors": []}

    code, out, _ = run(capsys, "search", "a photo of a sneaker", "-k", "5", "--json", "--db", db)
    hits = json.loads(out)
    assert code == 0 and len(hits) == 5
    assert set(hits[0]) == {"path", "score", "taken", "matched"}
    assert all(h["matched"] == ["picture"] for h in hits)  # no file or folder says sneaker
    assert all(os.path.isabs(h["path"]) and os.path.exists(h["path"]) for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert label_of(hits[0]["path"])["class"] == "sneaker"

    example = demo_files(40)[7]
    code, out, _ = run(capsys, "search", "--image", example, "-k", "1", "--json", "--db", db)
    assert os.path.basename(json.loads(out)[0]["path"]) == example.name

    code, out, _ = run(capsys, "stats", "--json", "--db", db)
    stats = json.loads(out)
    assert {"images", "model", "location"} <= set(stats)
    assert (stats["images"], stats["model"], stats["location"]) == (40, "demo", str(db))

    # second run: incremental, the recorded model is used without --model
    code, out, _ = run(capsys, "index", folder, "--db", db, "--json")
    assert json.loads(out)["unchanged"] == 40 and json.loads(out)["added"] == 0


def test_table_output_and_summary_line(folder, tmp_path, capsys, monkeypatch):
    db = tmp_path / "t.db"
    (folder / "broken.jpg").write_bytes(b"this is not a picture")
    code, out, _ = run(capsys, "index", folder, "--db", db, "--model", "demo")
    assert code == 0
    assert out.splitlines()[0].startswith("added 40, updated 0, removed 0, unchanged 0, skipped 1")
    assert "broken.jpg" in out and "not a picture" in out
    code, out, _ = run(capsys, "search", "tas merah", "-k", "3", "--db", db)
    lines = out.splitlines()
    assert lines[0].split() == ["rank", "score", "path"]
    assert len(lines) == 4 and lines[1].split()[0] == "1"

    # --similar as the shell names a picture: relative to where the command runs
    picture = sorted(folder.glob("*.png"))[0]
    monkeypatch.chdir(folder)
    code, out, err = run(capsys, "search", "--similar", picture.name, "-k", "1", "--json",
                         "--db", db)
    assert code == 0, err
    assert json.loads(out)[0]["path"] == str(picture)


def test_model_mismatch_is_one_clear_line(folder, tmp_path, capsys):
    db = tmp_path / "m.db"
    assert run(capsys, "index", folder, "--db", db, "--model", "demo", "--json")[0] == 0
    code, out, err = run(capsys, "index", folder, "--db", db, "--model", "ViT-B-32",
                         "--pretrained", "random")
    assert code == 1
    assert err.count("\n") == 1 and "demo" in err and "ViT-B-32" in err
    assert "Traceback" not in err


def test_search_without_an_index_says_what_to_do(tmp_path, capsys):
    code, _, err = run(capsys, "search", "cat", "--db", tmp_path / "nothing.db")
    assert code == 1 and "mmsearch index" in err


def test_real_entry_point_in_a_subprocess(folder, tmp_path):
    db = tmp_path / "p.db"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    exe = [sys.executable, "-m", "mmsearch.cli"]
    done = subprocess.run([*exe, "index", str(folder), "--db", str(db), "--model", "demo",
                           "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == 40
    done = subprocess.run([*exe, "search", "gaun", "--db", str(db), "--json", "-k", "3"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert label_of(json.loads(done.stdout)[0]["path"])["class"] == "dress"
    assert "Traceback" not in done.stderr and "WARNING" not in done.stderr
    # `mmsearch search ... | head`: the reader leaves before the table is written
    reader_gone = subprocess.Popen([*exe, "search", "gaun", "--db", str(db)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader_gone.stdout.close()
    assert reader_gone.wait(timeout=300) == 0
    assert reader_gone.stderr.read() == ""


@pytest.mark.parametrize("argv,words", [
    (["--model", "ViT-B-16"], ["needs --pretrained", "random"]),
    (["--model", "No-Such-Model", "--pretrained", "x"], ["unknown open_clip model"]),
])
def test_a_model_without_weights_is_refused_before_any_index_exists(folder, tmp_path, capsys,
                                                                     argv, words):
    db = tmp_path / "never.db"
    code, _, err = run(capsys, "index", folder, "--db", db, *argv)
    assert code == 1 and all(w in err for w in words), err
    assert not db.exists()


# -- the first ten minutes of a new user -----------------------------------------------------
def test_an_empty_or_missing_folder_says_so_and_creates_nothing(tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    db = tmp_path / "first.db"
    code, _, err = run(capsys, "index", tmp_path / "empty", "--db", db, "--model", "demo")
    assert code == 0 and "no pictures or videos found under" in err and not db.exists()
    code, _, err = run(capsys, "index", tmp_path / "nowhere", "--db", db)
    assert code == 1 and "no such file or folder" in err and not db.exists()


def test_a_failed_model_download_leaves_no_index_behind(folder, tmp_path, capsys):
    """Offline, the default model cannot download: the index must not be created recording
    it, or the suggested `--model demo` would then be refused as another model."""
    db = tmp_path / "first.db"
    code, _, err = run(capsys, "index", folder, "--db", db, "--model", "ViT-B-32",
                       "--pretrained", "laion2b_s34b_b79k")
    assert code == 1 and "--model demo" in err and err.count("\n") == 1
    assert not db.exists()
    code, out, _ = run(capsys, "index", folder, "--db", db, "--model", "demo")
    assert code == 0 and out.startswith("added 40,")
    code, out, _ = run(capsys, "index", folder, "--db", db)  # unchanged: no model needed
    assert code == 0 and out.startswith("added 0, updated 0, removed 0, unchanged 40")


def test_an_imported_index_remembers_its_model(folder, tmp_path, capsys):
    """`mmsearch import` notes the index's model (`towers.remembered_model`), as indexing
    does: the first open of the index (a cold search, an app's launch) opens that model's
    towers while the engine loads, before the index can name it."""
    from mmsearch.config import IndexLocation
    from mmsearch.stores import open_index
    from mmsearch.towers import remembered_model

    made, moved = tmp_path / "made.db", tmp_path / "moved.db"
    assert run(capsys, "index", folder, "--db", made, "--model", "demo")[0] == 0
    assert run(capsys, "export", tmp_path / "all.parquet", "--db", made)[0] == 0
    location = IndexLocation.resolve(db=moved)
    assert remembered_model(location) is None
    code, out, _ = run(capsys, "import", tmp_path / "all.parquet", "--db", moved)
    assert code == 0 and out.startswith("imported 40 pictures")
    with open_index(location) as index:
        assert remembered_model(location) == index.model
    code, out, _ = run(capsys, "search", "a red sneaker", "-k", "3", "--db", moved)
    assert code == 0 and out.count("\n") == 4  # the header and three results


def test_a_fresh_search_runs_the_exported_towers_without_torch(folder, tmp_path, encoder):
    """`mmsearch index` exports the model's query towers once; a later `mmsearch search` in a
    fresh process encodes the query with them (no torch, no open_clip) and ranks as torch."""
    from mmsearch.config import IndexLocation
    from mmsearch.encoder import Encoder
    from mmsearch.search import Searcher
    from mmsearch.stores import open_index
    from mmsearch.towers import towers_dir

    db = tmp_path / "towers.db"
    done = subprocess.run([sys.executable, "-m", "mmsearch.cli", "index", str(folder), "--db",
                           str(db), "--model", "demo"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert (towers_dir(encoder.spec) / "towers.json").is_file()
    # what its threads (the engine's start and load, the towers, the texts) import: nothing
    # (two threads importing at once can get a partly initialised module)
    script = ("import json, sys, threading; seen = []; sys.addaudithook(lambda event, args: "
              "seen.append(args[0]) if event == 'import' and threading.current_thread() is "
              "not threading.main_thread() else None); from mmsearch.cli import main; "
              f"main(['search', 'a red sneaker', '-k', '8', '--json', '--db', {str(db)!r}]); "
              "print(json.dumps(sorted(m for m in ('torch', 'open_clip') if m in sys.modules)));"
              "print(json.dumps(seen))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "MMSEARCH_NO_RESIDENT": "1"})
    assert done.returncode == 0, done.stderr
    results, imported, in_threads = [json.loads(line) for line in done.stdout.splitlines()]
    assert imported == [] and in_threads == []
    with open_index(IndexLocation.resolve(db=db)) as index:
        fp32 = Encoder(encoder.spec, precision="fp32")  # what the towers were exported in
        expected = Searcher(index, fp32).search_text("a red sneaker", 8)
    assert [h["path"] for h in results] == [h.path for h in expected]
    assert all(abs(a["score"] - b.score) < 0.01 for a, b in zip(results, expected))


def test_an_index_of_the_other_milvus_lite_generation_is_one_clear_line(tmp_path, capsys):
    """Milvus Lite 3.x keeps an index in a folder (LOCK, collections/, databases/, as 3.2.2
    made it), 2.5 in one .db file, and neither reads the other: one line naming the move
    (export with the old mmsearch, import with this one), and the old index left untouched."""
    from mmsearch.lite import embedded_engine

    db = tmp_path / "old.db"
    if embedded_engine() == "file":
        for sub in ("collections", "databases"):
            (db / sub).mkdir(parents=True)
        (db / "LOCK").write_text("")
    else:
        db.write_bytes(b"SQLite format 3\x00")
    for argv in (["search", "a bag"], ["index", tmp_path], ["stats"], ["export", "x.parquet"]):
        code, out, err = run(capsys, *argv, "--db", db)
        assert code == 1 and err.count("\n") == 1 and not out, (argv, err)
        assert "mmsearch export" in err and "mmsearch import" in err
    assert (db / "LOCK").exists() if db.is_dir() else db.stat().st_size == 16


PANDAS_AT_EXIT = ("import atexit, sys\n"
                  "def report():\n"
                  "    m = sys.modules.get('pandas')\n"
                  "    print('pandas:', 'none' if m is None else 'stand-in' if getattr("
                  "m, '__mmsearch_stand_in__', False) else 'real', file=sys.stderr)\n"
                  "atexit.register(report)\n")


def test_a_fresh_search_imports_pymilvus_without_pandas_and_answers_the_same(folder, tmp_path):
    """`mmsearch search` (cli.run) imports pymilvus with pandas stood in for (0.2-0.25 s of
    a cold search): it answers exactly as `main` with the real pandas does, never imports it,
    and what pymilvus took from pandas reaches the real one when it is used."""
    db = tmp_path / "p.db"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MMSEARCH_NO_RESIDENT": "1"}
    done = subprocess.run([sys.executable, "-m", "mmsearch.cli", "index", str(folder), "--db",
                           str(db), "--model", "demo"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    argv = ["search", "gaun merah", "--db", str(db), "--json", "-k", "6"]
    answers = {}
    for entry in ("run", "main"):
        call = f"sys.argv = ['mmsearch', *{argv!r}]; from mmsearch.cli import run; run()" \
            if entry == "run" else f"from mmsearch.cli import main; sys.exit(main({argv!r}))"
        done = subprocess.run([sys.executable, "-c", PANDAS_AT_EXIT + call],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        answers[entry] = (json.loads(done.stdout), done.stderr.strip().splitlines()[-1])
    assert answers["run"][1] == "pandas: none" and answers["main"][1] == "pandas: real"
    assert answers["run"][0] == answers["main"][0] and len(answers["run"][0]) == 6
    script = ("import sys\n"
              "from mmsearch.cli import pandas_later\n"
              "pandas_later.install()\n"
              "import pymilvus\n"
              "from pymilvus.orm import schema\n"
              "assert 'pandas' not in sys.modules and 'pyarrow' not in sys.modules\n"
              "assert schema.is_list_like([1]) and not schema.is_list_like(1)\n"
              "import pandas\n"
              "assert not getattr(pandas, '__mmsearch_stand_in__', False)\n"
              "assert schema.pd.DataFrame is pandas.DataFrame\n"
              "print('forwarded')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "forwarded", done.stderr
