"""What the app's events do, as plain functions over mmsearch (tested without a browser).

Every search goes through mmsearch.Searcher with a mmsearch Query; this module only turns
form values into that Query and results into gallery items.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Callable

import gradio as gr

from mmsearch.duplicates import default_threshold, find_duplicates
from mmsearch.filters import Filters, FilterError
from mmsearch.engine import IndexProblem
from mmsearch.index import Hit
from mmsearch.request import why_matched
from mmsearch.search import NOT_WEIGHT, Part, Query, QueryError, Searcher, feedback_parts
from mmsearch.thumbnails import Thumbnails
from ui.security import IndexingPolicy, PathRefused, public_text
from ui.uploads import QueryPictures
from ui.widgets import mark

ANY = "any"
MAX_GROUPS = 30  # groups drawn in the Duplicates tab; the count says how many there are


def caption(hit: Hit) -> str:
    return f"{hit.score:.3f} · {os.path.basename(hit.path)}{at(hit)}{why(hit)}"


def at(hit: Hit) -> str:
    """" @ 1:05" for a video's moment, else ""."""
    from mmsearch.moments import clock

    return f" @ {clock(hit.time)}" if hit.time is not None else ""


def why(hit: Hit) -> str:
    """" · name: bali sunset" when more than the picture carried a result (what the words
    matched), else ""."""
    reason = why_matched(hit.matched, hit.snippet)
    return f" · {reason}" if reason else ""


def human_bytes(n: int | None) -> str:
    if n is None:
        return "on the server"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def stats_markdown(searcher) -> str:
    s = searcher.index.stats()
    catalog = s["kind"] == "catalog"
    sources = s.get("catalogs", []) if catalog else s["roots"]
    listed = ", ".join(f"`{r}`" for r in sources) or "none yet"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["last_indexed"])) \
        if s["last_indexed"] else "never"
    videos = f" · **{s['videos']}** videos ({s['scenes']} scenes)" if s.get("videos") else ""
    return (f"**{s['images']}** {'products' if catalog else 'pictures'}{videos} · model "
            f"**{s['model']}** · {human_bytes(s['disk_bytes'])} on disk · last indexed {when}  \n"
            f"index `{s['location']}` · {'catalogues' if catalog else 'folders'}: {listed}")


class AppHandlers:
    """What both kinds of app share: the open searcher, previews, uploads, the indexing
    policy, and errors told to HTTP callers without server paths."""

    def __init__(self, searcher, thumbs: Thumbnails, indexing: IndexingPolicy = IndexingPolicy(),
                 pictures: QueryPictures | None = None, one_run: threading.Lock | None = None):
        self.searcher = searcher
        self.thumbs = thumbs
        self.indexing = indexing
        self.pictures = pictures or QueryPictures()
        # one indexing run at a time, shared with the JSON API's /api/index: two runs would
        # each read, change and write back the index's list of folders
        self.one_run = one_run or threading.Lock()

    @contextmanager
    def indexing_run(self):
        if not self.one_run.acquire(blocking=False):
            raise gr.Error("the app is already indexing; try again when it is done",
                           print_exception=False)
        try:
            yield
        finally:
            self.one_run.release()

    def public(self, exc: Exception) -> str:
        """`exc` as one line fit for the page: no server folder in it (the index's, the
        uploads', the working directory), long inputs cut."""
        hide = (str(self.searcher.index.location), self.pictures.folder or "", os.getcwd(),
                tempfile.gettempdir())
        return public_text(str(exc), hide)

    def fail(self, exc: Exception):
        raise gr.Error(self.public(exc), print_exception=False) from None

    # -- results: each kind says how a result is captioned and which key it answers to ----
    @staticmethod
    def result_caption(result) -> str:
        raise NotImplementedError

    @staticmethod
    def result_key(result) -> str:
        raise NotImplementedError

    def gallery(self, results, caption: Callable | None = None
                ) -> tuple[list[tuple[str, str]], list[str]]:
        """(gallery items, the results' keys in the same order: paths, or product ids).
        `caption`: how the page captions a result (the API keeps `result_caption`)."""
        caption = caption or self.result_caption
        items, keys = [], []
        for r in results:
            preview = self.thumbs.ensure(r.path, r.hash, r.time)
            if preview is not None:  # deleted or broken since indexing: leave it out
                items.append((str(preview), caption(r)))
                keys.append(r.key)
        return items, keys


