"""Product catalogues on a real Milvus Lite index with the demo model: import and incremental
re-import, bad rows, hybrid search, --where filters, recommendations, the CLI and the app."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from gradio_client import Client

from indexer.catalog import import_catalog, read_catalog
from mmsearch.search import Query, Searcher
from mmsearch.cli import main
from mmsearch.cli.demo import build_demo_index
from mmsearch.config import DEMO_CATALOG, DEMO_PICTURES_DIR, IndexLocation
from mmsearch.stores import open_index

PRODUCTS = [json.loads(line) for line in DEMO_CATALOG.read_text().splitlines()]
BY_ID = {p["id"]: p for p in PRODUCTS}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory):
    """The shipped demo catalogue (300 products), imported once."""
    location, summary = build_demo_index(str(tmp_path_factory.mktemp("cat") / "demo.db"),
                                         progress=False, catalog=True)
    assert summary.added == 300 and not summary.errors
    index = open_index(location)
    assert index.kind == "catalog" and index.has_text_vectors
    yield index
    index.close()


@pytest.fixture
def searcher(demo_catalog, encoder):
    return Searcher(demo_catalog, encoder)


def find(searcher, text: str = "", image=None, k: int = 20, **kwargs):
    """A catalogue search as the app's Products tab makes it."""
    return searcher.search(Query.of(texts=[text], images=[] if image is None else [image],
                                    **kwargs), k)


def shop(tmp_path, rows: list[dict], name: str = "shop.jsonl"):
    """A catalogue file with its pictures copied beside it (relative paths)."""
    (tmp_path / "img").mkdir(exist_ok=True)
    out = []
    for row in rows:
        row = dict(row)
        if row.get("image", "").startswith("../demo/"):
            src = DEMO_PICTURES_DIR / row["image"].split("/")[-1]
            shutil.copy2(src, tmp_path / "img" / src.name)
            row["image"] = f"img/{src.name}"
        out.append(row)
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    return path


# -- import ------------------------------------------------------------------------------
def test_reimport_is_incremental(tmp_path, make_index, encoder):
    index = open_index(IndexLocation.resolve(db=tmp_path / "c.db"), model=encoder.spec,
                       create_model=encoder.spec, dim=encoder.dim, kind="catalog")
    rows = PRODUCTS[:20]
    file = shop(tmp_path, rows)
    first = import_catalog(file, index, encoder, progress=False)
    assert (first.added, first.updated, first.removed, first.unchanged) == (20, 0, 0, 0)
    before = index.get(["SKU-0000", "SKU-0001"], ("image_vector", "text_vector"))
    again = import_catalog(file, index, encoder, progress=False)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 20)

    changed = [dict(r) for r in rows]
    changed[0]["title"] = "Sepatu Bot Hitam Baru"                  # text only
    changed[1]["image"] = "../demo/item-0150.png"                   # picture only
    del changed[2]                                                  # removed
    changed.append(dict(PRODUCTS[40]))                              # added
    file = shop(tmp_path, changed)
    third = import_catalog(file, index, encoder, progress=False)
    assert (third.added, third.updated, third.removed, third.unchanged) == (1, 2, 1, 17)
    after = index.get(["SKU-0000", "SKU-0001"], ("image_vector", "text_vector"))
    # only the half that changed was embedded again
    assert np.allclose(after["SKU-0000"]["image_vector"], before["SKU-0000"]["image_vector"])
    assert not np.allclose(after["SKU-0000"]["text_vector"], before["SKU-0000"]["text_vector"])
    assert np.allclose(after["SKU-0001"]["text_vector"], before["SKU-0001"]["text_vector"])
    assert not np.allclose(after["SKU-0001"]["image_vector"], before["SKU-0001"]["image_vector"])
    assert index.count() == 20
    index.close()


