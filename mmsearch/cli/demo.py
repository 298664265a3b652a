"""`mmsearch demo`: index the shipped pictures with the embedded model, then open the app.
`mmsearch demo --catalog` does the same with the demo product catalogue (assets/catalog).

Works offline on a fresh clone: the model (assets/model), the pictures (assets/demo) and the
catalogue are all in the repository.
"""

from __future__ import annotations

import sys

from mmsearch.config import (DEMO_CATALOG, DEMO_PICTURES_DIR, IndexLocation, ModelSpec,
                             data_home)
from mmsearch.encoder import Encoder
from mmsearch.engine import OutdatedIndexError, remove_embedded
from mmsearch.stores import open_index


def build_demo_index(db: str | None = None, progress: bool = True, catalog: bool = False):
    """(Re)index assets/demo (or import the demo catalogue) into the demo index; returns
    (location, summary)."""
    location = IndexLocation.resolve(
        db=db or data_home() / ("demo-catalog.db" if catalog else "demo.db"))
    spec = ModelSpec.parse("demo")
    encoder = Encoder(spec)
    kind = "catalog" if catalog else "folder"
    try:
        index = open_index(location, model=spec, create_model=spec, dim=encoder.dim, kind=kind)
    except OutdatedIndexError:
        if db:  # the user's own --db: theirs to remove
            raise
        # the default demo index is the demo's own, rebuilt from the repository in seconds
        remove_embedded(location.db)  # 3.x's folder, or a 2.x file
        index = open_index(location, model=spec, create_model=spec, dim=encoder.dim, kind=kind)
    with index:
        if catalog:
            from indexer.catalog import import_catalog

            summary = import_catalog(DEMO_CATALOG, index, encoder, progress=progress)
        else:
            from indexer.pipeline import index_paths

            summary = index_paths([str(DEMO_PICTURES_DIR)], index, encoder, progress=progress)
    if encoder.loaded:
        from mmsearch.towers import export_query_towers

        export_query_towers(encoder)  # `mmsearch search --db DEMO` then needs no torch
    return location, summary


def run_demo(db: str | None = None, launch: bool = True, host: str = "127.0.0.1",
             port: int = 7860, catalog: bool = False) -> int:
    location, summary = build_demo_index(db, progress=sys.stderr.isatty(), catalog=catalog)
    print(f"demo {'catalogue' if catalog else 'index'} at {location}: {summary.line()}")
    if not launch:
        print(f"try: mmsearch search 'sepatu lari ringan merah' --db {location}")
        return 0
    from ui.app import serve

    print("try queries like: a red sneaker · sepatu lari ringan merah · gaun biru · "
          + ("Minuet · koleksi lebaran" if catalog else "a black bag"))
    serve(location, host=host, port=port)
    return 0
