"""The Gradio app: lays out the page and calls mmsearch.Searcher; no search logic here.

The browser gets small previews (mmsearch.thumbnails), never the original files, and the
only folder the app serves files from is the preview folder.
"""

from __future__ import annotations

import atexit
import sys
import threading

import gradio as gr
from starlette.middleware import Middleware
from starlette.routing import Mount

from mmsearch import resident

from mmsearch.config import IndexLocation
from mmsearch.filters import ORIENTATIONS
from mmsearch.engine import IndexProblem
from mmsearch.search import QueryError, Searcher
from mmsearch.stores import open_searcher
from mmsearch.thumbnails import Thumbnails, thumbnail_dir
from ui.duplicates import duplicates_tab
from ui.handlers import ANY, Handlers, stats_markdown
from ui.media import player_html, video_route
from ui.api import build_api
from ui.products import CatalogHandlers, products_tab
from ui.security import Guard, HostPolicy, IndexingPolicy, private_temp_dir
from ui.uploads import QueryPictures
from ui.page import FolderPage, chip_clearer, page_words
from ui.results import PAGE, error_html, thumb_url
from ui.style import CLOSE_PREVIEW, CSS, PAGE_JS, theme
from ui.widgets import (DEFAULT_K, IN_ORDER, api_parts, query_form, results_panel,
                        script_endpoints, wire_results)

MAX_UPLOAD = "20mb"


# Gradio's copies of served previews and leftover uploads: swept hourly (age one hour).
SWEEP = (3600, 3600)


def build_app(searcher: Searcher, thumbs: Thumbnails,
              indexing: IndexingPolicy = IndexingPolicy(),
              pictures: QueryPictures | None = None,
              one_run: threading.Lock | None = None) -> gr.Blocks:
    """A folder index gets Search, Duplicates and Index tabs; a catalogue Products and Index.
    `one_run`: the lock that keeps indexing to one run at a time (shared with the API)."""
    pictures = pictures or QueryPictures()
    if searcher.index.kind == "catalog":
        return _catalog_app(CatalogHandlers(searcher, thumbs, indexing, pictures, one_run))
    h = Handlers(searcher, thumbs, indexing, pictures, one_run)
    with gr.Blocks(title="mmsearch", delete_cache=SWEEP) as app:
        gr.Markdown("## mmsearch — find pictures by words or by example", elem_id="app-title")
        with gr.Tabs():
            folder = _search_tab(h)
            duplicates_tab(h)
            stats = _index_tab(h, folder)

        def search_similar(path: str, k: int = DEFAULT_K) -> list[dict]:
            """Pictures like an indexed one, as [{"file", "score"}].
            ("file", not "path": gradio_client would take a "path" dict for a download.)"""
            try:
                hits = searcher.search_similar(path, int(k))
            except QueryError as exc:
                h.fail(exc)
            return [{"file": hit.path, "score": round(hit.score, 6)} for hit in hits]

        gr.api(search_similar, api_name="search_similar")
        app.load(lambda: stats_markdown(searcher), None, stats, api_name=False)
    return app


def _catalog_app(h: CatalogHandlers) -> gr.Blocks:
    with gr.Blocks(title="mmsearch — products", delete_cache=SWEEP) as app:
        gr.Markdown("## mmsearch — find products by words, pictures and what you liked",
                    elem_id="app-title")
        with gr.Tabs():
            products_tab(h)
            stats = _index_tab(h, None)
        app.load(lambda: stats_markdown(h.searcher), None, stats, api_name=False)
    return app


