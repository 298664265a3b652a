"""`mmsearch` command line: index, search, duplicates, stats, ui, demo, serve-index,
export, import. A thin layer over the library."""

from __future__ import annotations

import argparse
import json
import os
import sys

from mmsearch import __version__
from mmsearch.config import NOT_WEIGHT


def _add_location(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("index location (default: $MMSEARCH_URI, $MMSEARCH_DB or "
                             "~/.local/share/mmsearch/index.db)")
    g.add_argument("--db", metavar="PATH", help="embedded Milvus Lite index: a .db file (a "
                   "folder on Windows, where mmsearch runs Milvus Lite 3.x)")
    g.add_argument("--uri", metavar="URI", help="Milvus server, e.g. http://127.0.0.1:19530")
    g.add_argument("--token", metavar="TOKEN", help="Milvus token (user:password or API key)")


class _PartAction(argparse.Action):
    """--image / --not: collect the query parts in command-line order (for --weight)."""

    def __call__(self, parser, namespace, value, option_string=None):
        parts = list(getattr(namespace, self.dest, None) or [])
        parts.append([option_string.lstrip("-"), value, None])
        setattr(namespace, self.dest, parts)


class _WeightAction(argparse.Action):
    """--weight W: the weight of the part named just before it (of the words if none)."""

    def __call__(self, parser, namespace, value, option_string=None):
        parts = list(getattr(namespace, self.dest, None) or [])
        if parts:
            parts[-1][2] = value
        else:
            namespace.text_weight = value
        setattr(namespace, self.dest, parts)


def _location(args):
    from mmsearch.config import IndexLocation

    return IndexLocation.resolve(args.db, args.uri, args.token)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="mmsearch", description="Local-first multimodal image search: find pictures by "
        "sentence or by example picture.")
    ap.add_argument("--version", action="version", version=f"mmsearch {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("index", help="index (or re-index) folders of pictures, or import a "
                       "product catalogue")
    p.add_argument("paths", nargs="*", metavar="PATH", help="folders or picture files")
    p.add_argument("--catalog", metavar="FILE", help="a product catalogue, JSON Lines or CSV: "
                   "id, image, title[, description] and any other fields (see the README)")
    _add_location(p)
    p.add_argument("--model", help="open_clip architecture, or 'demo' for the embedded model "
                   "(only when the index is created; default ViT-B-32)")
    p.add_argument("--pretrained", help="weights: a pretrained tag, a checkpoint file, or "
                   "'random' (untrained, for speed tests only)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: CPUs)")
    p.add_argument("--shard", metavar="i/N", help="index only the files whose path hashes to i "
                   "of N (0 <= i < N): run N indexers, on one machine or several, into one Milvus "
                   "server with no overlap and no gaps")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    p = sub.add_parser(
        "search", help="search by text and/or example pictures",
        description="Look for pictures by words and example pictures, minus what to leave out. "
        "The query is the weighted sum of the parts' unit vectors (see the README).",
        epilog='example: mmsearch search "beach" --image me.jpg --not "people" --weight 0.7')
    p.add_argument("text", nargs="?", default="", help="what to look for, in words")
    p.add_argument("--image", metavar="FILE", action=_PartAction, dest="parts",
                   help="an example picture to look for (reverse image search); may repeat")
    p.add_argument("--not", metavar="TEXT|FILE", action=_PartAction, dest="parts",
                   help="words or a picture file to leave out; may repeat "
                   f"(default weight {NOT_WEIGHT})")
    p.add_argument("--weight", metavar="W", type=float, action=_WeightAction, dest="parts",
                   help="weight of the --image or --not just before it (of the words when no "
                   "part comes before it); default 1")
    p.add_argument("--min-score", metavar="S", type=float, help="drop results scoring below S")
    c = p.add_argument_group("catalogues")
    c.add_argument("--like", metavar="ID", action="append", default=[],
                   help="recommend items like this one; may repeat")
    c.add_argument("--dislike", metavar="ID", action="append", default=[],
                   help="and unlike this one; may repeat")
    c.add_argument("--where", metavar="EXPR", help="filter on item fields, e.g. \"price < "
                   "200000 and brand == 'Minuet'\" (grammar in the README)")
    c.add_argument("--mode", choices=["hybrid", "picture", "text"], default="hybrid",
                   help="which signals a text query searches (default hybrid: all three)")
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--json", action="store_true", help="print results as a JSON array")
    f = p.add_argument_group("filters (applied inside the index)")
    f.add_argument("--in", metavar="FOLDER", dest="folder", help="only pictures under FOLDER")
    f.add_argument("--since", metavar="DATE", help="taken on or after DATE (YYYY[-MM[-DD]]; "
                   "EXIF date, else the file's time)")
    f.add_argument("--until", metavar="DATE", help="taken on or before DATE (whole day/month/year)")
    f.add_argument("--min-width", metavar="PX", type=int)
    f.add_argument("--min-height", metavar="PX", type=int)
    f.add_argument("--orientation", choices=["landscape", "portrait", "square"])
    _add_location(p)

    p = sub.add_parser("duplicates", help="groups of identical and near-identical pictures")
    p.add_argument("--threshold", type=float, default=None, metavar="S",
                   help="similarity at or above which two pictures are near-duplicates "
                   "(default 0.99; 0.999 for the demo model)")
    p.add_argument("--json", action="store_true",
                   help='print a JSON list of groups, each a list of {"path", "score"}')
    _add_location(p)

    p = sub.add_parser("serve-index", help="serve an embedded index over gRPC (milvus-lite "
                       "server), so the app and indexers can use it at the same time via --uri")
    p.add_argument("--data-dir", metavar="PATH", help="the embedded index, a .db file (default: "
                   "$MMSEARCH_DB or ~/.local/share/mmsearch/index.db)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=19530)

    p = sub.add_parser("export", help="write the index (rows, vectors, model) to a Parquet file")
    p.add_argument("file", metavar="FILE.parquet")
    _add_location(p)

    p = sub.add_parser("import", help="load an export into an index (e.g. a Milvus server) "
                       "without re-embedding")
    p.add_argument("file", metavar="FILE.parquet")
    _add_location(p)

    p = sub.add_parser("stats", help="what is in the index")
    p.add_argument("--json", action="store_true")
    _add_location(p)

    p = sub.add_parser("ui", help="open the web app")
    _add_location(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; "
                   "0.0.0.0 opens it to your network: use --auth)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--auth", metavar="USER:PASS|FILE", help="require a login: user:password, "
                   "or a file with one user:password per line")
    p.add_argument("--share", action="store_true", help="also publish a temporary public "
                   "gradio.live link (off unless asked)")
    p.add_argument("--allow-indexing", metavar="FOLDER", action="append", default=[],
                   help="let the app index folders (and import catalogues) under FOLDER on "
                   "request; may repeat. Off by default; needs --auth")
    p.add_argument("--allow-host", metavar="NAME", action="append", default=[],
                   help="another host name the app answers to, e.g. a reverse proxy's public "
                   "name (it refuses requests for any other name); may repeat")

    p = sub.add_parser("serve", help="keep the index and its model loaded and answer the JSON "
                       "API (no web page): mmsearch search/index/stats/duplicates then ask it",
                       description="A resident process for one index: it opens the index and "
                       "loads the model once, announces itself beside the index (a 0600 file "
                       "with a token), and every mmsearch command for that index asks it "
                       "instead of starting from nothing. `mmsearch ui` does the same.")
    _add_location(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7861, help="default 7861 (the app's is 7860)")

    p = sub.add_parser("demo", help="index the shipped demo pictures with the embedded model "
                       "and open the app")
    p.add_argument("--db", metavar="PATH", help="where to keep the demo index "
                   "(default ~/.local/share/mmsearch/demo.db, or demo-catalog.db)")
    p.add_argument("--catalog", action="store_true", help="the demo product catalogue "
                   "(pictures with titles, brands and prices) instead of the picture folder")
    p.add_argument("--no-launch", action="store_true", help="index only, do not open the app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    return ap


def cmd_index(args) -> int:
    from mmsearch.config import ModelSpec, Shard
    from mmsearch.encoder import check_spec

    shard = Shard.parse(args.shard)
    requested = ModelSpec.parse(args.model, args.pretrained) \
        if (args.model or args.pretrained) else None
    if requested is not None:
        check_spec(requested)
    if bool(args.paths) == bool(args.catalog):
        raise ValueError("give folders to index, or --catalog FILE (not both)")
    for path in [*args.paths, *([args.catalog] if args.catalog else [])]:
        if not os.path.exists(path):
            raise ValueError(f"no such file or folder: {path}")
    location = _location(args)
    summary = _index_through_resident(location, requested, args) if shard.count == 1 else None
    if summary is None:
        summary = _index_here(location, requested, shard, args)
        if summary is None:
            print("no pictures found under " + ", ".join(args.paths) + "; nothing was indexed",
                  file=sys.stderr)
            return 0
    if args.json:
        print(json.dumps(summary.to_json(), ensure_ascii=False))
    else:
        print(summary.line())
        for e in summary.errors:
            where = f"row {e['row']}" if "row" in e else e["path"]
            print(f"  skipped {where}: {e['reason']}")
    return 0


def _index_here(location, requested, shard, args):
    """Index in this process; the Summary, or None when there was nothing to index."""
    from indexer.pipeline import index_paths

    opened = _open_for_indexing(location, requested, args)
    if opened is None:
        return None
    index, encoder = opened
    with index:
        if index.model.is_random:
            print(f"note: model {index.model.label}", file=sys.stderr)
        progress = not args.json and sys.stderr.isatty()
        if args.catalog:
            from indexer.catalog import import_catalog

            if shard.count > 1:
                raise ValueError("--shard splits folders; import a catalogue in one run")
            summary = import_catalog(args.catalog, index, encoder, batch_size=args.batch_size,
                                     workers=args.workers, progress=progress)
        else:
            summary = index_paths(args.paths, index, encoder, batch_size=args.batch_size,
                                  workers=args.workers, shard=shard, progress=progress)
    if encoder.loaded:  # the model is in memory anyway: export its query towers once
        from mmsearch.towers import export_query_towers

        note = export_query_towers(encoder)
        if note:
            print(f"note: {note}", file=sys.stderr)
    return summary


def _index_through_resident(location, requested, args):
    """Ask the running app that owns this index to do the indexing (with its loaded model),
    showing its progress; the Summary, or None when no app is up."""
    from mmsearch.resident import ResidentError, ResidentUnavailable, find

    resident = find(location)
    if resident is None:
        return None
    payload = {"paths": [os.path.abspath(p) for p in args.paths],
               "catalog": os.path.abspath(args.catalog) if args.catalog else None}
    try:
        if requested is not None:
            model = resident.call("GET", "/api/stats")["model"]
            if model != requested.label:
                raise ValueError(f"the app serving this index uses model {model}; leave "
                                 "--model out (vectors of two models do not mix)")
        stream = resident.open("POST", "/api/index", payload, timeout=None)
    except ResidentUnavailable:
        return None
    except ResidentError as exc:
        raise ValueError(str(exc)) from None
    from tqdm import tqdm

    from indexer.pipeline import Summary

    bar = tqdm(unit="img", desc="indexing (in the running app)", leave=False,
               disable=args.json or not sys.stderr.isatty(), dynamic_ncols=True)
    with stream, bar:
        for raw in stream:
            line = json.loads(raw)
            if "done" in line:
                bar.total = line["total"]
                bar.n = line["done"]
                bar.refresh()
            elif "error" in line:
                raise ValueError(line["error"])
            elif "summary" in line:
                found = line["summary"]
                return Summary(found["added"], found["updated"], found["removed"],
                               found["unchanged"], found["errors"])
    raise ValueError("the running app stopped before the indexing finished; run again")


def _open_for_indexing(location, requested, args):
    """(index, encoder) to index into, or None when there is no index yet and nothing to put
    in one. A new index is created only after its model has loaded, so a failed download or
    a refused checkpoint leaves no index behind that records a model it never had; an existing
    one opens without loading the model (an unchanged re-scan never needs it)."""
    from indexer.walk import find_pictures
    from mmsearch.config import ModelSpec
    from mmsearch.encoder import Encoder
    from mmsearch.index import IndexNotFoundError
    from mmsearch.stores import open_index

    kind = "catalog" if args.catalog else "folder"
    # An embedded index that is not there yet is not opened (that would create its folder)
    # until the model has loaded: so there is nothing to clean up after a failure, and never
    # a folder that another indexer may have filled meanwhile.
    if not location.is_embedded or location.db.exists():
        try:
            index = open_index(location, model=requested, kind=kind)
            return index, Encoder(index.model)
        except IndexNotFoundError:
            pass
    if not args.catalog and not any(True for p in args.paths for _ in find_pictures(p)):
        return None
    spec = requested or ModelSpec.parse(None)
    encoder = Encoder(spec).warm()
    return open_index(location, model=requested, create_model=spec, dim=encoder.dim,
                      kind=kind), encoder


def _search_request(args):
    """The SearchRequest the search flags describe (pictures read here, sent as bytes)."""
    from mmsearch.request import PicturePart, SearchRequest

    parts = []
    for flag, value, weight in args.parts or []:
        if flag == "image" or os.path.isfile(value):  # --not FILE is a picture to leave out
            parts.append(PicturePart("image" if flag == "image" else "not_image",
                                     SearchRequest.picture(_read_file(value)), weight, value))
        else:
            parts.append(PicturePart("not_text", value, weight))
    folder = os.path.abspath(os.path.expanduser(args.folder)) if args.folder else None
    return SearchRequest(text=args.text, text_weight=getattr(args, "text_weight", 1.0),
                         parts=parts, folder=folder, since=args.since, until=args.until,
                         min_width=args.min_width, min_height=args.min_height,
                         orientation=args.orientation, like=args.like, dislike=args.dislike,
                         where=args.where or "", mode=args.mode, k=args.k,
                         min_score=args.min_score)


def _read_file(path: str) -> bytes:
    from mmsearch.config import MAX_QUERY_BYTES

    try:
        if os.path.getsize(path) > MAX_QUERY_BYTES:
            raise ValueError(f"the example picture {path} is too large")
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None


def _resident(location, method: str, path: str, payload: dict | None = None):
    """The answer of the resident process for this index, or None when none is up (then the
    command does the work itself). Its refusals are this command's errors."""
    from mmsearch.resident import ResidentError, ResidentUnavailable, find

    resident = find(location)
    if resident is None:
        return None
    try:
        return resident.call(method, path, payload)
    except ResidentUnavailable:
        return None
    except ResidentError as exc:
        raise ValueError(str(exc)) from None


def cmd_search(args) -> int:
    request = _search_request(args)
    location = _location(args)
    answer = _resident(location, "POST", "/api/search", request.to_json())
    if answer is None:
        answer = _search_here(location, request)
    results = answer["results"]
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
    elif not results:
        print("no results (nothing matches the filters, --where and --min-score, or the index "
              "is empty: see `mmsearch stats`)")
    elif answer["kind"] == "catalog":
        print(f"{'rank':>4}  {'score':>6}  {'id':<12}  {'price':>10}  title")
        for rank, h in enumerate(results, 1):
            price = h["fields"].get("price", "")
            print(f"{rank:>4}  {h['score']:6.3f}  {h['id']:<12}  {price!s:>10}  {h['title']}")
    else:
        print(f"{'rank':>4}  {'score':>6}  path")
        for rank, h in enumerate(results, 1):
            print(f"{rank:>4}  {h['score']:6.3f}  {h['path']}")
    return 0


def _search_here(location, request) -> dict:
    """Open the index in this process and run the request (no resident process is up)."""
    from mmsearch.stores import open_index, searcher_for
    from mmsearch.towers import query_encoder

    with open_index(location) as index:
        searcher = searcher_for(index, query_encoder(index.model))  # ONNX towers: no torch
        return {"kind": index.KIND, "results": request.run(searcher)}


def cmd_duplicates(args) -> int:
    from mmsearch.duplicates import default_threshold, find_duplicates
    from mmsearch.stores import open_index

    location = _location(args)
    answer = _resident(location, "POST", "/api/duplicates", {"threshold": args.threshold})
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


def cmd_serve_index(args) -> int:
    from mmsearch.config import IndexLocation
    from mmsearch.index import IndexInUseError, check_embedded_path, embedded_engine, \
        embedded_in_use, quiet_backend_logs

    location = IndexLocation.resolve(db=args.data_dir)
    if not location.is_embedded:  # $MMSEARCH_URI is set: that index is served already
        raise ValueError("serve-index serves an embedded index: give --data-dir")
    data_dir = location.db
    quiet_backend_logs()
    check_embedded_path(data_dir)
    in_use = IndexInUseError(f"the index {data_dir} is open in another process; close it "
                             "first (the server must be its only user)")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {args.host} lets anyone on your network read and change the "
              "index (Milvus Lite has no authentication)", file=sys.stderr)
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    if embedded_engine() == "file":
        if embedded_in_use(data_dir):
            raise in_use
        _check_port_free(args.host, args.port)
        try:
            data_dir.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"cannot create {data_dir.parent}: {exc.strerror or exc}") from None
        return _serve_lite_file(data_dir, args.host, args.port, url, in_use)
    from milvus_lite.adapter.grpc.server import run_server  # Milvus Lite 3.x

    print(f"serving {data_dir} on {url}; use --uri {url} (or export MMSEARCH_URI={url}) with "
          "every mmsearch command; Ctrl+C stops", file=sys.stderr, flush=True)
    try:
        run_server(str(data_dir), host=args.host, port=args.port)
    except Exception as exc:  # the directory lock, a port in use: one line, not a traceback
        text = str(exc)
        if "lock" in text.lower() or "Open local milvus failed" in text:
            raise in_use from None
        raise ValueError(f"cannot serve {data_dir} on port {args.port}: {text}") from None
    return 0


