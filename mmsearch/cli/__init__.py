"""`mmsearch` command line: index, search, duplicates, stats, ui, demo, serve-index,
export, import. A thin layer over the library, and the one shell above all of it: the only
package that imports the core (mmsearch.*), the indexer and the ui together (tests/test_layout.py).
Each command module imports its heavy parts inside the command, so `mmsearch --help` stays
~0.1 s."""

from __future__ import annotations

import gc
import os
import sys

from mmsearch.cli.indexing import cmd_export, cmd_import, cmd_index, cmd_stats
from mmsearch.cli.parser import build_parser
from mmsearch.cli.searching import cmd_duplicates, cmd_search
from mmsearch.cli.serving import cmd_demo, cmd_serve, cmd_serve_index, cmd_ui

__all__ = ["COMMANDS", "build_parser", "main"]


COMMANDS = {"index": cmd_index, "search": cmd_search, "duplicates": cmd_duplicates,
            "stats": cmd_stats, "ui": cmd_ui, "demo": cmd_demo, "serve": cmd_serve,
            "serve-index": cmd_serve_index,
            "export": cmd_export, "import": cmd_import}


# Commands that answer once and exit: no cyclic garbage collection while `run` runs them. A cold
# search imports pymilvus, pandas, onnxruntime and scipy, whose million objects the collector
# walks again and again; without it they import in 0.54-0.63 s of CPU instead of 0.68-0.85 s
# (5 interleaved runs, 2 cores). What one query allocates is freed by reference counting.
ONE_SHOT = {"search", "stats"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from mmsearch.errors import IndexProblem, ModelLoadError  # a QueryError is a ValueError

    try:
        return COMMANDS[args.command](args)
    except (IndexProblem, ModelLoadError, ValueError) as exc:
        print(f"mmsearch: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mmsearch: interrupted; finished batches are saved, run again to resume",
              file=sys.stderr)
        return 130


def run() -> None:
    """The `mmsearch` command: `main` in a process that exits after it."""
    if sys.argv[1:2] and sys.argv[1] in ONE_SHOT:
        gc.disable()
        from mmsearch.cli import pandas_later

        pandas_later.install()
    try:
        code = main()
    except BrokenPipeError:  # `mmsearch search ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        code = 0
    # The interpreter's last full collection, over every object those imports made, took
    # ~0.3 s of a cold search (CPU 1.05 -> 0.69 s with them frozen). The system frees the
    # memory anyway; files are closed and indexes released by now.
    gc.freeze()
    sys.exit(code)