def _search_tab(h: Handlers) -> gr.Dropdown:
    """One search bar (words, "without" words, an example picture), the filters, then the
    results with their header and chips; the opened picture carries its actions."""
    page = FolderPage(h)
    with gr.Tab("Search"):
        form = query_form("Describe the picture", "a red dress · sepatu lari ringan · a black bag",
                          {"label": "Without (comma-separated)", "placeholder": "people, red",
                           "elem_id": "without"})
        query, without = form.query, form.second
        with gr.Accordion("Filters", open=False, elem_id="filters"):
            filter_error = gr.HTML("", elem_id="filter-error")
            with gr.Row():
                folder = gr.Dropdown(label="In folder", choices=["", *h.searcher.index.roots],
                                     value="", allow_custom_value=True, elem_id="folder")
                since = gr.Textbox(label="Since (YYYY[-MM[-DD]])", placeholder="2024-05",
                                   value="", max_lines=1, elem_id="since")
                until = gr.Textbox(label="Until", placeholder="2024-12-31", value="", max_lines=1,
                                   elem_id="until")
            with gr.Row():
                orientation = gr.Radio([ANY, *ORIENTATIONS], value=ANY, label="Orientation")
                min_width = gr.Number(label="Min width (px)", value=0, precision=0)
                min_height = gr.Number(label="Min height (px)", value=0, precision=0)
                min_score = gr.Slider(0, 1, value=0, step=0.01, label="Minimum score",
                                      elem_id="min-score")
            with gr.Row():
                # every match above the query's own cutoff (mmsearch.cutoff), and by date
                show = gr.Radio([("Best matches", "top"), ("All matches", "all")], value="top",
                                label="Show", elem_id="show")
                sort = gr.Radio([("Best first", "score"), ("Newest first", "date")],
                                value="score", label="Order", elem_id="sort")
        panel = results_panel("picture", "Find similar")
        liked, disliked, example = gr.State([]), gr.State([]), gr.State(None)
        api = api_parts()
        script_endpoints(h.search_text, h.search_image, api.k, [api.gallery, api.keys])

    flt = [folder, since, until, orientation, min_width, min_height]
    # the API's /search: the same parameters as ever (k, example as a file)
    api.k.change(h.search, [query, without, api.example, liked, disliked, api.k, min_score,
                            *flt], [api.gallery, api.keys], api_name="search")

    outs = [panel.gallery, panel.keys, panel.request, panel.header, form.error, filter_error,
            panel.selected, panel.more_results]
    fields = [query, without, example, liked, disliked, min_score, *flt, show, sort]

    def request(text, without_, example_, liked_, disliked_, cutoff, *filters) -> dict:
        path, thumb = example_ or (None, "")
        return dict(text=text, without=without_, example=path, example_thumb=thumb,
                    liked=liked_ or [], disliked=disliked_ or [], min_score=cutoff, k=PAGE,
                    **dict(zip(FILTER_KEYS + ORDER_KEYS, filters)))

    def start(*values):
        return page.respond(request(*values))

    def upload(path, *values):
        try:
            picture = (path, thumb_url(h.pictures.load(path)))
        except QueryError as exc:
            return (gr.skip(),) + error_outputs(h, exc)
        return (picture,) + page.respond(request(values[0], values[1], picture, *values[3:]))

    def similar(path, cutoff, *filters):
        if not path:
            return error_outputs(h, QueryError("open a picture first"))
        return page.respond(dict(similar=path, min_score=cutoff, k=PAGE,
                                 **dict(zip(FILTER_KEYS + ORDER_KEYS, filters))))

    def marker(more_: bool):
        def handler(sel, *values):
            if not sel:
                return (gr.skip(), gr.skip()) + error_outputs(h, QueryError("open a picture first"))
            liked_, disliked_ = h.mark(sel, values[3], values[4], more_)
            values = (*values[:3], liked_, disliked_, *values[5:])
            return (liked_, disliked_) + page.respond(request(*values))
        return handler

    clear_chip = chip_clearer(page, len(fields) + len(outs), "without",
                              ("min_score", *FILTER_KEYS, *ORDER_KEYS), page.respond)

    for trigger in (form.go.click, query.submit, without.submit):
        trigger(start, fields, outs, js=CLOSE_PREVIEW, api_name=False, **IN_ORDER)
    form.example.upload(upload, [form.example, *fields], [example, *outs], js=CLOSE_PREVIEW,
                        api_name=False, **IN_ORDER)
    wire_results(panel, outs, fields, [liked, disliked], respond=page.respond, similar=similar,
                 similar_inputs=[min_score, *flt, show, sort], marker=marker,
                 clear_chip=clear_chip, page_size=PAGE,
                 player=lambda key: player_html(h.searcher.index, key))
    return folder


def error_outputs(h, exc: Exception) -> tuple:
    """A page's outputs for an error before any search: the error beside the bar, the
    previous results kept."""
    return (gr.skip(),) * 4 + (error_html(page_words(h.public(exc))), "", gr.skip(), gr.skip())


