"""`mmsearch search` and `mmsearch duplicates`: asked of the running app that has the index
open when there is one, else answered in this process."""

from __future__ import annotations

import json
import os
import time

from mmsearch.cli.common import ask_resident, index_location


def _search_request(args):
    """The SearchRequest the search flags describe (pictures read here, sent as bytes)."""
    from mmsearch.request import PicturePart, SearchRequest

    parts = []
    for flag, value, weight in args.parts or []:
        if flag == "not" and weight is not None:
            raise ValueError("--weight after --not: a --not part removes what matches it "
                             "(README, Query composition); it takes no weight")
        if flag == "image" or os.path.isfile(value):  # --not FILE is a picture to leave out
            parts.append(PicturePart("image" if flag == "image" else "not_image",
                                     SearchRequest.picture(_read_file(value)), weight, value))
        else:
            parts.append(PicturePart("not_text", value, weight))
    folder = os.path.abspath(os.path.expanduser(args.folder)) if args.folder else None
    return SearchRequest(text=args.text, text_weight=getattr(args, "text_weight", 1.0),
                         parts=parts, folder=folder, since=args.since, until=args.until,
                         min_width=args.min_width, min_height=args.min_height,
                         orientation=args.orientation, type=args.type,
                         similar=[_as_indexed(v) for v in args.similar],
                         like=args.like, dislike=args.dislike,
                         where=args.where or "", mode=args.mode, k=args.k,
                         min_score=args.min_score, all=args.all, sort=args.sort)


def _as_indexed(value: str) -> str:
    """`--similar` as the shell names it: a relative path (`IMG_1.jpg`, `clip.mp4@1:05`,
    `clip.mp4#t=65.00`) becomes the absolute path the index holds, as the running app (in
    another folder) must get it too. Anything else (a catalogue id) stays as given."""
    if os.path.isfile(value):
        return os.path.abspath(value)
    for sep in ("@", "#t="):
        path, found, at = value.rpartition(sep)
        if found and os.path.isfile(path):
            return os.path.abspath(path) + sep + at
    return value


def _read_file(path: str) -> bytes:
    from mmsearch.config import MAX_QUERY_BYTES

    try:
        if os.path.getsize(path) > MAX_QUERY_BYTES:
            raise ValueError(f"the example picture {path} is too large")
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None


def cmd_search(args) -> int:
    from mmsearch.moments import clock

    request = _search_request(args)
    location = index_location(args)
    answer = ask_resident(location, "POST", "/api/search", request.to_json())
    if answer is None:
        answer = _search_here(location, request)
    results = answer["results"]
    if args.json:  # with --all an object: the count beside the results
        print(json.dumps({"count": answer.get("count", len(results)), "capped":
                          answer.get("capped", False), "results": results} if args.all
                         else results, ensure_ascii=False))
        return 0
    if not results:
        print("no results (nothing matches the filters, --where and --min-score, or the index "
              "is empty: see `mmsearch stats`)")
    elif answer["kind"] == "catalog":
        print(f"{'rank':>4}  {'score':>6}  {'id':<12}  {'price':>10}  title")
        for rank, h in enumerate(results, 1):
            price = h["fields"].get("price", "")
            print(f"{rank:>4}  {h['score']:6.3f}  {h['id']:<12}  {price!s:>10}  {h['title']}"
                  f"{why(h)}")
    else:
        dated = args.sort == "date"  # then the date the results are ordered by is shown
        print(f"{'rank':>4}  {'score':>6}  " + ("taken       " if dated else "") + "path")
        for rank, h in enumerate(results, 1):
            day = time.strftime("%Y-%m-%d  ", time.localtime(h.get("taken") or 0)) \
                if dated else ""
            at = f" @ {clock(h['time'])}" if h.get("time") is not None else ""  # a video
            print(f"{rank:>4}  {h['score']:6.3f}  {day}{h['path']}{at}{why(h)}")
    if args.all and results:
        print(f"≈{answer.get('count', len(results))} matches" + (
            " (they filled all the candidates: there may be more; raise -k)"
            if answer.get("capped") else ""))
    return 0


def _search_here(location, request) -> dict:
    """Open the index in this process and run the request (no resident process is up). In a
    fresh process the embedded engine starts and loads the index (at 100k the longest step,
    ~2 s of one core) while pymilvus is imported, and the query's encoder opens meanwhile
    (`open_searcher`): those ran one after the other before (bench/cli.py). The engine
    answers nothing else while it loads, so the tokenizer (Python, ~0.15-0.5 s) is built and
    the query's texts are encoded (~0.08-0.15 s) before the search asks it for anything: at
    100k 3.30 -> 3.06 s (7 interleaved rounds; 1.05 -> 1.08 s at 1k, within the noise)."""
    from mmsearch.stores import open_searcher, start_engine_early

    start_engine_early(location)
    text = bool(request.text) or any(p.kind == "not_text" for p in request.parts)
    visual = any(p.kind != "not_text" for p in request.parts)
    ahead: list = []
    searcher = open_searcher(location, text, visual,
                             prepare=lambda towers: ahead.append(_encode_ahead(towers, request)))
    with searcher.index:
        for thread in ahead:
            if thread is not None:
                thread.join()
        return request.answer(searcher)


def _encode_ahead(towers, request):
    """A thread encoding the request's texts with `towers` (which keep them: RECENT_TEXTS),
    or None when it has none. They are tokenized here first, so that the thread imports
    nothing (the tokenizer's first call may); a failure is left to the search, which
    encodes them again and says why."""
    import threading

    texts = [t for t in (request.text, *(p.value for p in request.parts
                                           if p.kind == "not_text")) if t and t.strip()]
    if not texts:
        return None
    towers.tokenize(texts)

    def encode() -> None:
        try:
            towers.encode_texts(texts)
        except Exception:  # noqa: BLE001 - see above
            pass

    thread = threading.Thread(target=encode, name="texts", daemon=True)
    thread.start()
    return thread


def cmd_duplicates(args) -> int:
    from mmsearch.duplicates import default_threshold, find_duplicates
    from mmsearch.stores import open_index

    location = index_location(args)
    answer = ask_resident(location, "POST", "/api/duplicates", {"threshold": args.threshold})
    if answer is not None:
        groups = [[_Member(**m) for m in g] for g in answer]
        threshold = args.threshold if args.threshold is not None else "the default"
    else:
        with open_index(location, kind="folder") as index:
            threshold = default_threshold(index.model) if args.threshold is None \
                else args.threshold
            groups = find_duplicates(index, threshold)
    if args.json:
        print(json.dumps([[m.to_json() for m in g] for g in groups], ensure_ascii=False))
    elif not groups:
        print(f"no duplicates at similarity >= {threshold}")
    else:
        for n, group in enumerate(groups, 1):
            print(f"group {n} ({len(group)} pictures)")
            for m in group:
                print(f"  {m.score:6.3f}  {m.path}")
    return 0


class _Member:
    """A duplicate group member as the resident process sends it."""

    def __init__(self, path: str, score: float):
        self.path, self.score = path, score

    def to_json(self) -> dict:
        return {"path": self.path, "score": self.score}


def why(hit: dict) -> str:
    """"  (name: bali sunset)" when more than the picture carried a result, else ""."""
    from mmsearch.request import why_matched

    reason = why_matched(hit.get("matched", []), hit.get("text", ""))
    return f"  ({reason})" if reason else ""
