"""A photo's own words (issue 16, first part): its file and folder names and its camera, stored
as the item's text and fields, derived again for an older index without re-embedding, and
each result saying which signal carried it. Real pictures with real EXIF written by Pillow, the real
model, a real Milvus Lite index."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from conftest import demo_files
from indexer.pipeline import index_paths
from mmsearch.photo_text import SIGNALS_VERSION, camera_text, name_fields, words_of
from mmsearch.search import MATCHED, Query, Searcher
from mmsearch.stores import open_index
from mmsearch.config import IndexLocation
from test_upgrade import old_folder_index


def test_names_keep_the_words_a_person_would_type():
    assert words_of("IMG_2024_bali-sunset") == ["bali", "sunset"]
    assert words_of("BaliSunset2019") == ["bali", "sunset"]
    assert words_of("PXL_20230101_123456789.MP") == []
    assert words_of("Café_de_Flore") == ["café", "de", "flore"]
    assert camera_text("Canon", "Canon EOS R6") == "Canon EOS R6"
    assert camera_text("Apple\x00", "iPhone 13") == "Apple iPhone 13"


def test_folder_words_start_at_the_indexed_folder(tmp_path):
    root = tmp_path / "Pictures"
    (root / "Liburan" / "Lombok").mkdir(parents=True)
    picture = root / "Liburan" / "Lombok" / "IMG_2024_bali-sunset.jpg"
    assert name_fields(str(picture), str(root)) == {"name": "bali sunset",
                                                     "folders": "pictures liburan lombok"}


def jpeg_with_exif(src, out, make="", model="", gps=None):
    exif = Image.Exif()
    if make:
        exif[0x010F], exif[0x0110] = make, model
    if gps:
        exif[0x8825] = gps
    Image.open(src).convert("RGB").resize((224, 224)).save(out, exif=exif)


@pytest.fixture
def trip(tmp_path):
    """Twelve demo pictures, two of them in Liburan/Lombok with telling names, one taken with
    a Canon that has a GPS fix (Yogyakarta)."""
    root = tmp_path / "Pictures"
    (root / "Liburan" / "Lombok").mkdir(parents=True)
    files = demo_files(12)
    for f in files[:9]:
        shutil.copy2(f, root / f.name)
    shutil.copy2(files[9], root / "Liburan" / "Lombok" / "IMG_2024_pantai-senggigi.png")
    shutil.copy2(files[10], root / "Liburan" / "Lombok" / "IMG_2024_gili-trawangan.png")
    jpeg_with_exif(files[11], root / "DSC_0042.jpg", "Canon", "Canon EOS R6",
                   {1: "S", 2: (7.0, 47.0, 30.0), 3: "E", 4: (110.0, 22.0, 0.0)})
    return root


def test_names_folders_and_camera_are_stored_as_the_photos_text(trip, make_index, encoder):
    index = make_index()
    index_paths([str(trip)], index, encoder, progress=False)
    canon, beach = str(trip / "DSC_0042.jpg"), \
        str(trip / "Liburan" / "Lombok" / "IMG_2024_pantai-senggigi.png")
    stored = index.get([canon, beach], ("fields", "text"))
    assert stored[canon]["fields"]["camera"] == "Canon EOS R6"
    assert stored[canon]["fields"]["signals"] == SIGNALS_VERSION
    assert (stored[canon]["fields"]["lat"], stored[canon]["fields"]["lon"]) == (
        pytest.approx(-7.791667), pytest.approx(110.366667))
    assert stored[beach]["fields"]["name"] == "pantai senggigi"
    assert stored[beach]["text"] == "pantai senggigi pictures liburan lombok"
    assert index.has_text_search  # BM25 over the photos' texts (mmsearch.words)
    # words no photo's text holds: the picture search alone, and every result says so
    plain = Searcher(index, encoder).search(Query.of(texts=["a photo of a sneaker"]), 5)
    assert len(plain) == 5 and all(h.matched == ("picture",) for h in plain)
    for h in plain:
        assert set(h.matched) <= set(MATCHED["folder"])
        assert json.loads(json.dumps(h.to_json()))["matched"] == ["picture"]


def test_an_older_index_gets_its_text_without_decoding_or_embedding(tmp_path, encoder,
                                                                   monkeypatch):
    folder = tmp_path / "Liburan"
    folder.mkdir()
    places = ["senggigi", "kuta", "sanur", "ubud", "lovina", "amed"]
    files = []
    for place, f in zip(places, demo_files(6)):
        files.append(folder / f"pantai_{place}.png")
        shutil.copy2(f, files[-1])
    db = tmp_path / "old.db"
    old_folder_index(db, encoder, files, real_facts=True)  # schema 1: vectors, no text
    with open_index(IndexLocation.resolve(db=db)) as index:
        monkeypatch.setattr(type(encoder), "encode_pixels", lambda *a, **k: pytest.fail(
            "a picture was embedded again"))
        summary = index_paths([str(folder)], index, encoder, progress=False)
        assert (summary.added, summary.updated, summary.unchanged) == (0, 0, 6)
        stored = index.get([str(f) for f in files], ("fields",))
        assert [stored[str(f)]["fields"]["name"] for f in files] == [f"pantai {p}" for p in places]
        again = index_paths([str(folder)], index, encoder, progress=False)
        assert again.unchanged == 6  # and now it is up to date: nothing read at all


def first_keys(index, encoder, words, k=5):
    return Searcher(index, encoder).search(Query.of(texts=[words]), k)


def test_a_photo_is_found_by_its_name_its_folder_and_its_camera(trip, make_index, encoder):
    index = make_index()
    index_paths([str(trip)], index, encoder, progress=False)
    lombok = trip / "Liburan" / "Lombok"
    by_name = first_keys(index, encoder, "senggigi")
    assert by_name[0].path == str(lombok / "IMG_2024_pantai-senggigi.png")
    assert "name" in by_name[0].matched and by_name[0].snippet == "name: pantai senggigi"
    assert by_name[0].to_json()["text"] == "name: pantai senggigi"
    by_folder = first_keys(index, encoder, "lombok")
    assert {h.path for h in by_folder[:2]} == {str(p) for p in lombok.iterdir()}
    assert all(h.snippet == "folders: pictures liburan lombok" for h in by_folder[:2])
    by_camera = first_keys(index, encoder, "canon eos")
    assert by_camera[0].path == str(trip / "DSC_0042.jpg") and "camera" in by_camera[0].matched
    by_place = first_keys(index, encoder, "Yogyakarta")  # from its GPS (mmsearch.places)
    assert by_place[0].path == str(trip / "DSC_0042.jpg") and "place" in by_place[0].matched
    assert by_place[0].snippet.startswith("place: Yogyakarta")
    # Indonesian and English function words match nothing by themselves
    assert all(h.matched == ("picture",) for h in first_keys(index, encoder, "di the yang"))


def test_a_removed_or_renamed_photo_takes_its_words_with_it(trip, make_index, encoder):
    from mmsearch.words import WORDS, text_id

    index = make_index()
    index_paths([str(trip)], index, encoder, progress=False)
    gili = trip / "Liburan" / "Lombok" / "IMG_2024_gili-trawangan.png"
    old_text = index.get([str(gili)], ("text",))[str(gili)]["text"]
    gili.rename(gili.with_name("IMG_2024_pulau-kecil.png"))
    index_paths([str(trip)], index, encoder, progress=False)
    assert not index.client.get(WORDS, ids=[text_id(old_text)])  # no photo holds it now
    assert not [h for h in first_keys(index, encoder, "gili trawangan") if "name" in h.matched]
    assert first_keys(index, encoder, "pulau kecil")[0].path.endswith("IMG_2024_pulau-kecil.png")
    # the folder's text is still held by the other Lombok picture: it stays
    shared = index.get([str(trip / "Liburan" / "Lombok" / "IMG_2024_pantai-senggigi.png")],
                       ("text",))
    assert index.client.get(WORDS, ids=[text_id(next(iter(shared.values()))["text"])])


def test_an_index_made_before_words_were_searched_finds_them_once_opened(trip, tmp_path,
                                                                          encoder):
    from mmsearch.words import WORDS

    db = tmp_path / "before.db"
    location = IndexLocation.resolve(db=db)
    with open_index(location, create_model=encoder.spec, dim=encoder.dim) as index:
        index_paths([str(trip)], index, encoder, progress=False)
        index.client.drop_collection(WORDS)  # as an index of the previous release was
    with open_index(location) as index:
        assert index.has_words
        assert {h.path for h in first_keys(index, encoder, "lombok")[:2]} == {
            str(p) for p in (trip / "Liburan" / "Lombok").iterdir()}


def test_the_photos_of_the_best_matching_texts_come_first(tmp_path, make_index, encoder):
    """BM25 hands on 64 texts; the photos of the best ones must not be lost among the photos
    of the others, with or without a picture vector ordering them (mode text, fusion)."""
    import numpy as np

    from mmsearch.index import SPARSE
    from mmsearch.items import Item

    rng = np.random.default_rng(0)
    near = rng.normal(size=encoder.dim).astype(np.float32)
    near /= np.linalg.norm(near)
    sunsets = {7, 150, 333}
    items = []
    for i in range(400):  # 100 texts holding "lombok" (4 photos each), 3 also "sunset"
        v = rng.normal(size=encoder.dim).astype(np.float32)
        v = -near if i in sunsets else v / np.linalg.norm(v)  # the sunsets look least alike
        fields = {"folders": "pictures lombok", "camera": f"Camera {i % 100}"}
        items.append(Item(path=str(tmp_path / "Lombok" / f"p{i}.jpg"), size=1, mtime=1.0,
                          hash=str(i), fields=({"name": "sunset"} if i in sunsets else {})
                          | fields, image_vector=v))
    index = make_index()
    index.upsert(items)
    index.flush()
    best = {str(tmp_path / "Lombok" / f"p{i}.jpg") for i in sunsets}
    assert {k for k, _ in index.ranked_keys(SPARSE, "lombok sunset", 20)[:3]} == best
    assert {k for k, _ in index.ranked_keys(SPARSE, "lombok sunset", 20, near=near)[:3]} == best
    assert {h.key for h in index.search_many(["lombok sunset"], 3, "", SPARSE)[0]} == best


def test_a_text_still_held_stays_when_a_common_text_fills_the_answer(tmp_path, make_index,
                                                                     encoder, monkeypatch):
    """Which texts photos still hold is read HELD_ROWS rows at a time (16,384: a Camera Roll
    at 1M photos holds more of one text); a text those rows crowd out must not be dropped."""
    import numpy as np

    from mmsearch import words
    from mmsearch.items import Item

    monkeypatch.setattr(words, "HELD_ROWS", 5)
    v = np.ones(encoder.dim, np.float32) / np.sqrt(encoder.dim)

    def photo(folder: str, name: str) -> Item:
        return Item(path=str(tmp_path / folder / name), size=1, mtime=1.0, hash=name,
                    fields={"folders": folder}, image_vector=v)
    index = make_index()
    index.upsert([photo("camera roll", f"IMG_{i}.jpg") for i in range(60)]
                 + [photo("gili", "IMG_a.jpg"), photo("gili", "IMG_b.jpg")])
    index.delete([str(tmp_path / "camera roll" / "IMG_0.jpg"),
                  str(tmp_path / "gili" / "IMG_a.jpg")])
    index.flush()
    assert [h.key for h in index.search_many(["gili"], 5, "", words.SPARSE)[0]] == [
        str(tmp_path / "gili" / "IMG_b.jpg")]


def test_a_folder_fusion_skips_only_searches_that_cannot_change_its_top(tmp_path, make_index,
                                                                        encoder, monkeypatch):
    """fusion.fuse_photos (the folder's pictures + words, fewer engine calls) must give what
    the general fusion gives, hit for hit and score for score: with words levels it skips
    (k small, BM25 weighing most), levels it must search (k beyond the best level, or the
    pictures weighing most) and hits holding no query word (their rows fetched after)."""
    import numpy as np

    from mmsearch import fusion, words
    from mmsearch.index import IMAGE_VECTOR, SPARSE
    from mmsearch.items import Item

    rng = np.random.default_rng(1)
    items = []
    for i in range(450):  # 100 texts holding "lombok" (4 photos each), 3 also "sunset"; 50 none
        v = rng.normal(size=encoder.dim).astype(np.float32)
        fields = {"folders": "pictures lombok", "camera": f"Camera {i % 100}"} if i < 400 \
            else {"folders": "pictures"}
        items.append(Item(path=str(tmp_path / "Lombok" / f"p{i}.jpg"), size=1, mtime=1.0,
                          hash=str(i), fields=({"name": "sunset"} if i in (7, 150, 333) else {})
                          | fields, image_vector=v / np.linalg.norm(v)))
    index = make_index()
    index.upsert(items)
    index.flush()
    searched = []
    more = words.Found.more
    monkeypatch.setattr(words.Found, "more", lambda self, *a, **kw: (
        searched.append(self.words), more(self, *a, **kw)))
    q = encoder.encode_texts(["a sunset over the sea"])[0].tolist()
    calls = {}
    for text in ("lombok sunset", "lombok", "sunset"):
        for weights in ((0.1, 0.9), (0.9, 0.1), (1.0, 0.01)):
            for k in (1, 3, 20, 60):
                searched.clear()
                fast = fusion.fuse(index, [(IMAGE_VECTOR, q), (SPARSE, text)], k, "", weights)
                calls[text, weights, k] = len(searched)
                full = fusion.fuse(index, [(SPARSE, text), (IMAGE_VECTOR, q)], k, "",
                                   weights[::-1])  # another order: the general fusion
                assert [(h.key, h.score, h.matched, h.path, h.hash) for h in fast] == \
                    [(h.key, h.score, h.matched, h.path, h.hash) for h in full]
                assert len(fast) == k
    assert calls["lombok sunset", (0.1, 0.9), 3] == 1  # the sunsets' level only
    assert calls["lombok sunset", (0.1, 0.9), 20] == 2  # 3 sunsets cannot fill a top 20
    assert calls["lombok sunset", (1.0, 0.01), 3] == 2  # the pictures could lift any photo


def test_a_folder_whose_photos_have_no_words_is_still_searched(tmp_path, make_index, encoder):
    """No text BM25 could match (an empty index; one picture indexed by its own path, named
    IMG_0001; a folder named by a stop word): a text query is the picture search, not the
    engine's failure on empty BM25 statistics."""
    empty = make_index("empty.db")
    assert Searcher(empty, encoder).search(Query.of(texts=["a bag"]), 5) == []
    lone = tmp_path / "lone" / "IMG_0001.jpg"
    lone.parent.mkdir()
    shutil.copy(demo_files(1)[0], lone)
    stop = tmp_path / "di"  # Indonesian "in": a stop word, so its photos' text says nothing
    stop.mkdir()
    shutil.copy(demo_files(2)[1], stop / "IMG_0002.jpg")
    for name, paths, expected in (("lone.db", [str(lone)], str(lone)),
                                  ("stop.db", [str(stop)], str(stop / "IMG_0002.jpg"))):
        index = make_index(name)
        index_paths(paths, index, encoder, progress=False, ocr=False)
        hits = Searcher(index, encoder).search(Query.of(texts=["a bag"]), 5)
        assert [h.path for h in hits] == [expected]
        assert hits[0].matched == ("picture",)