def _index_tab(h: Handlers | CatalogHandlers, folder_filter: gr.Dropdown | None) -> gr.Markdown:
    """Stats; and, when the app was started with --allow-indexing, add a folder (or a
    catalogue file) and re-scan, one run at a time, with progress. Without it the indexing
    endpoints do not exist at all."""
    searcher = h.searcher
    catalog = isinstance(h, CatalogHandlers)
    with gr.Tab("Index"):
        stats = gr.Markdown(stats_markdown(searcher), elem_id="stats")
        if not h.indexing.enabled:
            gr.Markdown("Indexing from the app is off. Index with `mmsearch index` on this "
                        "computer, or start the app with `--allow-indexing FOLDER --auth "
                        "user:password` to add folders from here.", elem_id="indexing-off")
            return stats
        with gr.Row():
            new_folder = gr.Textbox(
                label="Catalogue file on this computer" if catalog else "Folder on this computer",
                scale=3, placeholder=(h.indexing.roots[0] + "/products.csv") if catalog
                else h.indexing.roots[0])
            add = gr.Button("Import" if catalog else "Add and index", variant="primary", scale=1)
            rescan = gr.Button("Re-import" if catalog else "Re-scan all folders", scale=1)
        result = gr.Textbox(label="Last run", interactive=False)

    def done(summary: dict):
        line, markdown = summary["line"], stats_markdown(searcher)
        if folder_filter is None:
            return line, markdown
        return line, markdown, gr.Dropdown(choices=["", *searcher.index.roots])

    def add_folder(path: str, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
        return done(h.index_folders([path], _progress(progress)))

    def rescan_all(progress=gr.Progress()):  # noqa: B008
        return done(h.rescan(_progress(progress)))

    outputs = [result, stats] + ([folder_filter] if folder_filter is not None else [])
    add.click(add_folder, [new_folder], outputs, api_name="index_folder",
              concurrency_limit=1, concurrency_id="indexing")
    rescan.click(rescan_all, None, outputs, api_name="rescan", concurrency_id="indexing")
    return stats


FILTER_KEYS = ("folder", "since", "until", "orientation", "min_width", "min_height")
ORDER_KEYS = ("show", "sort")  # all matches or the top ones; by score or by date


def _progress(progress: gr.Progress):
    def report(done: int, total: int) -> None:
        progress((done, total) if total else None, desc="indexing", unit="pictures")
    return report


def launch(searcher: Searcher, host: str = "127.0.0.1", port: int = 7860,
           block: bool = True, auth: list[tuple[str, str]] | None = None, share: bool = False,
           indexing: IndexingPolicy = IndexingPolicy(), allow_hosts: tuple[str, ...] = ()
           ) -> gr.Blocks:
    """Serve the app behind `ui.security.Guard`. `indexing`: the folders HTTP callers may have
    indexed (none by default; needs `auth`). `allow_hosts`: more names the app answers to
    (a reverse proxy's public name)."""
    if indexing.enabled and not auth:
        raise ValueError("--allow-indexing needs --auth: without a login anyone who can reach "
                         "the app could make it read your files")
    thumbs = Thumbnails(thumbnail_dir(searcher.index.location),
                        roots=lambda: searcher.index.roots)
    thumbs.folder.mkdir(parents=True, exist_ok=True)
    temp = private_temp_dir()
    one_run = threading.Lock()
    app = build_app(searcher, thumbs, indexing, QueryPictures(temp), one_run)
    app.mmsearch_temp = temp  # the tests check what is left there
    app.queue(default_concurrency_limit=4)
    guard = Middleware(Guard, hosts=HostPolicy.for_bind(host, tuple(allow_hosts), share),
                       served=(str(thumbs.folder), str(temp)), auth=bool(auth))
    token = resident.new_token()
    api = Mount("/api", app=build_api(searcher, token, one_run))
    app.launch(css=CSS, theme=theme(), js=PAGE_JS, server_name=host, server_port=port,
               allowed_paths=[str(thumbs.folder)], max_file_size=MAX_UPLOAD,
               prevent_thread_lock=True, show_error=False, quiet=not block,
               auth=auth or None, share=share, ssr_mode=False,
               app_kwargs={"middleware": [guard],
                           "routes": [api, video_route(lambda: searcher.index)]})
    # the command line finds this app beside the index and asks it (mmsearch.resident)
    location = searcher.index.location
    local = f"http://{resident.url_host(host)}:{app.server_port}"
    app.mmsearch_resident = resident.announce(location, local, token)
    atexit.register(resident.withdraw, location, app.mmsearch_resident)
    if block:
        try:
            app.block_thread()
        finally:
            resident.withdraw(location, app.mmsearch_resident)
    return app


def serve(location: IndexLocation, host: str = "127.0.0.1", port: int = 7860,
          auth: list[tuple[str, str]] | None = None, share: bool = False,
          indexing: IndexingPolicy = IndexingPolicy(), allow_hosts: tuple[str, ...] = ()
          ) -> None:
    """Open the index, warm model and collection, then serve until interrupted."""
    print("loading the index and its model …", file=sys.stderr)
    try:
        searcher = open_searcher(location)
    except IndexProblem as exc:
        print(f"mmsearch: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    index = searcher.index
    catalog = index.kind == "catalog"
    searcher.warm()
    print(f"mmsearch app on http://{host}:{port}  ({index.count()} "
          f"{'products' if catalog else 'pictures'})", file=sys.stderr)
    if indexing.enabled:
        print("indexing from the app: folders under " + ", ".join(indexing.roots),
              file=sys.stderr)
    launch(searcher, host, port, block=True, auth=auth, share=share, indexing=indexing,
           allow_hosts=allow_hosts)
