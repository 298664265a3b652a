"""An index of schema 1 (a folder's `images`, a catalogue's `items`, as mmsearch wrote them
before every kind held items) opens as before: its rows move to the item collection once,
vectors and all, a killed move is finished by the next open, and nothing is lost."""

from __future__ import annotations

import json
import os
import time

import pytest
from PIL import Image

from conftest import demo_files
from mmsearch.config import IndexLocation
from mmsearch.engine import OutdatedIndexError, connect
from mmsearch.index import META, Index
from mmsearch.items import ITEMS, SCHEMA_VERSION
from mmsearch.search import Query, Searcher
from mmsearch.stores import open_index


def _meta(client, spec, dim: int, kind: str) -> None:
    """The meta collection as schema 1 wrote it (unchanged since)."""
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
    s.add_field("value", DataType.VARCHAR, max_length=65535)
    s.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)
    p = client.prepare_index_params()
    p.add_index("dummy", index_type="FLAT", metric_type="L2")
    client.create_collection(META, schema=s, index_params=p)
    record = {"schema": 1, "model": spec.to_record(), "dim": dim, "kind": kind,
              "created": time.time()}
    client.insert(META, [{"key": "index", "value": json.dumps(record), "dummy": [0.0, 0.0]},
                         {"key": "roots", "value": json.dumps(["/old"]), "dummy": [0.0, 0.0]}])


