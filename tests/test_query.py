"""Query composition, cutoff, filters inside Milvus, relevance feedback and duplicates:
library and CLI, on a real Milvus Lite index built from real files with the demo model."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime

import numpy as np
import pytest
from PIL import Image

from conftest import demo_files, label_of
from indexer.pipeline import index_paths
from mmsearch.cli import main
from mmsearch.cli.parser import build_parser
from mmsearch.config import IndexLocation
from mmsearch.duplicates import find_duplicates
from mmsearch.filters import FilterError, Filters, parse_date
from mmsearch.stores import open_index
from mmsearch.search import (DISLIKE_WEIGHT, LIKE_WEIGHT, NOT_WEIGHT, Part, Query, QueryError,
                             Searcher, feedback_parts)


def _ts(day: str) -> float:
    return datetime.fromisoformat(day).timestamp()


@pytest.fixture(scope="module")
def library(tmp_path_factory, encoder):
    """A folder with: 40 garments (files dated 2023), a `bags/` folder of 12 bags (dated
    2020), pictures of known shapes, one with an EXIF date, and copies for duplicates."""
    root = tmp_path_factory.mktemp("library")
    plain, bags, shapes, copies = (root / n for n in ("plain", "bags", "shapes", "copies"))
    for d in (plain, bags, shapes, copies):
        d.mkdir()
    others = [f for f in demo_files() if label_of(f)["class"] != "bag"]
    for f in others[:40]:
        shutil.copy(f, plain / f.name)
        os.utime(plain / f.name, (_ts("2023-03-01"),) * 2)
    for f in demo_files(cls="bag")[:12]:
        shutil.copy(f, bags / f.name)
        os.utime(bags / f.name, (_ts("2020-06-15"),) * 2)
    source = Image.open(others[0]).convert("RGB")
    source.resize((224, 112)).save(shapes / "wide.png")
    source.resize((112, 224)).save(shapes / "tall.png")
    source.resize((300, 300)).save(shapes / "big-square.png")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2019:05:01 10:00:00"  # DateTimeOriginal
    Image.open(others[1]).convert("RGB").save(shapes / "dated.jpg", exif=exif, quality=92)
    for f in shapes.iterdir():
        os.utime(f, (_ts("2024-08-08"),) * 2)
    # duplicates: an exact copy and a half-size copy of one picture, a JPEG of another
    a, b = plain / others[2].name, plain / others[3].name
    shutil.copy(a, copies / "a-copy.png")
    Image.open(a).convert("RGB").resize((56, 56), Image.BICUBIC).save(copies / "a-small.png")
    Image.open(b).convert("RGB").save(copies / "b.jpg", quality=60)
    db = tmp_path_factory.mktemp("library_db") / "library.db"
    index = open_index(IndexLocation.resolve(db=db), model=encoder.spec,
                       create_model=encoder.spec, dim=encoder.dim)
    assert index_paths([str(root)], index, encoder, progress=False).added == 40 + 12 + 4 + 3
    yield {"root": root, "index": index, "db": db, "a": str(a), "b": str(b),
           "searcher": Searcher(index, encoder)}
    index.close()


def paths_of(hits) -> list[str]:
    return [h.path for h in hits]


# -- composition ---------------------------------------------------------------------------
def test_the_vector_sums_weighted_parts_and_a_not_part_is_not_in_the_search(library, encoder):
    searcher = library["searcher"]
    q = Query([Part(text="a dress"), Part(text="red", weight=-NOT_WEIGHT)])
    v_dress, v_red = encoder.encode_texts(["a dress", "red"])
    expected = v_dress - NOT_WEIGHT * v_red
    assert np.allclose(searcher.vector(q), expected / np.linalg.norm(expected), atol=1e-5)
    # a search ranks by what is looked for; "red" removes (mmsearch.cutoff)
    assert [(p.text, p.weight) for p in q.looking_for().parts] == [("a dress", 1.0)]
    assert [p.text for p in Query.of(texts=["a red dress"], without=["red"]).looking_for()
            .parts] == ["a dress"]


def test_not_removes_what_it_names(demo_index, encoder):
    searcher = Searcher(demo_index, encoder)
    plain = [label_of(p) for p in paths_of(searcher.search(Query.of(texts=["a dress"]), 10))]
    without = [label_of(p) for p in paths_of(
        searcher.search(Query.of(texts=["a dress"], without=["red"]), 10))]
    assert sum(lab["colour"] == "red" for lab in plain) >= 2
    assert sum(lab["colour"] == "red" for lab in without) == 0
    assert sum(lab["class"] == "dress" for lab in without) >= 7


def test_a_query_of_only_what_to_leave_out_is_refused(library):
    with pytest.raises(QueryError, match="empty query"):
        library["searcher"].search(Query.of(without=["red"]))


def test_weight_applies_to_the_part_before_it_and_not_to_a_not_part():
    from mmsearch.cli.searching import _search_request

    args = build_parser().parse_args(["search", "a beach", "--weight", "2", "--image", "x.jpg",
                                      "--weight", "0.7", "--not", "cars"])
    assert [(p[0], p[2]) for p in args.parts] == [("image", 0.7), ("not", None)]
    assert args.text_weight == 2.0
    args = build_parser().parse_args(["search", "a beach", "--not", "people", "--weight", "0.7"])
    with pytest.raises(ValueError, match="takes no weight"):
        _search_request(args)


def test_not_takes_a_picture_file(library, capsys):
    a = library["a"]
    code, out, _ = _run(capsys, "search", "a garment", "--not", a, "-k", "59", "--json",
                        "--db", library["db"])
    ranked = [h["path"] for h in json.loads(out)]
    assert code == 0 and a not in ranked and len(ranked) >= 40  # removed, the rest kept


def test_min_score_cuts_the_list(library, capsys):
    hits = library["searcher"].search(Query.of(texts=["a bag"]), 30)
    cut = (hits[4].score + hits[5].score) / 2
    code, out, _ = _run(capsys, "search", "a bag", "-k", "30", "--min-score", cut, "--json",
                        "--db", library["db"])
    kept = json.loads(out)
    assert code == 0 and [h["path"] for h in kept] == paths_of(hits[:5])
    assert all(h["score"] >= cut for h in kept)


# -- filters, inside Milvus ----------------------------------------------------------------
def test_folder_filter_returns_a_full_top_k_from_that_folder(library, capsys):
    bags = library["root"] / "bags"
    # the 10 best "sneaker" matches overall are not bags; filtered, it must still give 10
    code, out, _ = _run(capsys, "search", "a red sneaker", "--in", bags, "-k", "10", "--json",
                        "--db", library["db"])
    hits = json.loads(out)
    assert code == 0 and len(hits) == 10
    assert all(h["path"].startswith(str(bags) + os.sep) for h in hits)


def test_date_filters_use_exif_dates_then_file_times(library):
    search = library["searcher"].search
    in_2020 = search(Query.of(texts=["a bag"], filters=Filters.parse(
        since="2020", until="2020-12")), 50)
    assert len(in_2020) == 12 and all("/bags/" in p for p in paths_of(in_2020))
    may_2019 = search(Query.of(texts=["a shirt"], filters=Filters.parse(
        since="2019-05-01", until="2019-05-01")), 50)
    assert [os.path.basename(p) for p in paths_of(may_2019)] == ["dated.jpg"]
    since_2023 = search(Query.of(texts=["a shirt"], filters=Filters.parse(since="2023")), 100)
    assert "/bags/" not in "".join(paths_of(since_2023)) and len(since_2023) == 40 + 3 + 3


def test_size_and_orientation_filters(library, capsys):
    search = library["searcher"].search
    tall = search(Query.of(texts=["a shirt"], filters=Filters.parse(orientation="portrait")), 50)
    assert [os.path.basename(p) for p in paths_of(tall)] == ["tall.png"]
    wide = search(Query.of(texts=["a shirt"], filters=Filters.parse(orientation="landscape")),
                  50)
    assert [os.path.basename(p) for p in paths_of(wide)] == ["wide.png"]
    code, out, _ = _run(capsys, "search", "a shirt", "--min-width", 200, "--min-height", 200,
                        "--json", "--db", library["db"])
    assert [os.path.basename(h["path"]) for h in json.loads(out)] == ["big-square.png"]


@pytest.mark.parametrize("argv,words", [
    (["--since", "2024-13"], "cannot read the date"),
    (["--since", "last week"], "YYYY"),
    (["--since", "2024", "--until", "2023"], "is not before"),
    (["--min-width", "-5"], "negative"),
])
def test_bad_filters_are_one_line_errors(library, capsys, argv, words):
    code, out, err = _run(capsys, "search", "a bag", *argv, "--db", library["db"])
    assert code == 1 and words in err and err.count("\n") == 1 and not out


def test_filter_values_never_reach_the_expression_raw():
    expr = Filters.parse(folder='/x/" or id > 0 or path == "').expression()
    # the folder is one quoted string literal (a range: path >= "DIR/" and path < "DIR0")
    assert expr.startswith('(path >= "/x/\\" or id > 0 or path == \\"/" and '
                           'path < "/x/\\" or id > 0 or path == \\"0")')
    with pytest.raises(FilterError):
        Filters.parse(orientation="wide) or (1 == 1")
    assert parse_date("2024-02", end=True) == _ts("2024-03-01")
    assert parse_date("2024-12", end=True) == _ts("2025-01-01")


# -- relevance feedback --------------------------------------------------------------------
def test_feedback_weights_follow_rocchio():
    parts = feedback_parts(["/a", "/b", "/a"], ["/c"])
    assert [(p.indexed, p.weight) for p in parts] == [
        ("/a", LIKE_WEIGHT / 2), ("/b", LIKE_WEIGHT / 2), ("/c", -DISLIKE_WEIGHT)]


def test_less_like_this_pushes_a_result_down_and_more_like_this_pulls_its_kind_up(library):
    searcher = library["searcher"]
    base = paths_of(searcher.search(Query.of(texts=["a garment"]), 59))
    top = base[0]
    pushed = paths_of(searcher.search(Query(Query.of(texts=["a garment"]).parts
                                            + feedback_parts(disliked=[top])), 59))
    assert pushed.index(top) > 0
    bag = next(p for p in base if "/bags/" in p)
    pulled = paths_of(searcher.search(Query(Query.of(texts=["a garment"]).parts
                                            + feedback_parts(liked=[bag])), 10))
    assert sum("/bags/" in p for p in pulled) > sum("/bags/" in p for p in base[:10])


# -- duplicates ----------------------------------------------------------------------------
def test_duplicates_group_exact_resized_and_reencoded_copies(library, capsys):
    code, out, _ = _run(capsys, "duplicates", "--json", "--db", library["db"])
    groups = json.loads(out)
    assert code == 0
    as_sets = [{os.path.basename(m["path"]) for m in g} for g in groups]
    a, b = os.path.basename(library["a"]), os.path.basename(library["b"])
    for original, copies in ((a, {"a-copy.png", "a-small.png"}), (b, {"b.jpg"})):
        group = next(s for s in as_sets if original in s)
        assert copies <= group
        # The demo model sees 32-pixel pictures: beside the copies, a group may hold another
        # garment of the very same kind and colour (see mmsearch/duplicates.py), never other.
        kind = lambda name: (label_of(name)["class"], label_of(name)["colour"])  # noqa: E731
        assert all(kind(extra) == kind(original) for extra in group - copies - {original})
    # the resized and re-encoded copies in shapes/ join their originals too
    first = os.path.basename(sorted((library["root"] / "plain").iterdir())[0])
    assert any({"big-square.png", first} <= s for s in as_sets)
    for g in groups:
        assert all(set(m) == {"path", "score"} for m in g)
        assert g[0]["score"] == pytest.approx(1.0, abs=1e-4)
        assert all(0.99 < m["score"] <= 1.0001 for m in g)
    code, out, _ = _run(capsys, "duplicates", "--db", library["db"])
    assert out.startswith("group 1 (")


def test_duplicates_threshold_is_checked(library):
    with pytest.raises(ValueError, match="threshold"):
        find_duplicates(library["index"], 2.0)
    exact = find_duplicates(library["index"], 1.0)  # exact copies group whatever the threshold
    assert [{os.path.basename(m.path) for m in g} for g in exact] == [
        {os.path.basename(library["a"]), "a-copy.png"}]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
