"""The JSON API of a running app (`/api/...`), for scripts and for the `mmsearch` command line.

Every call needs the token of this run (`Authorization: Bearer TOKEN`), which the app writes
only to its announcement file beside the index (mode 0600, `mmsearch.resident`): holding it is
being the user who started the app, so it may do what `mmsearch` run by that user may do
(search, stats, duplicates, index any of their folders). Without the token, nothing: a web page
cannot read the file, and the app's Host and Origin checks (`ui.security.Guard`) stand in
front of these routes too. The OpenAPI page is `/api/docs`.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from mmsearch.filters import FilterError
from mmsearch.engine import IndexProblem
from mmsearch.request import SearchRequest
from mmsearch.search import QueryError
from mmsearch.where import WhereError

FAILURES = (QueryError, FilterError, WhereError, IndexProblem, ValueError)


class IndexIn(BaseModel):
    paths: list[str] = Field([], description="folders or pictures (absolute paths)")
    catalog: str | None = Field(None, description="a catalogue file instead of folders")
    ocr: bool = Field(True, description="read the words printed in pictures (when the OCR "
                      "engine is installed), as `mmsearch index` does unless --no-ocr")
    ocr_lang: list[str] = Field(["en", "id"], description="languages of those words: en, id")
    video: bool = Field(True, description="videos too, as scenes (`mmsearch index` unless "
                        "--no-video)")


class DuplicatesIn(BaseModel):
    threshold: float | None = Field(None, ge=0.0, le=1.0)


def build_api(searcher, token: str, one_run: threading.Lock | None = None) -> FastAPI:
    """`one_run`: the lock the app's Index tab holds while indexing (one run at a time)."""
    api = FastAPI(title="mmsearch", summary="Search an index by words and pictures",
                  docs_url="/docs", openapi_url="/openapi.json", redoc_url=None)
    indexing = one_run or threading.Lock()

    def authorised(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "this API needs the token of the running app (the "
                                     "mmsearch command line finds it beside the index)")

    gate = [Depends(authorised)]

    def refuse(exc: Exception):
        raise HTTPException(400, str(exc)) from None

    @api.post("/search", dependencies=gate)
    def search(body: SearchRequest) -> dict[str, Any]:
        """What `mmsearch search` takes (the README's query composition): words, pictures
        (`parts`: image, not_image with base64 bytes, or not_text), indexed pictures to start
        from (`similar`), filters; for a catalogue, like/dislike, where and mode; `all`
        (every match: the answer adds `count` and `capped`) and `sort` (score or date)."""
        try:
            body.check()
            return body.answer(searcher)
        except FAILURES as exc:
            refuse(exc)

    @api.get("/stats", dependencies=gate)
    def stats() -> dict[str, Any]:
        return searcher.index.stats()

    @api.post("/duplicates", dependencies=gate)
    def duplicates(body: DuplicatesIn) -> list[list[dict]]:
        from mmsearch.duplicates import default_threshold, find_duplicates

        if searcher.index.kind == "catalog":
            refuse(ValueError("duplicates are for folder indexes"))
        threshold = default_threshold(searcher.index.model) if body.threshold is None \
            else body.threshold
        try:
            return [[m.to_json() for m in g] for g in find_duplicates(searcher.index, threshold)]
        except FAILURES as exc:
            refuse(exc)

    @api.post("/index", dependencies=gate)
    def index(body: IndexIn) -> StreamingResponse:
        """Index folders (or import a catalogue) with the app's loaded model. Streams JSON
        lines: {"done", "total"} as pictures are read, then {"summary": {...}} or
        {"error": "..."}."""
        if not indexing.acquire(blocking=False):
            raise HTTPException(409, "the app is already indexing; try again when it is done")
        lines: queue.Queue = queue.Queue()

        def work() -> None:
            try:
                summary = _run_index(searcher, body, lambda d, t: lines.put({"done": d,
                                                                              "total": t}))
                lines.put({"summary": summary.to_json() | {"line": summary.line()}})
            except FAILURES as exc:
                lines.put({"error": str(exc)})
            except Exception as exc:  # noqa: BLE001 (the stream must end with a reason)
                lines.put({"error": f"indexing failed: {type(exc).__name__}: {exc}"})
            finally:
                lines.put(None)
                indexing.release()

        threading.Thread(target=work, name="api-index", daemon=True).start()

        def stream():
            while (line := lines.get()) is not None:
                yield json.dumps(line) + "\n"

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    return api


def _run_index(searcher, body: IndexIn, on_progress):
    if bool(body.paths) == bool(body.catalog):
        raise ValueError("give folders to index, or a catalogue file (not both)")
    if body.catalog:
        from indexer.catalog import import_catalog

        if searcher.index.kind != "catalog":
            raise ValueError("this app serves a folder index, not a product catalogue")
        return import_catalog(body.catalog, searcher.index, searcher.indexing_encoder(),
                              progress=False, on_progress=on_progress)
    from indexer.pipeline import index_paths
    from mmsearch.towers import export_query_towers

    if searcher.index.kind == "catalog":
        raise ValueError("this app serves a product catalogue: give --catalog FILE")
    from mmsearch.ocr import reader_for

    encoder = searcher.indexing_encoder()
    summary = index_paths(body.paths, searcher.index, encoder, progress=False,
                          on_progress=on_progress,
                          ocr=reader_for(body.ocr, body.ocr_lang) or False, video=body.video)
    if getattr(encoder, "loaded", False):
        export_query_towers(encoder)  # for later fresh `mmsearch search` runs
    return summary


def serve_headless(searcher, host: str = "127.0.0.1", port: int = 7860) -> None:
    """`mmsearch serve`: the JSON API alone (no web page), behind the same Guard, announced
    beside the index while it listens; until Ctrl+C."""
    from contextlib import asynccontextmanager

    import uvicorn
    from starlette.middleware import Middleware
    from starlette.routing import Mount

    from mmsearch import resident
    from ui.security import Guard, HostPolicy

    token = resident.new_token()
    location = searcher.index.location
    local = f"http://{resident.url_host(host)}:{port}"

    @asynccontextmanager
    async def announced(_app):
        found = resident.announce(location, local, token)
        try:
            yield
        finally:
            resident.withdraw(location, found)

    root = FastAPI(routes=[Mount("/api", app=build_api(searcher, token))], lifespan=announced,
                   docs_url=None, redoc_url=None, openapi_url=None,
                   middleware=[Middleware(Guard, hosts=HostPolicy.for_bind(host), served=(),
                                          auth=False)])
    uvicorn.run(root, host=host, port=port, log_level="warning")
