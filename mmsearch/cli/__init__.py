"""`mmsearch` command line: index, search, duplicates, stats, ui, demo, serve-index,
export, import. A thin layer over the library, and the one shell above all of it: the only
package that imports the core (mmsearch.*), the indexer and the ui together (tests/test_layout.py).
Each command module imports its heavy parts inside the command, so `mmsearch --help` stays
~0.1 s."""

from __future__ import annotations

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
