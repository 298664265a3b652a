"""The `mmsearch` argument parser: every command, flag and help text."""

from __future__ import annotations

import argparse

from mmsearch import __version__


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
    p.add_argument("--ray", metavar="ADDRESS", help="index folders or a --catalog on a Ray cluster "
                   "(auto, host:port or ray://host:port) into the Milvus server given by --uri; "
                   "every node must see the pictures at the same path (pip install 'mmsearch[ray]')")
    p.add_argument("--gpus-per-worker", type=float, default=0, metavar="G", help="with --ray: "
                   "GPUs each encoding worker takes (default 0: encode on CPUs, bf16 where the "
                   "CPU has it)")
    p.add_argument("--no-ocr", action="store_true", help="do not read the words printed in "
                   "pictures (read by default when the OCR engine is installed; a later run "
                   "without this flag reads them for the photos that lack them, no re-embedding)")
    p.add_argument("--ocr-lang", metavar="LANGS", default="en,id", help="languages of the "
                   "words in pictures, comma-separated: en, id (default en,id)")
    p.add_argument("--no-video", action="store_true", help="leave videos out (found by "
                   "default: mp4, mov, m4v, mkv, webm, avi; their stored scenes are kept)")
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
                   help="words or a picture file to leave out: removes the results that "
                   "match the query with it (a red dress, for \"a dress\" --not red); may "
                   "repeat")
    p.add_argument("--weight", metavar="W", type=float, action=_WeightAction, dest="parts",
                   help="weight of the --image just before it (of the words when no part "
                   "comes before it); default 1")
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
    p.add_argument("--similar", metavar="KEY", action="append", default=[], help="look for "
                   "items like an indexed one: a picture's path, or a video's moment as "
                   "`clip.mp4@1:05` or its scene key `clip.mp4#t=65.00`; may repeat")
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--all", action="store_true", help="every match instead of the top k: "
                   "where the matches end is read from the shape of the scores (README, "
                   "\"All the matches\"), among the top 1000 (or -k if more)")
    p.add_argument("--sort", metavar="score|date", default="score", help="order of the "
                   "results: score (default) or date (when taken, newest first)")
    p.add_argument("--json", action="store_true", help="print results as a JSON array")
    f = p.add_argument_group("filters (applied inside the index)")
    f.add_argument("--in", metavar="FOLDER", dest="folder", help="only pictures under FOLDER")
    f.add_argument("--since", metavar="DATE", help="taken on or after DATE (YYYY[-MM[-DD]]; "
                   "EXIF date, else the file's time)")
    f.add_argument("--until", metavar="DATE", help="taken on or before DATE (whole day/month/year)")
    f.add_argument("--min-width", metavar="PX", type=int)
    f.add_argument("--min-height", metavar="PX", type=int)
    f.add_argument("--orientation", choices=["landscape", "portrait", "square"])
    f.add_argument("--type", choices=["picture", "video"], help="only pictures, or only "
                   "videos (their best moments)")
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
