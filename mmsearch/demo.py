"""`mmsearch demo`: index the shipped pictures with the embedded model, then open the app.

Works offline on a fresh clone: the model (assets/model) and the pictures (assets/demo) are
both in the repository.
"""

from __future__ import annotations

import sys

from mmsearch.config import DEMO_PICTURES_DIR, IndexLocation, ModelSpec, data_home
from mmsearch.encoder import Encoder
from mmsearch.index import Index


def build_demo_index(db: str | None = None, progress: bool = True):
    """(Re)index assets/demo into the demo index; returns (location, summary)."""
    from indexer.pipeline import index_paths

    location = IndexLocation.resolve(db=db or data_home() / "demo.db")
    spec = ModelSpec.parse("demo")
    encoder = Encoder(spec)
    with Index.open(location, model=spec, create_model=spec, dim=encoder.dim) as index:
        summary = index_paths([str(DEMO_PICTURES_DIR)], index, encoder, progress=progress)
    return location, summary


def run_demo(db: str | None = None, launch: bool = True, host: str = "127.0.0.1",
             port: int = 7860) -> int:
    location, summary = build_demo_index(db, progress=sys.stderr.isatty())
    print(f"demo index at {location}: {summary.line()}")
    if not launch:
        print(f"try: mmsearch search 'a red sneaker' --db {location}")
        return 0
    from ui.app import serve

    print("try queries like: a red sneaker · sepatu lari ringan · gaun biru · a black bag")
    serve(location, host=host, port=port)
    return 0
