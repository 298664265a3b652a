"""Indexing a real folder into a real Milvus Lite index, and searching it with the real model."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from conftest import demo_files, label_of
from indexer.pipeline import index_paths
from mmsearch.config import IndexLocation, ModelSpec
from mmsearch.engine import IndexNotFoundError, ModelMismatchError
from mmsearch.index import Index
from mmsearch.items import Item
from mmsearch.stores import open_index
from mmsearch.search import Query, QueryError, Searcher


def indexed_paths(index: Index, root) -> set[str]:
    return {r["path"] for r in index.rows_under(str(root))}


def folder_paths(root) -> set[str]:
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}


@pytest.fixture
def nested(tmp_path):
    root = tmp_path / "photos"
    files = demo_files(24)
    for i, f in enumerate(files):
        sub = root / ("a" if i % 3 == 0 else "b/c" if i % 3 == 1 else "b/c/d e")
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, sub / f.name)
    return root


def test_nested_folder_is_indexed_with_metadata(nested, make_index, encoder):
    index = make_index()
    summary = index_paths([str(nested)], index, encoder, progress=False)
    assert summary.to_json() == {"added": 24, "updated": 0, "removed": 0, "unchanged": 0,
                                 "skipped": 0, "errors": []}
    assert indexed_paths(index, nested) == folder_paths(nested)
    assert index.count() == 24
    assert index.roots == [str(nested)]
    some = sorted(folder_paths(nested))[0]
    row = index.get([some], ("size", "width", "height", "hash", "folder"))[some]
    assert (row["width"], row["height"]) == (112, 112)
    assert row["size"] == os.path.getsize(some)
    assert row["folder"] == os.path.dirname(some)


def test_reindex_follows_adds_changes_and_deletes(nested, make_index, encoder):
    index = make_index()
    index_paths([str(nested)], index, encoder, progress=False)
    files = sorted(folder_paths(nested))
    # add one, delete one, change one's pixels, touch one (same bytes, new mtime)
    new = nested / "b" / "new.png"
    shutil.copy2(demo_files(30)[-1], new)
    os.remove(files[0])
    changed = files[1]
    Image.open(demo_files(40)[-1]).save(changed)
    touched = files[2]
    later = time.time() + 100
    os.utime(touched, (later, later))

    summary = index_paths([str(nested)], index, encoder, progress=False)
    assert summary.to_json() == {"added": 1, "updated": 1, "removed": 1, "unchanged": 22,
                                 "skipped": 0, "errors": []}
    assert indexed_paths(index, nested) == folder_paths(nested)
    # the touched file kept its metadata; the changed one has the new picture's vector
    row = index.get([touched], ("mtime", "width"))[touched]
    assert row["mtime"] == pytest.approx(later) and row["width"] == 112
    hit = Searcher(index, encoder).search_image(demo_files(40)[-1], k=1)[0]
    assert hit.path == changed
    # a third run has nothing to do
    assert index_paths([str(nested)], index, encoder, progress=False).to_json()["unchanged"] == 24


@pytest.mark.parametrize("layout", ["meta", "every fact a column"])
def test_each_item_layout_indexes_reindexes_filters_and_searches(nested, make_index, encoder,
                                                                 monkeypatch, layout):
    """New item collections keep the facts no filter compares in Milvus's dynamic field
    (items.IN_META); an index made before kept every fact a column (and a float16 copy of
    each vector). The same code reads, writes, filters and searches both."""
    from pymilvus import DataType

    from mmsearch import coarse, items
    from mmsearch.filters import Filters

    if layout != "meta":
        real = Index._create_collection
        types = {"key": (DataType.VARCHAR, 4096), "folder": (DataType.VARCHAR, 4096),
                 "size": (DataType.INT64, 0), "mtime": (DataType.DOUBLE, 0),
                 "hash": (DataType.VARCHAR, 64), "text": (DataType.VARCHAR, 16384),
                 "fields": (DataType.JSON, 0), coarse.HALF_FIELD: (DataType.VARCHAR, 4096)}

        def every_fact_a_column(self, name, schema, params):
            if name == items.ITEMS:
                schema.enable_dynamic_field = False
                for field, (dtype, length) in types.items():
                    schema.add_field(field, dtype, **({"max_length": length} if length else {}))
            real(self, name, schema, params)

        monkeypatch.setattr(Index, "_create_collection", every_fact_a_column)
    index = make_index()
    names = {f["name"] for f in index.client.describe_collection(index.COLLECTION)["fields"]}
    assert ("size" in names) == (layout != "meta") and "path" in names
    assert {"size", "mtime", "hash", "fields", "key"} <= index.columns()
    index_paths([str(nested)], index, encoder, progress=False)
    some = sorted(folder_paths(nested))[0]
    row = index.get([some], ("size", "mtime", "hash", "width", "folder", "fields"))[some]
    assert row["size"] == os.path.getsize(some) and row["folder"] == os.path.dirname(some)
    assert row["mtime"] == pytest.approx(os.path.getmtime(some)) and row["width"] == 112
    os.utime(some, (time.time() + 50, time.time() + 50))
    again = index_paths([str(nested)], index, encoder, progress=False).to_json()
    assert (again["unchanged"], again["updated"]) == (24, 0)  # the mtime read back, no encode
    searcher = Searcher(index, encoder)
    under = str(nested / "b")
    query = Query.of(texts=["a shoe"], filters=Filters.parse(folder=under, type="picture",
                                                             orientation="square"))
    hits = searcher.search(query, k=30)
    assert hits and {h.path for h in hits} <= {p for p in folder_paths(nested)
                                               if p.startswith(under + os.sep)}
    query.filters = Filters.parse(folder=under, orientation="portrait")
    assert searcher.search(query, k=30) == []  # every demo picture is square
    assert searcher.search_image(some, k=1)[0].path == some


def test_writing_a_path_again_replaces_its_row_never_adds_one(make_index):
    """New rows are inserted and known ones upserted (Milvus Lite's upsert slows with size):
    a path written twice, in one call or two, is one row holding the last write."""
    index = make_index()
    rng = np.random.default_rng(0)

    def row(path, size):
        vector = rng.normal(size=index.dim).astype(np.float32)
        return Item(path=path, size=size, mtime=1.0, hash=f"h{size}", width=1, height=1,
                    image_vector=vector / np.linalg.norm(vector))

    index.upsert([row("/p/a.jpg", 1), row("/p/b.jpg", 2), row("/p/a.jpg", 3)])
    index.upsert([row("/p/b.jpg", 4), row("/p/c.jpg", 5)])
    index.flush()
    assert index.count() == 3
    stored = index.get(["/p/a.jpg", "/p/b.jpg", "/p/c.jpg"], ("size",))
    assert {p: r["size"] for p, r in stored.items()} == {"/p/a.jpg": 3, "/p/b.jpg": 4,
                                                          "/p/c.jpg": 5}
    assert sum(1 for _ in index.iter_rows(["path"])) == 3


def test_indexed_picture_finds_itself_first(demo_index, encoder):
    searcher = Searcher(demo_index, encoder)
    for f in demo_files(300)[::37]:
        hits = searcher.search_image(f, k=3)
        assert os.path.basename(hits[0].path) == f.name
        assert hits[0].score > 0.99
        assert hits[0].score >= hits[1].score >= hits[2].score


@pytest.mark.parametrize("query,cls,colour", [
    ("a red sneaker", "sneaker", "red"),
    ("sepatu lari merah", "sneaker", "red"),
    ("a green dress", "dress", "green"),
    ("sweter biru", "pullover", "blue"),
    ("tas hitam", "bag", "black"),
    ("trousers", "trouser", None),
])
def test_text_query_finds_the_right_kind_of_picture(demo_index, encoder, query, cls, colour):
    hits = Searcher(demo_index, encoder).search_text(query, k=3)
    top = label_of(hits[0].path)
    assert top["class"] == cls
    if colour:
        assert top["colour"] == colour


def test_text_and_picture_together_are_summed(demo_index, encoder):
    searcher = Searcher(demo_index, encoder)
    example = demo_files(cls="bag")[0]
    v_text = encoder.encode_texts(["a yellow bag"])[0]
    v_img = encoder.encode_images([Image.open(example).convert("RGB")])[0]
    expected = (v_text + v_img) / np.linalg.norm(v_text + v_img)
    q = Query.of(texts=["a yellow bag"], images=[Image.open(example).convert("RGB")])
    assert np.allclose(searcher.vector(q), expected, atol=1e-5)
    hits = searcher.search(q, k=5)
    assert hits[0].score == pytest.approx(float(expected @ encoder.encode_images(
        [Image.open(hits[0].path).convert("RGB")])[0]), abs=1e-3)


def test_empty_query_is_a_clear_error(demo_index, encoder):
    with pytest.raises(QueryError, match="empty query"):
        Searcher(demo_index, encoder).search_text("   ")


def test_model_mismatch_names_both_models(tmp_path, encoder):
    loc = IndexLocation.resolve(db=tmp_path / "i.db")
    open_index(loc, model=encoder.spec, create_model=encoder.spec, dim=encoder.dim).close()
    other = ModelSpec.parse("ViT-B-32", "random")
    with pytest.raises(ModelMismatchError) as err:
        open_index(loc, model=other, create_model=other, dim=512)
    assert "demo" in str(err.value) and "ViT-B-32" in str(err.value)
    # and without a model the recorded one is used
    with open_index(loc) as index:
        assert index.model == encoder.spec


def test_opening_a_missing_index_without_a_model_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexNotFoundError, match="mmsearch index"):
        open_index(IndexLocation.resolve(db=tmp_path / "none.db"))
