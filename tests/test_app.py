"""The Gradio app, served for real on localhost and called through gradio_client."""

from __future__ import annotations

import os
import socket

import pytest
from gradio_client import Client, handle_file

from conftest import demo_files, label_of
from mmsearch.search import Searcher
from ui.app import launch
from ui.handlers import caption


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(demo_index, encoder):
    searcher = Searcher(demo_index, encoder).warm()
    port = free_port()
    app = launch(searcher, host="127.0.0.1", port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def names(gallery) -> list[str]:
    return [os.path.basename(item["image"]) for item in gallery]


def test_search_text_endpoint(client):
    gallery = client.predict("a red sneaker", 6, api_name="/search_text")
    assert len(gallery) == 6
    first = gallery[0]
    assert first["caption"].split(" · ")[1] in {f.name for f in demo_files()}
    top = label_of(first["caption"].split(" · ")[1])
    assert (top["class"], top["colour"]) == ("sneaker", "red")
    score = float(first["caption"].split(" · ")[0])
    assert 0 < score <= 1


def test_search_image_endpoint(client):
    example = demo_files(300)[123]
    gallery = client.predict(handle_file(str(example)), 4, api_name="/search_image")
    assert len(gallery) == 4
    assert gallery[0]["caption"].endswith(example.name)
    assert float(gallery[0]["caption"].split(" · ")[0]) > 0.99


def test_search_similar_endpoint(client, demo_index):
    path = next(demo_index.rows_under(demo_index.roots[0]))["path"]
    hits = client.predict(path, 5, api_name="/search_similar")
    assert hits[0]["file"] == path and hits[0]["score"] > 0.99
    assert len(hits) == 5


def test_bad_requests_are_clear_errors(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="empty query"):
        client.predict("   ", 5, api_name="/search_text")
    with pytest.raises(AppError, match="not in the index"):
        client.predict("/etc/passwd", 5, api_name="/search_similar")


def test_captions_carry_score_and_file_name():
    from mmsearch.index import Hit

    assert caption(Hit("/x/y/photo one.jpg", 0.31234)) == "0.312 · photo one.jpg"


def test_gallery_gets_small_previews_not_originals(client):
    from PIL import Image

    gallery = client.predict("a bag", 3, api_name="/search_text")
    for item in gallery:
        with Image.open(item["image"]) as img:
            assert max(img.size) <= 384
        assert os.path.basename(item["image"]) != item["caption"].split(" · ")[1]


def test_app_serves_previews_only(app_url, client, demo_index):
    """Files are served from the preview folder only: not system files, not traversal, not
    the original pictures, not files that were never indexed."""
    import urllib.error
    import urllib.request

    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(app_url + path, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    gallery = client.predict("a red sneaker", 1, api_name="/search_text")
    preview = gallery[0]["image"]
    served = [u for u in [gallery[0].get("url")] if u]
    if served:
        assert status(served[0].replace(app_url, "")) == 200
    original = next(demo_index.rows_under(demo_index.roots[0]))["path"]
    root = demo_index.roots[0]
    secret = os.path.join(root, "never-indexed.txt")
    with open(secret, "w") as f:
        f.write("private")
    for path in ["/etc/passwd", original, secret, root + "/../" + os.path.basename(root)
                 + "/never-indexed.txt"]:
        for prefix in ["gradio_api/file=", "file="]:
            assert status(prefix + path) in (403, 404), (prefix, path)
    for encoded in ["gradio_api/file=%2Fetc%2Fpasswd", "gradio_api/file=..%2F..%2F..%2Fetc%2Fpasswd",
                    "gradio_api/file=/etc/%2e%2e/etc/passwd"]:
        assert status(encoded) in (400, 403, 404), encoded
    assert os.path.exists(preview)


def test_uploads_that_are_not_pictures_are_clear_errors(client, app_url, tmp_path):
    from gradio_client.exceptions import AppError

    text = tmp_path / "notes.png"
    text.write_text("not a picture at all")
    with pytest.raises(AppError, match="cannot be used|not a picture|unrecognised"):
        client.predict(handle_file(str(text)), 5, api_name="/search_image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(AppError, match="empty|no picture"):
        client.predict(handle_file(str(empty)), 5, api_name="/search_image")
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\0" * (21 * 2**20))  # over the 20 MB upload limit
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(handle_file(str(huge)), 5, api_name="/search_image")
    import httpx  # and the server refuses it too, whatever the client checks

    response = httpx.post(app_url + "gradio_api/upload", timeout=60,
                          files={"files": ("huge.png", huge.read_bytes(), "image/png")})
    assert response.status_code == 413
    # and the app still answers
    assert client.predict("a bag", 2, api_name="/search_text")


def test_auth_values():
    from ui.security import parse_auth

    assert parse_auth("ana:s3cret:x") == [("ana", "s3cret:x")]
    with pytest.raises(ValueError, match="user:password"):
        parse_auth("nopassword")


def test_auth_is_enforced_over_http(demo_index, encoder):
    searcher = Searcher(demo_index, encoder)
    port = free_port()
    app = launch(searcher, port=port, block=False, auth=[("ana", "s3cret")])
    url = f"http://127.0.0.1:{port}/"
    try:
        with pytest.raises(Exception):
            Client(url, verbose=False).predict("a bag", 2, api_name="/search_text")
        authed = Client(url, auth=("ana", "s3cret"), verbose=False)
        assert len(authed.predict("a bag", 2, api_name="/search_text")) == 2
    finally:
        app.close()


def test_search_endpoint_composes_words_without_and_filters(client, demo_index):
    def labels(gallery):
        return [label_of(item["caption"].split(" · ")[1]) for item in gallery]

    plain = labels(client.predict(text="a dress", without="", example=None, k=10,
                                  api_name="/search"))
    without = labels(client.predict(text="a dress", without="red, black", example=None, k=10,
                                    api_name="/search"))
    assert sum(lab["colour"] == "red" for lab in plain) >= 2
    assert not any(lab["colour"] in ("red", "black") for lab in without)
    cut = client.predict(text="a dress", without="", example=None, k=50, min_score=0.6,
                         api_name="/search")
    assert 0 < len(cut) < 50
    assert all(float(item["caption"].split(" · ")[0]) >= 0.6 for item in cut)
    none = client.predict(text="a dress", without="", example=None, since="2000",
                          until="2000-01", api_name="/search")
    assert none == []
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="cannot read the date"):
        client.predict(text="a dress", without="", example=None, since="yesterday",
                       api_name="/search")


def test_duplicates_endpoint_returns_groups(client):
    groups = client.predict(0.9999, api_name="/duplicates")
    assert isinstance(groups, list)
    for group in groups:
        assert len(group) >= 2 and all(set(m) == {"file", "score"} for m in group)
        assert all(m["score"] >= 0.9999 - 1e-6 for m in group)
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="greater than maximum"):
        client.predict(1.5, api_name="/duplicates")


def test_feedback_marks_move_between_lists():
    from ui.handlers import Handlers

    liked, disliked = Handlers.mark("/p/a.png", [], ["/p/a.png"], more=True)
    assert (liked, disliked) == (["/p/a.png"], [])
    liked, disliked = Handlers.mark("/p/b.png", liked, disliked, more=False)
    assert (liked, disliked) == (["/p/a.png"], ["/p/b.png"])
    assert Handlers.feedback_markdown(liked, disliked) == "more like: a.png · less like: b.png"
    import gradio as gr

    with pytest.raises(gr.Error, match="click a result"):
        Handlers.mark("", liked, disliked, more=True)


def test_index_tab_adds_a_folder_rescans_and_shows_stats(make_index, encoder, tmp_path):
    import shutil

    index = make_index("managed.db")
    folder = tmp_path / "new pictures"
    folder.mkdir()
    for f in demo_files(12):
        shutil.copy(f, folder / f.name)
    port = free_port()
    from ui.security import IndexingPolicy

    app = launch(Searcher(index, encoder), port=port, block=False, auth=[("ana", "s3cret")],
                 indexing=IndexingPolicy.of([str(tmp_path)]))
    try:
        c = Client(f"http://127.0.0.1:{port}/", auth=("ana", "s3cret"), verbose=False)
        line, stats, _ = c.predict(str(folder), api_name="/index_folder")
        assert line.startswith("added 12, updated 0, removed 0")
        assert "**12** pictures" in stats and "last indexed 20" in stats and str(folder) in stats
        gallery = c.predict("a bag", 3, api_name="/search_text")
        assert len(gallery) == 3
        shutil.copy(demo_files(13)[-1], folder / "late.png")
        (folder / demo_files(1)[0].name).unlink()
        line, stats, _ = c.predict(api_name="/rescan")
        assert line.startswith("added 1, updated 0, removed 1, unchanged 11")
        assert "**12** pictures" in stats
        from gradio_client.exceptions import AppError

        with pytest.raises(AppError, match="cannot be used from the app"):
            c.predict(str(tmp_path / "nowhere"), api_name="/index_folder")
    finally:
        app.close()
