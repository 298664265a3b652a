"""`mmsearch index` (folders, or a product catalogue with --catalog), in this process or
through the running app that has the index open; `stats`, `export` and `import`."""

from __future__ import annotations

import json
import os
import sys

from mmsearch.cli.common import ask_resident, index_location


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
    _ocr_choice(args)  # a bad --ocr-lang fails here, before any work
    location = index_location(args)
    if args.ray:
        _check_ray(location, args)
    summary = _index_through_resident(location, requested, args) \
        if shard.count == 1 and not args.ray else None
    if summary is None:
        summary = _index_here(location, requested, shard, args)
        if summary is None:
            print("no pictures or videos found under " + ", ".join(args.paths) + "; nothing was indexed",
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


def _check_ray(location, args) -> None:
    """--ray's refusals, before any work: one line each."""
    from indexer.ray_runner import refuse_embedded  # Ray itself is imported only by a run

    refuse_embedded(location)
    if args.gpus_per_worker < 0:
        raise ValueError(f"--gpus-per-worker takes a number >= 0, not {args.gpus_per_worker:g}")


def _ocr_choice(args) -> dict:
    """--no-ocr / --ocr-lang as the JSON API takes them; bad languages -> ValueError."""
    from mmsearch.ocr import parse_langs

    return {"ocr": not args.no_ocr, "ocr_lang": list(parse_langs(args.ocr_lang))}


def _reader(args):
    """The TextReader for this run, or False (OCR off: asked, or the engine not installed)."""
    from mmsearch import ocr

    if not args.no_ocr and not ocr.available():
        print(f"note: {ocr.available().reason}", file=sys.stderr)
    return ocr.reader_for(not args.no_ocr, ocr.parse_langs(args.ocr_lang)) or False


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
        if args.catalog and shard.count > 1:
            raise ValueError("--shard splits folders; import a catalogue in one run")
        if args.ray:
            from indexer import ray_runner

            source = ray_runner.CatalogSource(args.catalog, encoder) if args.catalog else \
                ray_runner.FolderSource(args.paths, encoder, shard, _reader(args) or None)
            summary = ray_runner.index_on_ray(source, index, location, args.ray,
                                              batch_size=args.batch_size, progress=progress,
                                              gpus_per_worker=args.gpus_per_worker)
        elif args.catalog:
            from indexer.catalog import import_catalog

            summary = import_catalog(args.catalog, index, encoder, batch_size=args.batch_size,
                                     workers=args.workers, progress=progress)
        else:
            summary = index_paths(args.paths, index, encoder, batch_size=args.batch_size,
                                  workers=args.workers, shard=shard, progress=progress,
                                  ocr=_reader(args), video=not args.no_video)
        if args.ray and not args.catalog and not args.no_video:
            print("note: --ray indexes pictures; videos are left as they are (index "
                  "them without --ray)", file=sys.stderr)
    if encoder.loaded:  # the model is in memory anyway: export its query towers once
        from mmsearch.towers import export_query_towers, remember_model

        note = export_query_towers(encoder)
        if note:
            print(f"note: {note}", file=sys.stderr)
        remember_model(location, index.model)  # the first cold search opens its towers early
    return summary


def _index_through_resident(location, requested, args):
    """Ask the running app that owns this index to do the indexing (with its loaded model),
    showing its progress; the Summary, or None when no app is up."""
    from mmsearch.resident import ResidentError, ResidentUnavailable, find

    resident = find(location)
    if resident is None:
        return None
    payload = {"paths": [os.path.abspath(p) for p in args.paths],
               "catalog": os.path.abspath(args.catalog) if args.catalog else None,
               "video": not args.no_video, **_ocr_choice(args)}
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

    from indexer.runner import Summary

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
                               found["unchanged"], found["errors"],
                               found.get("ocr_failed", 0), found.get("scenes", 0))
    raise ValueError("the running app stopped before the indexing finished; run again")


def _open_for_indexing(location, requested, args):
    """(index, encoder) to index into, or None when there is no index yet and nothing to put
    in one. A new index is created only after its model has loaded, so a failed download or
    a refused checkpoint leaves no index behind that records a model it never had; an existing
    one opens without loading the model (an unchanged re-scan never needs it)."""
    from indexer.walk import find_pictures, find_videos
    from mmsearch.config import ModelSpec
    from mmsearch.encoder import Encoder
    from mmsearch.engine import IndexNotFoundError
    from mmsearch.stores import open_index, start_engine_early

    kind = "catalog" if args.catalog else "folder"
    # An embedded index that is not there yet is not opened (that would create its folder)
    # until the model has loaded: so there is nothing to clean up after a failure, and never
    # a folder that another indexer may have filled meanwhile.
    if not location.is_embedded or location.db.exists():
        start_engine_early(location)  # it starts and loads while pymilvus imports
        try:
            index = open_index(location, model=requested, kind=kind)
            return index, Encoder(index.model)
        except IndexNotFoundError:
            pass
    finds = (find_pictures,) if args.no_video else (find_pictures, find_videos)
    if not args.catalog and not any(True for p in args.paths for find in finds for _ in find(p)):
        return None
    spec = requested or ModelSpec.parse(None)
    encoder = Encoder(spec).warm()
    return open_index(location, model=requested, create_model=spec, dim=encoder.dim,
                      kind=kind), encoder


def cmd_export(args) -> int:
    from mmsearch.stores import open_index
    from mmsearch.transfer import export_index

    with open_index(index_location(args), kind="folder") as index:  # catalogues: re-import the file
        count = export_index(index, args.file)
        print(f"exported {count} pictures ({index.model.label}) to {args.file}")
    return 0


def cmd_import(args) -> int:
    from mmsearch.towers import remember_model
    from mmsearch.transfer import import_index

    location = index_location(args)
    index, count = import_index(args.file, location)
    with index:
        print(f"imported {count} pictures into {index.location} ({index.count()} in the index)")
        remember_model(location, index.model)  # its first open readies that model early
    return 0


def cmd_stats(args) -> int:
    from mmsearch.stores import open_index

    location = index_location(args)
    stats = ask_resident(location, "GET", "/api/stats")
    if stats is None:
        with open_index(location) as index:
            stats = index.stats()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False))
    else:
        videos = f"\nvideos:   {stats['videos']} ({stats['scenes']} scenes)" \
            if stats.get("videos") else ""
        print(f"images:   {stats['images']}{videos}\nmodel:    {stats['model']}\n"
              f"location: {stats['location']}\nfolders:  {', '.join(stats['roots']) or '-'}")
    return 0
