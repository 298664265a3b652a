"""`--all` (every match, cut where the scores' shape says), `--sort date`, and "without" that
removes (mmsearch.cutoff), on the real demo index, the CLI and the JSON API."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import demo_files, label_of
from mmsearch import cutoff
from mmsearch.cli import main
from mmsearch.search import Query, QueryError, Searcher
from mmsearch.train.fashion import CLASSES


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_count_ends_below_the_last_wide_gap():
    assert cutoff.count([]) == 0 and cutoff.count([0.4]) == 1
    assert cutoff.count([0.9, 0.89, 0.5, 0.49, 0.48, 0.47, 0.1, 0.1, 0.1]) == 2
    plateau = [0.70, 0.70, 0.69, 0.69, 0.68, 0.60, 0.59, 0.40, 0.39, 0.38, 0.37, 0.36]
    assert cutoff.count(plateau) == 5  # 0.68 -> 0.60 is the widest gap above the line
    assert cutoff.count([0.5] * 8) == 8  # no drop anywhere: all of them
    assert cutoff.count(list(reversed(plateau))) == 5  # order of the input does not matter


def test_all_returns_more_than_k_for_a_broad_query_and_fewer_for_a_narrow_one(demo_index,
                                                                              encoder):
    searcher = Searcher(demo_index, encoder)
    broad = searcher.search(Query.of(texts=["a sneaker"], all=True), k=10)
    narrow = searcher.search(Query.of(texts=["a red sneaker"], all=True), k=10)
    sneakers = sum(label_of(h.path)["class"] == "sneaker" for h in broad)
    assert len(broad) > 10 and sneakers >= 25  # 29 in the demo
    assert sneakers / len(broad) >= 0.7
    assert 1 <= len(narrow) < 10
    assert all((label_of(h.path)["class"], label_of(h.path)["colour"]) == ("sneaker", "red")
               for h in narrow)
    scores = [h.score for h in broad]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("garment,red", [(f"a {en[0]}", "red") for _, en, _ in CLASSES]
                         + [("celana panjang", "merah"), ("gaun", "merah")])
def test_no_red_item_in_the_top_10_of_a_garment_without_red(demo_index, encoder, garment, red):
    searcher = Searcher(demo_index, encoder)
    plain = searcher.search(Query.of(texts=[garment]), k=60)
    without = searcher.search(Query.of(texts=[garment], without=[red]), k=10)
    assert len(without) == 10
    assert [label_of(h.path)["colour"] for h in without].count("red") == 0
    # the rest of the query ranks as before: its own non-red top 10, in order
    others = [h.path for h in plain if label_of(h.path)["colour"] != "red"][:10]
    kept = [h.path for h in without]
    assert len(set(kept) & set(others)) >= 9
    assert [p for p in kept if p in others] == [p for p in others if p in kept]


def test_a_word_left_out_is_taken_out_of_the_query_too(demo_index, encoder):
    hits = Searcher(demo_index, encoder).search(
        Query.of(texts=["a red sneaker"], without=["red"]), k=10)
    labels = [label_of(h.path) for h in hits]
    assert all(lab["class"] == "sneaker" and lab["colour"] != "red" for lab in labels)


def test_without_works_with_all(demo_index, encoder):
    searcher = Searcher(demo_index, encoder)
    every = searcher.search(Query.of(texts=["a sneaker"], all=True))
    fewer = searcher.search(Query.of(texts=["a sneaker"], without=["orange"], all=True))
    assert 0 < len(fewer) < len(every)
    assert not any(label_of(h.path)["colour"] == "orange" for h in fewer)
    assert {h.path for h in fewer} <= {h.path for h in every}


@pytest.fixture
def dated(tmp_path, make_index, encoder):
    """12 demo pictures whose file times (their `taken`: no EXIF) run against file order."""
    from indexer.pipeline import index_paths

    folder = tmp_path / "dated"
    folder.mkdir()
    for n, f in enumerate(demo_files(12)):
        shutil.copy(f, folder / f.name)
        when = 1_600_000_000 + ((n * 7) % 12) * 86_400  # a day apart, shuffled
        os.utime(folder / f.name, (when, when))
    index = make_index("dated.db")
    index_paths([str(folder)], index, encoder, progress=False)
    return index, tmp_path / "dated.db"


def test_sort_date_orders_by_taken_newest_first(dated, encoder):
    index, _ = dated
    searcher = Searcher(index, encoder)
    by_score = searcher.search(Query.of(texts=["a garment"]), k=12)
    by_date = searcher.search(Query.of(texts=["a garment"], sort="date"), k=12)
    assert {h.path for h in by_date} == {h.path for h in by_score}
    taken = [h.taken for h in by_date]
    assert taken == sorted(taken, reverse=True) and len(set(taken)) == 12
    assert [h.path for h in by_date] != [h.path for h in by_score]
    assert by_date[0].to_json()["taken"] == max(taken)
    with pytest.raises(QueryError, match="^sort is score or date, not 'newest'$"):
        searcher.search(Query.of(texts=["a garment"], sort="newest"))


def test_cli_all_sort_and_their_errors(dated, capsys):
    index, db = dated
    index.close()
    code, out, _ = run(capsys, "search", "a garment", "--sort", "date", "--json", "--db", db)
    taken = [h["taken"] for h in json.loads(out)]
    assert code == 0 and len(taken) == 10 and taken == sorted(taken, reverse=True)
    code, out, _ = run(capsys, "search", "a garment", "--all", "--json", "--db", db)
    answer = json.loads(out)
    assert code == 0 and answer["count"] == len(answer["results"]) >= 1
    assert answer["capped"] is False
    code, out, _ = run(capsys, "search", "a garment", "--all", "--sort", "date", "--db", db)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["rank", "score", "taken", "path"]
    assert lines[-1] == f"≈{answer['count']} matches" and len(lines) == answer["count"] + 2
    for bad in (["--sort", "newest"], ["--not", "red", "--weight", "0.3"]):
        code, out, err = run(capsys, "search", "a garment", *bad, "--db", db)
        assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
        assert err.startswith("mmsearch: error: ")


def test_api_reports_the_count_and_refuses_a_bad_sort(demo_index, encoder):
    from fastapi.testclient import TestClient

    from ui.api import build_api

    api = TestClient(build_api(Searcher(demo_index, encoder), "t0ken"))
    auth = {"Authorization": "Bearer t0ken"}
    answer = api.post("/search", json={"text": "a sneaker", "all": True}, headers=auth).json()
    assert answer["count"] == len(answer["results"]) > 10 and answer["capped"] is False
    top = api.post("/search", json={"text": "a sneaker", "k": 5}, headers=auth).json()
    assert "count" not in top and len(top["results"]) == 5
    assert set(top["results"][0]) == {"path", "score", "taken", "matched"}
    bad = api.post("/search", json={"text": "a sneaker", "sort": "x"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["detail"] == "sort is score or date, not 'x'"