class Handlers(AppHandlers):
    searcher: Searcher

    # -- results -------------------------------------------------------------------------
    result_caption = staticmethod(caption)

    def _run(self, search: Callable, *args, **kwargs):
        try:
            return self.gallery(search(*args, **kwargs))
        except (QueryError, FilterError, IndexProblem) as exc:
            self.fail(exc)

    # -- the search form -----------------------------------------------------------------
    @staticmethod
    def filters(folder: str = "", since: str = "", until: str = "", orientation: str = ANY,
                min_width: float | None = None, min_height: float | None = None) -> Filters:
        return Filters.parse(folder or None, since or None, until or None,
                             int(min_width or 0), int(min_height or 0),
                             None if orientation in (None, "", ANY) else orientation)

    def query(self, text: str, without: str, example: str | None, liked: list[str],
              disliked: list[str], min_score: float, **filters) -> Query:
        parts = [Part(text=text)] if (text or "").strip() else []
        if example:
            parts.append(Part(image=self.pictures.load(example)))
        parts += [Part(text=w.strip(), weight=-NOT_WEIGHT)
                  for w in (without or "").split(",") if w.strip()]
        parts += feedback_parts(liked or [], disliked or [])
        return Query(parts, filters=self.filters(**filters),
                     min_score=float(min_score) if min_score else None)

    def search(self, text: str, without: str, example: str | None, liked: list[str],
               disliked: list[str], k: float, min_score: float, folder: str = "",
               since: str = "", until: str = "", orientation: str = ANY,
               min_width: float | None = None, min_height: float | None = None):
        """Everything in the form: words, "without" words (comma-separated), an example
        picture, the pictures marked more/less like this, cutoff and filters."""
        try:
            query = self.query(text, without, example, liked, disliked, min_score,
                               folder=folder, since=since, until=until,
                               orientation=orientation, min_width=min_width,
                               min_height=min_height)
        except (QueryError, FilterError) as exc:
            self.fail(exc)
        return self._run(self.searcher.search, query, int(k))

    def search_text(self, text: str, k: float):
        return self._run(self.searcher.search_text, text or "", int(k))

    def search_image(self, image: str | None, k: float):
        if not image:
            raise gr.Error("no picture: drop an example picture first", print_exception=False)
        try:
            picture = self.pictures.load(image)
        except QueryError as exc:
            self.fail(exc)
        return self._run(self.searcher.search_image, picture, int(k))

    def search_similar(self, path: str, k: float, min_score: float = 0.0, **filters):
        try:
            flt = self.filters(**filters)
        except FilterError as exc:
            self.fail(exc)
        return self._run(self.searcher.search_similar, path or "", int(k), filters=flt,
                         min_score=float(min_score) if min_score else None)

    # -- feedback ------------------------------------------------------------------------
    mark = staticmethod(mark)

    @staticmethod
    def feedback_markdown(liked: list[str], disliked: list[str]) -> str:
        if not liked and not disliked:
            return ""
        names = lambda ps: ", ".join(os.path.basename(p) for p in ps) or "–"  # noqa: E731
        return f"more like: {names(liked)} · less like: {names(disliked)}"

    # -- duplicates ----------------------------------------------------------------------
    def duplicate_groups(self, threshold: float | None) -> list[list[dict]]:
        """[[{"file", "score"}, ...], ...] ("file", not "path": gradio_client would take a
        "path" dict for a file to download)."""
        try:
            groups = find_duplicates(self.searcher.index, threshold)
        except ValueError as exc:
            self.fail(exc)
        return [[{"file": m.path, "score": round(m.score, 6)} for m in g] for g in groups]

    def default_threshold(self) -> float:
        return default_threshold(self.searcher.index.model)

    # -- index management ----------------------------------------------------------------
    def index_folders(self, folders: list[str],
                      on_progress: Callable[[int, int], None] | None = None) -> dict:
        """Index (or re-scan) folders into the open index, if they lie under the folders the
        app was started with (--allow-indexing); the summary."""
        from indexer.pipeline import index_paths

        try:
            folders = [self.indexing.folder(f) for f in folders if f.strip()] or \
                [self.indexing.folder("")]
        except PathRefused as exc:
            self.fail(exc)
        try:
            with self.indexing_run():
                summary = index_paths(folders, self.searcher.index, self.searcher.indexing_encoder(),
                                      progress=False, on_progress=on_progress)
        except IndexProblem as exc:
            self.fail(exc)
        return summary.to_json() | {"line": summary.line()}

    def rescan(self, on_progress: Callable[[int, int], None] | None = None) -> dict:
        """Re-scan the index's folders that lie under --allow-indexing (the others are left
        to `mmsearch index`)."""
        roots = [r for r in self.searcher.index.roots if self.indexing.covers(r)]
        if not roots:
            raise gr.Error("nothing to re-scan from the app: add a folder first",
                           print_exception=False)
        return self.index_folders(roots, on_progress)
