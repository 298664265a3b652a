"""The quick path on large embedded indexes: Hamming over bit codes in Milvus, then the exact
metric over those candidates alone (mmsearch/coarse.py), on a real Milvus Lite index."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from mmsearch import coarse
from mmsearch.errors import IndexProblem
from mmsearch.hits import Hit
from mmsearch.items import IMAGE_VECTOR, Item, item_id


@pytest.fixture
def big_enough(make_index):
    """3,000 clustered unit vectors in a real index, in three folders."""
    index = make_index()
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(30, index.dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 30, 3000)] + rng.normal(0, 0.5, (3000, index.dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    index.upsert([Item(path=f"/p/f{i % 3}/{i:05d}.jpg", size=1, mtime=1.0, hash=f"{i}",
                                     width=1, height=1, image_vector=v) for i, v in enumerate(vectors)])
    index.flush()
    return index, vectors, rng


def by_codes(index, q, k, filter=""):
    """The codes path alone (what Index.search takes above coarse.MIN_ROWS rows)."""
    hits = coarse.search(index.client, index.COLLECTION, [q], k, filter, index.output,
                         IMAGE_VECTOR, index.search_params(IMAGE_VECTOR, k), index.rows_now())[0]
    return [Hit.of(h["entity"], h["distance"]) for h in hits]


def exact(vectors, q, k, keep=None):
    scores = vectors @ q
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    return [int(i) for i in np.argsort(-scores)[:k]]


def ids(hits):
    return [int(h.path[-9:-4]) for h in hits]


def test_codes_keep_angles_and_halves_keep_the_vector():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(3, 64)).astype(np.float32)
    near = v[0] + 0.05 * rng.normal(size=64).astype(np.float32)
    codes = coarse.codes(np.vstack([v, near]))
    assert all(len(c) == coarse.CODE_BITS // 8 for c in codes)
    assert codes == coarse.codes(np.vstack([v, near]))  # a fixed projection: same codes

    def hamming(a, b):
        return int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())

    assert hamming(codes[0], codes[3]) < min(hamming(codes[0], codes[1]),
                                             hamming(codes[0], codes[2])) / 3
    back = np.frombuffer(base64.b64decode(coarse.halves(v)[1]), np.float16)  # older indexes'
    assert back.shape == (64,) and np.allclose(back, v[1], atol=1e-2)


def test_codes_then_cosine_find_what_exact_search_finds(big_enough):
    index, vectors, rng = big_enough
    assert index.has_codes
    found = total = 0
    for q in vectors[rng.choice(3000, 20, replace=False)] + 0.01:
        q = q / np.linalg.norm(q)
        hits = by_codes(index, q, 10)
        flat = index.search(q, 10)  # 3,000 rows: below coarse.MIN_ROWS, so FLAT
        assert [round(h.score, 4) for h in hits] == sorted((round(h.score, 4) for h in hits),
                                                             reverse=True)
        assert hits[0].path == flat[0].path and hits[0].score == pytest.approx(flat[0].score,
                                                                               abs=1e-5)
        found += len(set(ids(hits)) & set(exact(vectors, q, 10)))
        total += 10
    assert found / total >= 0.95


def test_a_filter_applies_in_the_codes_step(big_enough):
    index, vectors, rng = big_enough
    keep = np.array([i % 3 == 1 for i in range(3000)])
    q = vectors[5]
    hits = by_codes(index, q, 10, 'folder == "/p/f1"')
    assert hits and all(h.path.startswith("/p/f1/") for h in hits)
    assert len(set(ids(hits)) & set(exact(vectors, q, 10, keep))) >= 9


def test_a_large_index_searches_by_codes_and_a_small_one_by_flat(big_enough, monkeypatch):
    index, vectors, _ = big_enough
    used = []
    real = coarse.search
    monkeypatch.setattr(coarse, "search", lambda *a: used.append(a) or real(*a))
    index.search(vectors[0], 10)
    assert not used  # 3,000 rows
    monkeypatch.setattr(coarse, "MIN_ROWS", 1000)
    index.__dict__.pop("_rows_seen", None)
    top = index.search(vectors[0], 10)
    assert len(used) == 1 and top[0].path.endswith("/00000.jpg")
    assert top[0].score == pytest.approx(1.0, abs=1e-5)  # the stored vector itself
    index.search_many(vectors[:10], 10)  # many queries at once (duplicates): FLAT
    index.search(vectors[0], 500)  # many hits: FLAT
    assert len(used) == 1


def test_rows_found_by_their_codes_are_the_rows_a_get_finds(big_enough):
    """Index.get on a collection with codes asks a search filtered to the ids (coarse.fetch:
    a Milvus Lite `get` scans); it must give exactly what `get` gives, vectors included."""
    index, vectors, _ = big_enough
    assert index.has_codes
    keys = [f"/p/f{i % 3}/{i:05d}.jpg" for i in (0, 1, 1500, 2999)] + ["/p/not/indexed.jpg"]
    found = index.get(keys + keys[:2], ("size", "hash", IMAGE_VECTOR))
    assert sorted(found) == sorted(keys[:4])
    plain = {r["key"]: r for r in index.client.get(
        index.COLLECTION, ids=[item_id(k) for k in keys],
        output_fields=["key", "path", "size", "hash", IMAGE_VECTOR])}
    for key, row in found.items():
        assert {f: row[f] for f in ("path", "size", "hash")} == \
            {f: plain[key][f] for f in ("path", "size", "hash")}
        assert np.allclose(row[IMAGE_VECTOR], plain[key][IMAGE_VECTOR])
        assert np.allclose(row[IMAGE_VECTOR], vectors[int(key[-9:-4])], atol=1e-6)
    many = [f"/p/f{i % 3}/{i:05d}.jpg" for i in range(2500)]  # more than a page of ids
    assert len(index.get(many, ("hash",))) == 2500


def test_an_index_with_the_older_float16_column_is_still_written_and_searched(
        make_index, monkeypatch):
    """Indexes made before the rerank moved into Milvus have a `half` column: a row must
    still fill it, and the codes path must not need it."""
    from pymilvus import DataType

    from mmsearch.index import Index
    from mmsearch.items import ITEMS

    real = Index._create_collection

    def with_half(self, name, schema, params):
        if name == ITEMS:
            schema.add_field(coarse.HALF_FIELD, DataType.VARCHAR, max_length=4096)
        real(self, name, schema, params)

    monkeypatch.setattr(Index, "_create_collection", with_half)
    index = make_index("old.db")
    assert coarse.HALF_FIELD in index.columns() and index.has_codes
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(300, index.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index.upsert([Item(path=f"/p/f0/{i:05d}.jpg", size=1, mtime=1.0, hash=f"{i}",
                       image_vector=v) for i, v in enumerate(vectors)])
    index.flush()
    stored = index.client.query(index.COLLECTION, filter=f"id == {item_id('/p/f0/00003.jpg')}",
                                output_fields=[coarse.HALF_FIELD])[0][coarse.HALF_FIELD]
    assert np.allclose(np.frombuffer(base64.b64decode(stored), np.float16), vectors[3],
                       atol=1e-2)
    hits = by_codes(index, vectors[3], 5)
    assert hits[0].path == "/p/f0/00003.jpg" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert ids(hits) == exact(vectors, vectors[3], 5)


def test_inner_product_on_unit_vectors_ranks_and_scores_as_cosine(make_index, monkeypatch):
    """New collections use IP (items.VECTOR_METRIC: FLAT then skips every stored vector's
    norm), so vectors are stored at unit length whatever length they come in; an index made
    with COSINE before keeps it and is searched with its own metric."""
    from mmsearch import items

    new = make_index("new.db")
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(200, new.dim)).astype(np.float32) * rng.uniform(0.2, 5, (200, 1))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = [Item(path=f"/p/{i:05d}.jpg", size=1, mtime=1.0, hash=f"{i}",
                 image_vector=v.astype(np.float32)) for i, v in enumerate(vectors)]
    monkeypatch.setattr(items, "VECTOR_METRIC", "COSINE")
    old = make_index("old.db")
    for index in (new, old):
        index.upsert(rows)
        index.flush()
    assert new.search_params(IMAGE_VECTOR, 10)["metric_type"] == "IP"
    assert old.search_params(IMAGE_VECTOR, 10)["metric_type"] == "COSINE"
    stored = new.get(["/p/00007.jpg"], (IMAGE_VECTOR,))["/p/00007.jpg"][IMAGE_VECTOR]
    assert np.linalg.norm(stored) == pytest.approx(1.0, abs=1e-5)
    for q in unit[:10]:
        a, b = new.search(q, 10), old.search(q, 10)
        assert [h.path for h in a] == [h.path for h in b] == \
            [f"/p/{i:05d}.jpg" for i in np.argsort(-(unit @ q))[:10]]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
        assert a[0].score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(IndexProblem, match=f"{new.dim + 1} numbers, not {new.dim}"):
        new.upsert([Item(path="/p/wrong.jpg", size=1, mtime=1.0, hash="w",
                         image_vector=np.ones(new.dim + 1, np.float32))])