def test_bad_rows_are_reported_with_their_row_and_the_rest_goes_on(tmp_path, capsys):
    rows = [dict(PRODUCTS[0]), {"image": "../demo/item-0001.png", "title": "no id"},
            dict(PRODUCTS[2]), dict(PRODUCTS[2], title="same id again"),
            dict(PRODUCTS[3], image="img/nowhere.png"), dict(PRODUCTS[4], image="img/bad.png"),
            dict(PRODUCTS[5])]
    file = shop(tmp_path, rows)
    (tmp_path / "img" / "bad.png").write_bytes(b"not a picture at all")
    with open(file, "a") as f:
        f.write("{this is not json\n")
    code, out, _ = run(capsys, "index", "--catalog", file, "--db", tmp_path / "b.db",
                       "--model", "demo", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["added"] == 3 and summary["skipped"] == 5
    by_row = {e["row"]: e["reason"] for e in summary["errors"]}
    assert by_row[2] == "missing id"
    assert "duplicate id 'SKU-0002' (first on row 3)" in by_row[4]
    assert "no such picture" in by_row[5] and "not a picture" in by_row[6]
    assert "not valid JSON" in by_row[8]
    code, out, _ = run(capsys, "index", "--catalog", file, "--db", tmp_path / "b.db")
    assert "skipped row 2: missing id" in out


def test_csv_keeps_numbers_as_numbers(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    shutil.copy(DEMO_PICTURES_DIR / "item-0007.png", tmp_path / "img" / "a.png")
    (tmp_path / "shop.csv").write_text(
        "id,image,title,brand,price,rating,code\n"
        "A1,img/a.png,Tas Kulit,Minuet,199000,4.5,007\n")
    rows, errors = read_catalog(tmp_path / "shop.csv")
    assert not errors
    assert rows[0].fields == {"brand": "Minuet", "price": 199000, "rating": 4.5, "code": 7}
    db = tmp_path / "csv.db"
    assert run(capsys, "index", "--catalog", tmp_path / "shop.csv", "--db", db, "--model",
               "demo", "--json")[0] == 0
    code, out, _ = run(capsys, "search", "tas", "--db", db, "--json", "--where",
                       "price <= 199000")
    hit = json.loads(out)[0]
    # "text" only when the words carried it (in a one-item catalogue the picture does)
    assert set(hit) - {"text"} == {"id", "title", "path", "score", "fields", "matched"}
    assert (hit["id"], hit["title"], hit["fields"]["price"]) == ("A1", "Tas Kulit", 199000)
    assert hit["matched"] and set(hit["matched"]) <= {"picture", "title", "fields"}


# -- search ------------------------------------------------------------------------------
def test_sepatu_lari_ringan_merah_finds_red_running_shoes(searcher):
    top = find(searcher, "sepatu lari ringan merah", k=2)
    assert all((p.fields["category"], p.fields["colour"]) == ("sneaker", "red") for p in top)


@pytest.mark.parametrize("query,field,value", [
    ("Minuet", "brand", "Minuet"), ("nusapella", "brand", "Nusapella"),
])
def test_a_brand_no_picture_shows_is_found(searcher, query, field, value):
    hits = find(searcher, query, k=10)
    assert len(hits) == 10 and all(p.fields[field] == value for p in hits)
    # the picture vectors alone cannot know a brand
    assert sum(p.fields[field] == value for p in find(searcher, query, k=10, mode="picture")) < 6


def test_title_words_and_visual_words_together(searcher):
    from mmsearch.train.demo_catalog import LINES

    shares = []
    for line in [name for pair in LINES for name in pair]:  # words only titles carry
        hits = find(searcher, line.lower(), k=10)
        shares.append(sum(p.title.endswith(line) for p in hits) / 10)
    assert min(shares) >= 0.7 and sum(shares) / len(shares) >= 0.95, shares
    red_dresses = {p["id"] for p in PRODUCTS if (p["category"], p["colour"]) == ("dress", "red")}
    assert {p.key for p in find(searcher, "a red dress", k=len(red_dresses))} == red_dresses


def test_a_brand_and_a_garment_together(searcher, encoder):
    """"Minuet gaun": the brand's gowns first, though only Indonesian titles hold "gaun" and
    one BM25 search of both words ranked other brands' gowns above Minuet's dresses."""
    from mmsearch import fusion

    for words in ("Minuet gaun", "Nusapella tas"):
        brand, garment = words.split()
        category = {"gaun": "dress", "tas": "bag"}[garment]
        wanted = {p["id"] for p in PRODUCTS if (p["brand"], p["category"]) == (brand, category)}
        hits = find(searcher, words, k=len(wanted))
        assert sum(p.key in wanted for p in hits) >= 0.8 * len(wanted), words
        picture = encoder.encode_texts([words])[0].tolist()
        plan = fusion.plan(searcher.index, words, picture, "", "hybrid", False,
                           encode=encoder.encode_texts)
        weight = dict(plan.lexical)  # the brand weighs on BM25, the garment is the pictures'
        assert weight[brand.lower()] > 2 * weight[garment] and plan.picture >= 1.0, plan
    # a word no item's text holds is not searched with BM25 at all
    picture = encoder.encode_texts(["produk Minuet"])[0].tolist()
    plan = fusion.plan(searcher.index, "produk Minuet", picture, "", "hybrid", False)
    assert [w for w, _ in plan.lexical] == ["minuet"]


def test_a_look_a_field_holds_counts_as_a_match(searcher, encoder):
    """"red" is in every red item's `colour` field: its matches count alike, whatever a title
    adds to its BM25 score, and find the line's red items that look least like "red" (a
    Campus Style bag); "merah" only Indonesian titles hold, a brand no picture shows: neither
    weighs as much. Without it the word-by-word fusion had 3 of the 5 in its top 10."""
    from mmsearch import fusion

    words = "campus style red"
    plan = fusion.plan(searcher.index, words, encoder.encode_texts([words])[0].tolist(), "",
                       "hybrid", False, encode=encoder.encode_texts)
    exact = dict(plan.exact)
    assert list(exact) == ["red"] and all(isinstance(w, fusion.Matches) for w in exact), plan
    wanted = {p["id"] for p in PRODUCTS
              if p["title"].endswith("Campus Style") and p["colour"] == "red"}
    assert {p.key for p in find(searcher, words, k=10)} >= wanted
    words = "koleksi lebaran merah"
    plan = fusion.plan(searcher.index, words, encoder.encode_texts([words])[0].tolist(), "",
                       "hybrid", False, encode=encoder.encode_texts)
    assert dict(plan.exact).get("merah", 0) < exact["red"] / 2, plan
    assert not {"koleksi", "lebaran"} & set(dict(plan.exact)), plan


def test_the_benchmark_queries_come_from_the_catalogue():
    """bench/queries/catalog.json is what bench/catalog_queries.py writes from the catalogue's
    fields (nobody picked queries by how they score), halves by the hash rule."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from catalog_queries import build, half, load

    stored = load()
    assert stored == build(PRODUCTS)
    for kind, queries in stored.items():
        assert len(queries) >= 10 and {q["half"] for q in queries} == {"tuning", "heldout"}
        assert all(q["half"] == half(q["query"]) for q in queries), kind


def test_the_fresh_held_out_queries_come_from_the_catalogue():
    """bench/queries/catalog_fresh.json is what bench/catalog_fresh_queries.py writes, and it
    shares no query text with the first set (whose held-out half has been looked at)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from catalog_fresh_queries import OUT, build, old_queries
    from catalog_queries import load

    fresh = load(OUT)
    assert fresh == build(PRODUCTS, old_queries())
    assert set(load()) < set(fresh)  # every kind of the first set, and more
    for kind, queries in fresh.items():
        assert len(queries) >= 10 and {q["half"] for q in queries} == {"fresh"}, kind
        assert not {q["query"] for q in queries} & old_queries(), kind


def test_where_filters_inside_the_search(searcher):
    where = "price < 300000 and brand == 'Minuet'"
    matching = [p for p in PRODUCTS if p["price"] < 300000 and p["brand"] == "Minuet"]
    hits = find(searcher, "sepatu", where=where, k=100)
    assert len(hits) == len(matching)  # every matching item, not a cut-down top-k
    assert {p.key for p in hits} == {p["id"] for p in matching}
    few = find(searcher, "a red dress", where="category in ['bag', 'sandal']", k=10)
    assert len(few) == 10 and all(p.fields["category"] in ("bag", "sandal") for p in few)


def test_like_and_dislike_recommend(searcher):
    dress = next(p for p in PRODUCTS if p["category"] == "dress")
    same = {p["id"] for p in PRODUCTS if p["id"] != dress["id"]
            and (p["category"], p["colour"]) == (dress["category"], dress["colour"])}
    hits = find(searcher, like=[dress["id"]], k=10)
    assert dress["id"] not in [p.key for p in hits]  # what you liked is not recommended back
    assert same <= {p.key for p in hits[:len(same) + 2]}  # the same garment in the same colour
    dress = dress["id"]
    shoe = next(p["id"] for p in PRODUCTS if p["category"] == "sneaker")
    mixed = find(searcher, like=[dress], dislike=[shoe], k=30)
    assert not any(p.fields["category"] == "sneaker" for p in mixed[:10])
    from mmsearch.search import QueryError

    with pytest.raises(QueryError, match="no item with id 'NOPE'"):
        find(searcher, like=["NOPE"])


def test_a_picture_query_searches_the_pictures(searcher):
    from PIL import Image

    example = Image.open(DEMO_PICTURES_DIR / "item-0123.png").convert("RGB")
    assert find(searcher, image=example, k=1)[0].key == "SKU-0123"


# -- CLI and app ---------------------------------------------------------------------------
def test_cli_refusals_are_one_line(demo_catalog, tmp_path, capsys):
    db = demo_catalog.location.db
    for argv, words in [(["search", "tas", "--where", "price <"], "expected a number"),
                        (["search", "tas", "--where", "price < 3; drop"], "cannot read"),
                        (["search", "tas", "--not", "red"], "--dislike"),
                        (["search", "tas", "--in", "/x"], "--where"),
                        (["index", str(tmp_path)], "is a product catalogue"),
                        (["duplicates"], "is a product catalogue")]:
        code, out, err = run(capsys, *argv, "--db", db)
        assert code == 1 and words in err and err.count("\n") == 1, (argv, err)
    code, out, _ = run(capsys, "search", "Minuet", "-k", "3", "--db", db)
    lines = out.splitlines()
    assert lines[0].split() == ["rank", "score", "id", "price", "title"] and len(lines) == 4


def test_like_on_a_folder_index_is_refused(demo_index, capsys):
    code, _, err = run(capsys, "search", "--like", "x", "--db", demo_index.location.db)
    assert code == 1 and "catalogues" in err


def test_app_shows_products(demo_catalog, encoder):
    from test_app import free_port
    from ui.app import launch

    from mmsearch.config import ASSETS_DIR
    from ui.security import IndexingPolicy

    port = free_port()
    app = launch(Searcher(demo_catalog, encoder).warm(), port=port, block=False,
                 auth=[("ana", "s3cret")], indexing=IndexingPolicy.of([ASSETS_DIR]))
    try:
        c = Client(f"http://127.0.0.1:{port}/", auth=("ana", "s3cret"), verbose=False)
        gallery = c.predict("sepatu lari ringan merah", 3, api_name="/search_text")
        score, title, price = gallery[0]["caption"].split(" · ")
        assert float(score) > 0 and price.startswith("Rp ") and "Merah" in title or "Red" in title
        filtered = c.predict(text="Minuet", example=None, where="price < 200000", k=5,
                             api_name="/search")
        assert all(int(i["caption"].split("Rp ")[1].replace(".", "")) < 200000 for i in filtered)
        similar = c.predict("SKU-0123", 4, api_name="/similar")
        assert len(similar) == 4
        line, stats = c.predict(api_name="/rescan")
        assert line.startswith("added 0, updated 0, removed 0, unchanged 300")
        assert "**300** products" in stats
    finally:
        app.close()
