"""The app for a product catalogue: what its events do (plain functions over
mmsearch, tested without a browser) and the Products tab that lays them out."""

from __future__ import annotations

import os
from collections.abc import Callable

import gradio as gr

from mmsearch.engine import IndexProblem
from mmsearch.index import Hit
from mmsearch.search import Query, QueryError, Searcher
from mmsearch.where import WhereError
from ui.handlers import AppHandlers, why
from ui.security import PathRefused
from ui.widgets import (mark, on_select, query_form, results_gallery, script_endpoints,
                        selection_row)


def price_text(value) -> str:
    """199000 -> "Rp 199.000" (the demo's prices are rupiah); other values as they are."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "Rp " + f"{value:,.0f}".replace(",", ".")
    return str(value)


def product_caption(p: Hit) -> str:
    price = p.fields.get("price")
    return " · ".join([f"{p.score:.3f}", p.title or p.key,
                       *([price_text(price)] if price is not None else [])]) + why(p)


class CatalogHandlers(AppHandlers):
    searcher: Searcher

    result_caption = staticmethod(product_caption)

    def search(self, text: str, example: str | None, where: str, liked: list[str],
               disliked: list[str], k: float, min_score: float = 0.0):
        """Words and/or an example picture, the products marked more/less like this, and a
        --where filter over the item fields."""
        try:
            images = [self.pictures.load(example)] if example else []
            return self.gallery(self.searcher.search(Query.of(
                texts=[text or ""], images=images, like=liked or [], dislike=disliked or [],
                where=where or "", min_score=float(min_score) or None), int(k)))
        except (QueryError, WhereError, IndexProblem) as exc:
            self.fail(exc)

    def search_text(self, text: str, k: float):
        return self.search(text, None, "", [], [], k)

    def search_image(self, image: str | None, k: float):
        if not image:
            raise gr.Error("no picture: drop an example picture first", print_exception=False)
        return self.search("", image, "", [], [], k)

    def similar(self, item_id: str, k: float, where: str = ""):
        if not item_id:
            raise gr.Error("click a product first", print_exception=False)
        return self.search("", None, where, [item_id], [], k)

    # -- index management (the Index tab, with --allow-indexing) ------------------------
    def index_folders(self, files: list[str],
                      on_progress: Callable[[int, int], None] | None = None) -> dict:
        """Import (or re-import) catalogue files under the --allow-indexing folders; their
        pictures must lie under the file's folder or those folders. The summary."""
        from indexer.catalog import import_catalog

        try:
            files = [self.indexing.file(f) for f in files if f.strip()] or [self.indexing.file("")]
        except PathRefused as exc:
            self.fail(exc)
        total = {"added": 0, "updated": 0, "removed": 0, "unchanged": 0, "skipped": 0}
        lines, failed = [], []
        with self.indexing_run():
            for f in files:  # one bad file is reported; the others still import
                try:
                    summary = import_catalog(f, self.searcher.index, self.searcher.encoder,
                                             progress=False, on_progress=on_progress,
                                             picture_roots=(os.path.dirname(f),
                                                            *self.indexing.roots))
                except (IndexProblem, ValueError) as exc:
                    failed.append(exc)
                    lines.append(self.public(exc))
                    continue
                for key, value in summary.to_json().items():
                    if key in total:
                        total[key] += value
                lines.append(summary.line())
        if len(failed) == len(files):
            self.fail(failed[0])
        return total | {"line": "; ".join(lines)}

    def rescan(self, on_progress: Callable[[int, int], None] | None = None) -> dict:
        files = [f for f in self.searcher.index.stats().get("catalogs", [])
                 if self.indexing.covers(f)]
        if not files:
            raise gr.Error("no catalogue to re-import from the app", print_exception=False)
        return self.index_folders(files, on_progress)


def products_tab(h: CatalogHandlers, close_preview: str) -> None:
    with gr.Tab("Products"):
        form = query_form("What are you looking for?",
                          "sepatu lari ringan merah · a red dress · Minuet",
                          {"label": "Filter (e.g. price < 300000 and brand == 'Minuet')",
                           "elem_id": "where"})
        query, where, example = form.query, form.second, form.example
        go, k, min_score = form.go, form.k, form.min_score
        gallery = results_gallery("Products")
        row = selection_row("product", "Similar products")
        selected, feedback = row.selected, row.feedback
        ids, liked, disliked = gr.State([]), gr.State([]), gr.State([])
        script_endpoints(h.search_text, h.search_image, k, [gallery, ids])

    form = [query, example, where, liked, disliked, k, min_score]
    for trigger in (go.click, query.submit, where.submit, example.upload):
        trigger(h.search, form, [gallery, ids], js=close_preview,
                api_name="search" if trigger == go.click else False)

    def marker(more_: bool):
        def handler(sel, liked_, disliked_, text, example_, where_, k_, cutoff):
            liked_, disliked_ = mark(sel, liked_, disliked_, more_, what="product")
            items, new_ids = h.search(text, example_, where_, liked_, disliked_, k_, cutoff)
            note = f"more like: {', '.join(liked_) or '–'} · less like: {', '.join(disliked_) or '–'}"
            return liked_, disliked_, note, items, new_ids
        return handler

    gallery.select(on_select, [ids], [selected], api_name=False)
    row.similar.click(h.similar, [selected, k, where], [gallery, ids], js=close_preview,
                  api_name="similar")
    for button, more_ in ((row.more, True), (row.less, False)):
        button.click(marker(more_), [selected, liked, disliked, query, example, where, k,
                                   min_score],
                     [liked, disliked, feedback, gallery, ids], js=close_preview,
                     api_name=False)
    row.forget.click(lambda: ([], [], ""), None, [liked, disliked, feedback], api_name=False)
