"""What the page shows after each action, for both tabs: results, the header that says what
produced them, the filter chips, the empty state, and errors beside their field that keep
the previous results.

A page request is a plain dict (kept in a gr.State): everything needed to run the search
again with more results ("More results") or without one filter (a chip's ×).
"""

from __future__ import annotations

import os
import re

import gradio as gr

from mmsearch.engine import IndexProblem
from mmsearch.filters import FilterError
from mmsearch.search import QueryError
from mmsearch.where import WhereError
from ui.handlers import at, why
from ui.results import PAGE, Chip, Header, empty_reason, error_html, header_html, quoted

# The command line's words in core messages, as the page says them.
PAGE_WORDS = [(re.compile(r"--where\b"), "the filter"), (re.compile(r"--since\b"), "since"),
              (re.compile(r"--until\b"), "until"), (re.compile(r"--in\b"), "in folder")]
LIKED, DISLIKED = "♥ liked", "✕ less like this"


def page_words(text: str) -> str:
    for pattern, words in PAGE_WORDS:
        text = pattern.sub(words, text)
    return text


class Page:
    """The page's side of one tab; subclasses say how a request runs and what its chips are.
    `outputs()` order: gallery, keys, request, header, query error, filter error, selected,
    more button."""

    FILTER_KEYS: tuple[str, ...] = ()

    def __init__(self, handlers):
        self.h = handlers

    # -- to override ---------------------------------------------------------------------
    def results(self, req: dict, k: int) -> list:
        raise NotImplementedError

    def chips(self, req: dict) -> list[Chip]:
        raise NotImplementedError

    def what(self, req: dict) -> str:
        """What produced the results, for the header."""
        if req.get("similar"):
            return f"similar to {self.similar_name(req['similar'])}"
        said = []
        if (req.get("text") or "").strip():
            said.append("for " + quoted(req["text"]))
        if req.get("example"):
            said.append(("and " if said else "") + "like your picture")
        return " ".join(said)

    @staticmethod
    def similar_name(key: str) -> str:
        """How the header names the item a "similar" search started from."""
        return key

    def caption(self, hit, req: dict) -> str:
        raise NotImplementedError

    def hints(self, req: dict) -> str:
        """More to say about an empty result (a where-box slip); "" for nothing."""
        return ""

    @staticmethod
    def cleared(req: dict, key: str) -> dict:
        """The request without the chip `key` ("all": without every filter)."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------
    @staticmethod
    def error_field(exc: Exception) -> str:
        return "filters" if isinstance(exc, FilterError) else "query"

    def respond(self, req: dict) -> tuple:
        """The outputs for a request: results and header, or an error beside its field with
        everything else left as it was."""
        k = int(req.get("k") or PAGE)
        if not ((req.get("text") or "").strip() or req.get("example") or req.get("liked")
                or req.get("similar")):  # a chip took the last thing to look for away
            return [], [], req, "", "", "", "", gr.Button(visible=False)
        try:
            hits = self.results(req, k)
            items, keys = self.h.gallery(hits, caption=lambda hit: self.caption(hit, req))
            every = req.get("show") == "all"  # all the matches are there: no "more"
            header = Header(len(items), self.what(req), self.chips(req),
                            more=not every and len(hits) >= k, matches=every)
            if not items:
                self.explain(req, header)
        except (QueryError, FilterError, WhereError, IndexProblem) as exc:
            message = page_words(self.h.public(exc))
            message = message[0].upper() + message[1:]
            field = self.error_field(exc)
            return (gr.skip(),) * 4 + (error_html(message if field == "query" else ""),
                                       error_html(message if field == "filters" else ""),
                                       gr.skip(), gr.skip())
        return (items, keys, req, header_html(header), "", "", "",
                gr.Button(visible=header.more))

    def explain(self, req: dict, header: Header) -> None:
        """Which chip emptied the list: each is taken away in turn and the search run again
        for one result (only when the list is empty, so a full page pays nothing)."""
        emptied, best = [], None
        for chip in header.chips:
            if chip.key in ("likes", "example"):
                continue
            try:
                again = self.results(self.cleared(req, chip.key), 1)
            except (QueryError, FilterError, WhereError, IndexProblem):
                continue
            if again:
                emptied.append(chip)
                if chip.key == "min_score":
                    best = again[0].score
        if not emptied and len([c for c in header.chips if c.key in self.FILTER_KEYS]) > 1:
            try:
                if self.results(self.cleared(req, "all"), 1):
                    emptied = [c for c in header.chips if c.key in self.FILTER_KEYS]
            except (QueryError, FilterError, WhereError, IndexProblem):
                pass
        header.why_empty = " ".join(filter(None, [
            empty_reason(emptied, req.get("min_score"), best), self.hints(req)]))
        header.clear_keys = [c.key for c in emptied]


class FolderPage(Page):
    """The Search tab of a folder index."""

    FILTER_KEYS = ("folder", "since", "until", "orientation", "min_width", "min_height",
                   "min_score", "without", "show", "sort")

    def results(self, req: dict, k: int) -> list:
        h = self.h
        flt = h.filters(**{key: req.get(key) for key in
                           ("folder", "since", "until", "orientation", "min_width",
                            "min_height") if req.get(key) not in (None, "")})
        cutoff = float(req.get("min_score") or 0) or None
        order = {"all": req.get("show") == "all", "sort": req.get("sort") or "score"}
        if req.get("similar"):
            return h.searcher.search_similar(req["similar"], k, filters=flt, min_score=cutoff,
                                             **order)
        query = h.query(req.get("text") or "", req.get("without") or "", req.get("example"),
                        req.get("liked") or [], req.get("disliked") or [], cutoff or 0)
        query.filters, query.all, query.sort = flt, order["all"], order["sort"]
        return h.searcher.search(query, k)

    @staticmethod
    def similar_name(key: str) -> str:
        return os.path.basename(key)

    def chips(self, req: dict) -> list[Chip]:
        out = []
        if req.get("example"):
            out.append(Chip("example", "picture " + os.path.basename(req["example"]),
                            req.get("example_thumb", "")))
        if (req.get("without") or "").strip():
            out.append(Chip("without", "without " + req["without"].strip()))
        likes = len(req.get("liked") or []), len(req.get("disliked") or [])
        if any(likes) and not req.get("similar"):
            out.append(Chip("likes", f"likes: {likes[0]} · dislikes: {likes[1]}"))
        if req.get("folder"):
            out.append(Chip("folder", "in " + os.path.basename(req["folder"].rstrip(os.sep))))
        for key, label in (("since", "since"), ("until", "until")):
            if req.get(key):
                out.append(Chip(key, f"{label} {req[key]}"))
        if req.get("orientation") not in (None, "", "any"):
            out.append(Chip("orientation", req["orientation"]))
        for key, label in (("min_width", "width ≥ "), ("min_height", "height ≥ ")):
            if int(req.get(key) or 0):
                out.append(Chip(key, f"{label}{int(req[key])} px"))
        if float(req.get("min_score") or 0):
            out.append(Chip("min_score", f"score ≥ {float(req['min_score']):.2f}"))
        if req.get("show") == "all":
            out.append(Chip("show", "all matches"))
        if req.get("sort") == "date":
            out.append(Chip("sort", "newest first"))
        return out

    @staticmethod
    def cleared(req: dict, key: str) -> dict:
        req = dict(req)
        keys = FolderPage.FILTER_KEYS if key == "all" else \
            ("liked", "disliked") if key == "likes" else ("example", "example_thumb") \
            if key == "example" else (key,)
        for name in keys:
            req[name] = [] if name in ("liked", "disliked") else None
        return req

    def caption(self, hit, req: dict) -> str:
        mark = LIKED if hit.path in (req.get("liked") or []) else \
            DISLIKED if hit.path in (req.get("disliked") or []) else ""
        # the name first, on a line of its own (never cut), then the score and why it matched
        return f"{os.path.basename(hit.path)}{at(hit)}\n{hit.score:.3f}{why(hit)}" + \
            (f" · {mark}" if mark else "")


def form_values(req: dict, keys: tuple[str, ...]) -> list:
    """The form's fields as a request says them (after a chip cleared one)."""
    defaults = {"orientation": "any", "min_width": 0, "min_height": 0, "min_score": 0,
                "show": "top", "sort": "score"}
    return [req.get(k) if req.get(k) not in (None, "") else defaults.get(k, "") for k in keys]


def chip_clearer(page: Page, n_outputs: int, second: str, form_keys: tuple[str, ...],
                 respond):
    """The handler of a chip's ×: the form's fields as the request without that chip says
    them (words, the second box `second`, example, likes, then `form_keys`), then its
    results through `respond`."""
    def clear_chip(req: dict, evt: gr.EventData):
        key = (getattr(evt, "_data", None) or {}).get("clear")
        if not key or not req:
            return (gr.skip(),) * n_outputs
        new = page.cleared(req, key)
        example_ = (new["example"], new.get("example_thumb", "")) if new.get("example") else None
        keep = [new.get("text") or "", new.get(second) or "", example_,
                new.get("liked") or [], new.get("disliked") or []]
        return (*keep, *form_values(new, form_keys), *respond(new))
    return clear_chip