def old_folder_index(db, encoder, files, real_facts: bool = False) -> list[str]:
    """A schema-1 folder index of `files` (their real vectors; their real size and mtime
    with `real_facts`, else made-up ones); returns their paths."""
    from pymilvus import DataType, MilvusClient

    client = connect(IndexLocation.resolve(db=db))
    _meta(client, encoder.spec, encoder.dim, "folder")
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    for name in ("path", "folder"):
        s.add_field(name, DataType.VARCHAR, max_length=4096)
    s.add_field("size", DataType.INT64)
    s.add_field("mtime", DataType.DOUBLE)
    s.add_field("taken", DataType.DOUBLE)
    s.add_field("hash", DataType.VARCHAR, max_length=64)
    s.add_field("width", DataType.INT32)
    s.add_field("height", DataType.INT32)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=encoder.dim)
    p = client.prepare_index_params()
    p.add_index("vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection("images", schema=s, index_params=p)
    vectors = encoder.encode_images([Image.open(f).convert("RGB") for f in files])
    paths = [str(f) for f in files]
    facts = [(os.path.getsize(p), os.path.getmtime(p)) if real_facts else (100 + i, 1.5)
             for i, p in enumerate(paths)]
    client.insert("images", [{"id": i, "path": path, "folder": os.path.dirname(path),
                              "size": facts[i][0], "mtime": facts[i][1], "taken": 2.5,
                              "hash": f"h{i}",
                              "width": 32, "height": 32, "vector": v.tolist()}
                             for i, (path, v) in enumerate(zip(paths, vectors))])
    client.close()
    return paths


def test_a_schema_1_folder_index_moves_over_once_and_searches_the_same(tmp_path, encoder):
    db = tmp_path / "old.db"
    files = demo_files(12)
    paths = old_folder_index(db, encoder, files)
    with open_index(IndexLocation.resolve(db=db)) as index:
        assert index.count() == 12 and index.roots == ["/old"]
        row = index.get([paths[3]], ("size", "mtime", "taken", "hash", "width", "folder"))[paths[3]]
        assert (row["size"], row["mtime"], row["taken"], row["hash"], row["width"],
                row["folder"]) == (103, 1.5, 2.5, "h3", 32, os.path.dirname(paths[3]))
        assert not index.client.has_collection("images")
        assert Index._read_meta(index.client)["schema"] == SCHEMA_VERSION
        searcher = Searcher(index, encoder)
        for f in files[:4]:  # each picture still finds itself first, from the moved vectors
            hits = searcher.search(Query.of(images=[Image.open(f).convert("RGB")]), 3)
            assert hits[0].path == str(f) and hits[0].score > 0.999
        similar = searcher.search_similar(paths[5], k=1)
        assert similar[0].path == paths[5]
    with open_index(IndexLocation.resolve(db=db)) as again:  # a second open moves nothing
        assert again.count() == 12


def test_a_killed_move_is_finished_by_the_next_open(tmp_path, encoder, monkeypatch):
    db = tmp_path / "old.db"
    paths = old_folder_index(db, encoder, demo_files(30))
    calls = []
    real = Index.upsert

    def dies_after_the_first_page(self, items):
        calls.append(len(items))
        real(self, items[:10])  # part of the page lands, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(Index, "upsert", dies_after_the_first_page)
    with pytest.raises(KeyboardInterrupt):
        open_index(IndexLocation.resolve(db=db))
    monkeypatch.setattr(Index, "upsert", real)
    client = connect(IndexLocation.resolve(db=db))
    assert client.has_collection("images") and client.has_collection(ITEMS)
    assert Index._read_meta(client)["schema"] == 1  # not recorded as moved
    client.close()
    with open_index(IndexLocation.resolve(db=db)) as index:
        assert index.count() == 30  # every row, none twice
        assert set(index.get(paths, ("hash",))) == set(paths)
    assert calls == [30]  # the whole first page was being moved when it died


def old_catalog(db, encoder, with_source: bool = True) -> None:
    from pymilvus import DataType, MilvusClient

    client = connect(IndexLocation.resolve(db=db))
    _meta(client, encoder.spec, encoder.dim, "catalog")
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
    s.add_field("path", DataType.VARCHAR, max_length=4096)
    s.add_field("title", DataType.VARCHAR, max_length=2048)
    s.add_field("description", DataType.VARCHAR, max_length=16384)
    s.add_field("text", DataType.VARCHAR, max_length=16384, enable_analyzer=True)
    s.add_field("fields", DataType.JSON)
    s.add_field("hash", DataType.VARCHAR, max_length=64)
    s.add_field("text_hash", DataType.VARCHAR, max_length=64)
    s.add_field("size", DataType.INT64)
    s.add_field("mtime", DataType.DOUBLE)
    if with_source:
        s.add_field("source", DataType.VARCHAR, max_length=4096)
    s.add_field("image_vector", DataType.FLOAT_VECTOR, dim=encoder.dim)
    s.add_field("text_vector", DataType.FLOAT_VECTOR, dim=encoder.dim)
    p = client.prepare_index_params()
    for name in ("image_vector", "text_vector"):
        p.add_index(name, index_type="FLAT", metric_type="COSINE")
    client.create_collection("items", schema=s, index_params=p)
    files = demo_files(6)
    pictures = encoder.encode_images([Image.open(f).convert("RGB") for f in files])
    titles = [f"Tas Kulit {i}" if i % 2 else f"Sepatu Lari {i}" for i in range(6)]
    texts = encoder.encode_texts(titles)
    rows = []
    for i, f in enumerate(files):
        row = {"id": f"SKU-{i}", "path": str(f), "title": titles[i], "description": "",
               "text": titles[i], "fields": {"price": 1000 * i, "brand": "Minuet"},
               "hash": f"h{i}", "text_hash": "t", "size": 1, "mtime": 1.0,
               "image_vector": pictures[i].tolist(), "text_vector": texts[i].tolist()}
        if with_source:
            row["source"] = "/shop/products.csv"
        rows.append(row)
    client.insert("items", rows)
    client.close()


def test_a_schema_1_catalogue_moves_over_with_its_titles_fields_and_both_vectors(tmp_path,
                                                                                 encoder):
    db = tmp_path / "cat.db"
    old_catalog(db, encoder)
    with open_index(IndexLocation.resolve(db=db)) as index:
        assert index.kind == "catalog" and index.has_text_vectors and index.count() == 6
        assert set(index.rows_from("/shop/products.csv", ("title",))) == \
            {f"SKU-{i}" for i in range(6)}
        searcher = Searcher(index, encoder)
        hits = searcher.search(Query.of(texts=["tas kulit"], mode="text"), 3)
        assert all(h.title.startswith("Tas Kulit") for h in hits)  # BM25 over moved text
        cheap = searcher.search(Query.of(texts=["sepatu"], where="price < 2500"), 10)
        assert {h.key for h in cheap} == {"SKU-0", "SKU-1", "SKU-2"}
        liked = searcher.search(Query.of(like=["SKU-1"]), 5)
        assert "SKU-1" not in {h.key for h in liked} and liked[0].fields["brand"] == "Minuet"


def test_a_catalogue_too_old_to_move_is_one_line_and_left_as_it_was(tmp_path, encoder):
    db = tmp_path / "cat.db"
    old_catalog(db, encoder, with_source=False)
    with pytest.raises(OutdatedIndexError, match="older mmsearch"):
        open_index(IndexLocation.resolve(db=db))
    client = connect(IndexLocation.resolve(db=db))
    assert client.has_collection("items")
    client.load_collection("items")
    assert int(client.query("items", filter="", output_fields=["count(*)"])[0]["count(*)"]) == 6
    client.close()
