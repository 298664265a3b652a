"""The app for a product catalogue: what its events do (plain functions over
mmsearch, tested without a browser) and the Products tab that lays them out."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable

import gradio as gr

from mmsearch.engine import IndexProblem
from mmsearch.index import Hit
from mmsearch.search import Query, QueryError, Searcher
from mmsearch.where import WhereError, translate
from ui.handlers import AppHandlers, why
from ui.security import PathRefused
from ui.page import DISLIKED, LIKED, Page, chip_clearer, page_words
from ui.results import PAGE, Chip, error_html, thumb_url
from ui.style import CLOSE_PREVIEW
from ui.widgets import (IN_ORDER, api_parts, mark, query_form, results_panel,
                        script_endpoints, wire_results)


# What a catalogue's `currency` field (ISO 4217) is written as, and how many decimals; a
# catalogue without one is the demo's, in rupiah.
CURRENCIES = {"IDR": ("Rp ", 0, "."), "USD": ("$", 2, ","), "EUR": ("€", 2, "."),
              "GBP": ("£", 2, ","), "SGD": ("S$", 2, ","), "MYR": ("RM ", 2, ","),
              "JPY": ("¥", 0, ",")}


def price_text(value, currency: str = "IDR") -> str:
    """199000 -> "Rp 199.000" (the demo's prices are rupiah); 19.5 with "USD" -> "$19.50";
    other values as they are."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        symbol, decimals, sep = CURRENCIES.get(str(currency).upper(), (f"{currency} ", 2, ","))
        text = f"{value:,.{decimals}f}"
        if sep == ".":  # 1,234.50 -> 1.234,50
            text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return symbol + text
    return str(value)


def product_caption(p: Hit) -> str:
    price = p.fields.get("price")
    return " · ".join([f"{p.score:.3f}", p.title or p.key,
                       *([price_text(price)] if price is not None else [])]) + why(p)


def product_tile(p: Hit, mark: str = "") -> str:
    """The page's caption: the price (never cut), the brand, then the title (the page shows
    two lines of it); a mark after the price when liked or disliked."""
    fields = p.fields or {}
    price = price_text(fields["price"], fields.get("currency", "IDR")) \
        if fields.get("price") is not None else ""
    top = " · ".join(filter(None, [price, mark]))
    return "\n".join(filter(None, [top, str(fields.get("brand") or ""), p.title or p.key]))


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
                    summary = import_catalog(f, self.searcher.index, self.searcher.indexing_encoder(),
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


class CatalogPage(Page):
    """The Products tab: words and/or an example picture, likes, and the where box."""

    FILTER_KEYS = ("where", "min_score")
    SCAN = 5000  # items read to learn the fields and their values (300 in the demo: ~20 ms)

    def __init__(self, handlers: "CatalogHandlers"):
        super().__init__(handlers)
        self._seen: tuple[int, dict[str, set]] | None = None

    def field_values(self) -> dict[str, set]:
        """Each field's name and (text) values, from the first SCAN items; read again when
        the number of items changes."""
        index = self.h.searcher.index
        count = index.count()
        if self._seen is None or self._seen[0] != count:
            seen: dict[str, set] = {}
            for n, row in enumerate(index.iter_rows(["fields"])):
                if n >= self.SCAN:
                    break
                for name, value in (row.get("fields") or {}).items():
                    values = seen.setdefault(name, set())
                    if isinstance(value, str) and len(values) < 500:
                        values.add(value)
            self._seen = (count, seen)
        return self._seen[1]

    def check_where(self, where: str) -> None:
        """A field the catalogue does not have is an error naming the fields it has."""
        used: list[str] = []
        translate(where, field=lambda name: used.append(name) or name)
        known = self.field_values()
        unknown = [n for n in dict.fromkeys(used) if known and n not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(known), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise WhereError(f"there is no field {unknown[0]} here; {hint}the fields are "
                             + ", ".join(sorted(known)))

    def results(self, req: dict, k: int) -> list:
        h = self.h
        where = (req.get("where") or "").strip()
        if where:
            self.check_where(where)
        like = [req["similar"]] if req.get("similar") else req.get("liked") or []
        images = [h.pictures.load(req["example"])] if req.get("example") and \
            not req.get("similar") else []
        return h.searcher.search(Query.of(
            texts=[] if req.get("similar") else [req.get("text") or ""], images=images,
            like=like, dislike=[] if req.get("similar") else req.get("disliked") or [],
            where=where, min_score=float(req.get("min_score") or 0) or None), k)

    def chips(self, req: dict) -> list[Chip]:
        out = []
        if req.get("example") and not req.get("similar"):
            out.append(Chip("example", "picture " + os.path.basename(req["example"]),
                            req.get("example_thumb", "")))
        likes = len(req.get("liked") or []), len(req.get("disliked") or [])
        if any(likes) and not req.get("similar"):
            out.append(Chip("likes", f"likes: {likes[0]} · dislikes: {likes[1]}"))
        if (req.get("where") or "").strip():
            out.append(Chip("where", req["where"].strip()))
        if float(req.get("min_score") or 0):
            out.append(Chip("min_score", f"score ≥ {float(req['min_score']):.2f}"))
        return out

    @staticmethod
    def cleared(req: dict, key: str) -> dict:
        req = dict(req)
        keys = CatalogPage.FILTER_KEYS if key == "all" else ("liked", "disliked") \
            if key == "likes" else ("example", "example_thumb") if key == "example" else (key,)
        for name in keys:
            req[name] = [] if name in ("liked", "disliked") else None
        return req

    def caption(self, hit, req: dict) -> str:
        mark = LIKED if hit.key in (req.get("liked") or []) else \
            DISLIKED if hit.key in (req.get("disliked") or []) else ""
        return product_tile(hit, mark)

    def hints(self, req: dict) -> str:
        """Slips people make in the where box: a price written as on screen (200.000), a
        text value in other letter case ('minuet' for 'Minuet')."""
        where, said = req.get("where") or "", []
        for number in DOTTED.findall(where):
            said.append(f"{number} reads as {float(number):g}: for Rp {number} write "
                        f"{number.replace('.', '')}.")
        values = self.field_values() if EQUALS.search(where) else {}
        for name, _, value in EQUALS.findall(where):
            if value not in values.get(name, ()):
                close = [v for v in values.get(name, ()) if v.lower() == value.lower()]
                if close:
                    said.append(f"No {name} is '{value}'; did you mean '{close[0]}'? "
                                "(letter case counts)")
        return " ".join(said)


# "200.000" or "1.250.000": a number with thousands dots, as prices are written on screen
DOTTED = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{3})+(?![\w.])")
EQUALS = re.compile(r"\b([A-Za-z_]\w*)\s*==\s*(['\"])(.*?)\2")


def products_tab(h: CatalogHandlers) -> None:
    page = CatalogPage(h)
    with gr.Tab("Products"):
        form = query_form("What are you looking for?",
                          "sepatu lari ringan merah · a red dress · Minuet",
                          {"label": "Filter", "elem_id": "where",
                           "placeholder": "price < 300000 and brand == 'Minuet'"})
        query, where = form.query, form.second
        with gr.Accordion("More filters", open=False):
            min_score = gr.Slider(0, 1, value=0, step=0.01, label="Minimum score")
        panel = results_panel("product", "Similar products")
        liked, disliked, example = gr.State([]), gr.State([]), gr.State(None)
        api = api_parts()
        script_endpoints(h.search_text, h.search_image, api.k, [api.gallery, api.keys])
        api_similar = gr.Textbox(visible=False)

    api.k.change(h.search, [query, api.example, where, liked, disliked, api.k, min_score],
                 [api.gallery, api.keys], api_name="search")
    api_similar.change(h.similar, [api_similar, api.k, where], [api.gallery, api.keys],
                       api_name="similar")

    outs = [panel.gallery, panel.keys, panel.request, panel.header, form.error, form.error,
            panel.selected, panel.more_results]
    fields = [query, where, example, liked, disliked, min_score]

    def request(text, where_, example_, liked_, disliked_, cutoff) -> dict:
        path, thumb = example_ or (None, "")
        return dict(text=text, where=where_, example=path, example_thumb=thumb,
                    liked=liked_ or [], disliked=disliked_ or [], min_score=cutoff, k=PAGE)

    def respond(req: dict) -> tuple:
        out = page.respond(req)  # one error element for the bar: the query's or the filter's
        return out[:4] + (out[4] or out[5],) + out[6:]

    def start(*values):
        return respond(request(*values))

    def upload(path, *values):
        try:
            picture = (path, thumb_url(h.pictures.load(path)))
        except QueryError as exc:
            return (gr.skip(),) + refused(exc)
        return (picture,) + respond(request(values[0], values[1], picture, *values[3:]))

    def refused(exc: Exception) -> tuple:
        return (gr.skip(),) * 4 + (error_html(page_words(h.public(exc))), gr.skip(), gr.skip())

    def similar(item_id, where_, cutoff):
        if not item_id:
            return refused(QueryError("open a product first"))
        return respond(dict(similar=item_id, where=where_, min_score=cutoff, k=PAGE))

    def marker(more_: bool):
        def handler(sel, *values):
            if not sel:
                return (gr.skip(), gr.skip()) + refused(QueryError("open a product first"))
            liked_, disliked_ = mark(sel, values[3], values[4], more_, what="product")
            return (liked_, disliked_) + respond(request(*values[:3], liked_, disliked_,
                                                         values[5]))
        return handler

    clear_chip = chip_clearer(page, len(fields) + len(outs), "where", ("min_score",), respond)

    outs = outs[:5] + outs[6:]
    for trigger in (form.go.click, query.submit, where.submit):
        trigger(start, fields, outs, js=CLOSE_PREVIEW, api_name=False, **IN_ORDER)
    form.example.upload(upload, [form.example, *fields], [example, *outs], js=CLOSE_PREVIEW,
                        api_name=False, **IN_ORDER)
    wire_results(panel, outs, fields, [liked, disliked], respond=respond, similar=similar,
                 similar_inputs=[where, min_score], marker=marker, clear_chip=clear_chip,
                 page_size=PAGE)