def _check_port_free(host: str, port: int) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ValueError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


def _serve_lite_file(db, host: str, port: int, url: str, in_use) -> int:
    """Milvus Lite 2.x: its engine binary serves the .db file on host:port (milvus_lite.server
    .Server) while this process holds the index's lock; SIGTERM and Ctrl+C stop both."""
    import signal
    import time

    from milvus_lite.server import Server

    from mmsearch.index import embedded_in_use

    server = Server(str(db), address=f"{host}:{port}")
    if not server.init():
        raise ValueError(f"cannot serve {db}: Milvus Lite's engine binary is missing")

    def stop(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        if not server.start():
            if embedded_in_use(db):
                raise in_use
            raise ValueError(f"cannot serve {db} on {host}:{port}: Milvus Lite's engine did "
                             "not start")
        print(f"serving {db} on {url}; use --uri {url} (or export MMSEARCH_URI={url}) with "
              "every mmsearch command; Ctrl+C stops", file=sys.stderr, flush=True)
        while server._p.poll() is None:
            time.sleep(0.5)
        raise ValueError(f"the Milvus Lite engine serving {db} stopped (exit status "
                         f"{server._p.returncode})")
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server._p is not None and server._p.poll() is None:
            server._p.terminate()  # the engine exits at once on SIGTERM, before the lock goes
            try:
                server._p.wait(timeout=20)
            except Exception:  # noqa: BLE001 - stop() kills it
                pass
        server.stop()


def cmd_export(args) -> int:
    from mmsearch.stores import open_index
    from mmsearch.transfer import export_index

    with open_index(_location(args), kind="folder") as index:  # catalogues: re-import the file
        count = export_index(index, args.file)
        print(f"exported {count} pictures ({index.model.label}) to {args.file}")
    return 0


def cmd_import(args) -> int:
    from mmsearch.transfer import import_index

    index, count = import_index(args.file, _location(args))
    with index:
        print(f"imported {count} pictures into {index.location} ({index.count()} in the index)")
    return 0


def cmd_stats(args) -> int:
    from mmsearch.stores import open_index

    location = _location(args)
    stats = _resident(location, "GET", "/api/stats")
    if stats is None:
        with open_index(location) as index:
            stats = index.stats()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False))
    else:
        print(f"images:   {stats['images']}\nmodel:    {stats['model']}\n"
              f"location: {stats['location']}\nfolders:  {', '.join(stats['roots']) or '-'}")
    return 0


