"""The Gradio app: lays out the page and calls mmsearch.Searcher; no search logic here.

The browser gets small previews (mmsearch.thumbnails), never the original files, and the
only folder the app serves files from is the preview folder.
"""

from __future__ import annotations

import os
import sys

import gradio as gr

from mmsearch.config import IndexLocation
from mmsearch.index import Hit, IndexError_
from mmsearch.search import QueryError, Searcher
from mmsearch.thumbnails import Thumbnails, thumbnail_dir

DEFAULT_K = 24
MAX_UPLOAD = "20mb"


def caption(hit: Hit) -> str:
    return f"{hit.score:.3f} · {os.path.basename(hit.path)}"


def stats_markdown(searcher: Searcher) -> str:
    s = searcher.index.stats()
    folders = ", ".join(f"`{r}`" for r in s["roots"]) or "none yet"
    return (f"**{s['images']}** pictures · model **{s['model']}** · index `{s['location']}` · "
            f"folders: {folders}")


class Handlers:
    """What the page's events do, as plain functions (tested without a browser)."""

    def __init__(self, searcher: Searcher, thumbs: Thumbnails):
        self.searcher = searcher
        self.thumbs = thumbs

    def gallery(self, hits: list[Hit]) -> tuple[list[tuple[str, str]], list[str]]:
        """(gallery items, the result paths in the same order)."""
        items, paths = [], []
        for h in hits:
            preview = self.thumbs.ensure(h.path, h.hash)
            if preview is not None:  # deleted or broken since indexing: leave it out
                items.append((str(preview), caption(h)))
                paths.append(h.path)
        return items, paths

    def _run(self, search, *args):
        try:
            return self.gallery(search(*args))
        except QueryError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def search_text(self, query: str, k: float):
        return self._run(self.searcher.search_text, query or "", int(k))

    def search_image(self, image: str | None, k: float):
        if not image:
            raise gr.Error("no picture: drop an example picture first", print_exception=False)
        return self._run(self.searcher.search_image, image, int(k))

    def search_similar(self, path: str, k: float):
        return self._run(self.searcher.search_similar, path or "", int(k))

    def select(self, paths: list[str], k: float, index: int):
        """A click on result `index`: show its path and search for similar pictures."""
        if not paths or not 0 <= index < len(paths):
            raise gr.Error("that result is gone; search again", print_exception=False)
        items, new_paths = self.search_similar(paths[index], k)
        return items, new_paths, paths[index]


def build_app(searcher: Searcher, thumbs: Thumbnails) -> gr.Blocks:
    h = Handlers(searcher, thumbs)

    with gr.Blocks(title="mmsearch") as app:
        gr.Markdown("## mmsearch — find pictures by words or by example")
        stats = gr.Markdown(stats_markdown(searcher))
        with gr.Row():
            with gr.Column(scale=3):
                query = gr.Textbox(label="Describe the picture",
                                   placeholder="a red dress · sepatu lari ringan · a black bag",
                                   autofocus=True)
                with gr.Row():
                    go = gr.Button("Search", variant="primary")
                    k = gr.Slider(1, 100, value=DEFAULT_K, step=1, label="Results")
            with gr.Column(scale=1):
                # gr.File, not gr.Image: the picture is decoded by mmsearch, so a bad upload
                # gets mmsearch's one-line reason instead of a component error
                example = gr.File(label="…or drop an example picture", type="filepath",
                                  file_types=["image", ".heic", ".heif"], height=120)
        gallery = gr.Gallery(label="Results (click one to find similar pictures)",
                             elem_id="results", columns=6, height="auto", allow_preview=False,
                             object_fit="contain")
        selected = gr.Textbox(label="Selected picture", interactive=False, buttons=["copy"])
        paths = gr.State([])

        go.click(h.search_text, [query, k], [gallery, paths], api_name="search_text")
        query.submit(h.search_text, [query, k], [gallery, paths], api_name=False)
        example.upload(h.search_image, [example, k], [gallery, paths], api_name="search_image")

        def on_select(result_paths: list[str], k: float, evt: gr.SelectData):
            return h.select(result_paths, k, evt.index)

        gallery.select(on_select, [paths, k], [gallery, paths, selected], api_name=False)

        def search_similar(path: str, k: int = DEFAULT_K) -> list[dict]:
            """Pictures like an indexed one (what a click does), as [{"file", "score"}].
            ("file", not "path": gradio_client would take a "path" dict for a download.)"""
            try:
                return [{"file": hit.path, "score": round(hit.score, 6)}
                        for hit in searcher.search_similar(path, int(k))]
            except QueryError as exc:
                raise gr.Error(str(exc), print_exception=False) from None

        gr.api(search_similar, api_name="search_similar")
        app.load(lambda: stats_markdown(searcher), None, stats, api_name=False)
    return app


def parse_auth(value: str) -> list[tuple[str, str]]:
    """`user:password`, or a file of such lines (blank lines and #comments ignored)."""
    lines = [value]
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    pairs = []
    for line in lines:
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise ValueError("--auth takes user:password or a file of user:password lines")
        pairs.append((user, password))
    return pairs


def launch(searcher: Searcher, host: str = "127.0.0.1", port: int = 7860, block: bool = True,
           auth: list[tuple[str, str]] | None = None, share: bool = False) -> gr.Blocks:
    thumbs = Thumbnails(thumbnail_dir(searcher.index.location))
    thumbs.folder.mkdir(parents=True, exist_ok=True)
    app = build_app(searcher, thumbs)
    app.queue(default_concurrency_limit=4)
    app.launch(server_name=host, server_port=port, allowed_paths=[str(thumbs.folder)],
               max_file_size=MAX_UPLOAD, prevent_thread_lock=not block, show_error=True,
               quiet=not block, auth=auth or None, share=share)
    return app


def serve(location: IndexLocation, host: str = "127.0.0.1", port: int = 7860,
          auth: list[tuple[str, str]] | None = None, share: bool = False) -> None:
    """Open the index, warm model and collection, then serve until interrupted."""
    try:
        searcher = Searcher.open(location)
    except IndexError_ as exc:
        print(f"mmsearch: error: {exc}", file=sys.stderr)
        raise SystemExit(1)
    print(f"loading {searcher.index.model.label} …", file=sys.stderr)
    searcher.warm()
    print(f"mmsearch app on http://{host}:{port}  ({searcher.index.count()} pictures)",
          file=sys.stderr)
    launch(searcher, host, port, block=True, auth=auth, share=share)