def cmd_ui(args) -> int:
    from ui.app import parse_auth, serve
    from ui.security import IndexingPolicy, is_loopback

    auth = parse_auth(args.auth) if args.auth else None
    indexing = IndexingPolicy.of(args.allow_indexing)
    if indexing.enabled and not auth:
        raise ValueError("--allow-indexing needs --auth user:password (without a login, "
                         "anyone who can reach the app could make it read your files)")
    if not is_loopback(args.host) and not auth:
        print(f"warning: --host {args.host} lets anyone on your network search your pictures; "
              "add --auth user:password", file=sys.stderr)
    refuse_old_dependencies(args.host)
    serve(_location(args), host=args.host, port=args.port, auth=auth, share=args.share,
          indexing=indexing, allow_hosts=tuple(args.allow_host))
    return 0


def refuse_old_dependencies(host: str) -> None:
    """One line per installed dependency below mmsearch's floor; such an environment may
    serve only this computer (its holes are known and published)."""
    from mmsearch.floors import below_floor
    from ui.security import is_loopback

    old = below_floor()
    for line in old:
        print(f"warning: {line}", file=sys.stderr)
    if old and (not is_loopback(host)):
        raise ValueError(f"refusing to serve on {host} with dependencies below their safe "
                         "floors (see above); upgrade them (pip install -U -e .) or serve on "
                         "127.0.0.1")


def cmd_serve(args) -> int:
    from mmsearch.stores import open_index, searcher_for
    from ui.api import serve_headless

    refuse_old_dependencies(args.host)
    with open_index(_location(args)) as index:
        searcher = searcher_for(index)
        print(f"loading {index.model.label} …", file=sys.stderr)
        searcher.warm()
        print(f"mmsearch serving {index.location} on http://{args.host}:{args.port}/api "
              "(docs: /api/docs); mmsearch commands for this index now ask it; Ctrl+C stops",
              file=sys.stderr, flush=True)
        serve_headless(searcher, args.host, args.port)
    return 0


def cmd_demo(args) -> int:
    from mmsearch.demo import run_demo

    if not args.no_launch:
        refuse_old_dependencies(args.host)
    return run_demo(db=args.db, launch=not args.no_launch, host=args.host, port=args.port,
                    catalog=args.catalog)


COMMANDS = {"index": cmd_index, "search": cmd_search, "duplicates": cmd_duplicates,
            "stats": cmd_stats, "ui": cmd_ui, "demo": cmd_demo, "serve": cmd_serve,
            "serve-index": cmd_serve_index,
            "export": cmd_export, "import": cmd_import}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from mmsearch.encoder import ModelLoadError
    from mmsearch.index import IndexError_
    from mmsearch.search import QueryError

    try:
        return COMMANDS[args.command](args)
    except (IndexError_, ModelLoadError, QueryError, ValueError) as exc:
        print(f"mmsearch: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mmsearch: interrupted; finished batches are saved, run again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
