"""Which class opens an index: the one place that knows every kind of index.

An index records its kind beside its model: "folder" (`mmsearch.index.Index`, one row per
picture file) or "catalog" (`mmsearch.catalog.CatalogIndex`, one row per product).
`open_index` reads it and returns the class that fits; `searcher_for` gives the searcher that
fits an open index. This module sits above both kinds so that neither imports the other
(index.py used to import catalog.py to pick the class, and catalog.py imports index.py).
"""

from __future__ import annotations

from mmsearch.config import IndexLocation, ModelSpec
from mmsearch.engine import (IndexKindError, IndexNotFoundError, ModelMismatchError,
                             _embedded_opened, connect, create_database, vector_index_for)
from mmsearch.index import Index

KIND_NAMES = {"folder": "folder index (`mmsearch index FOLDER`)",
              "catalog": "product catalogue (`mmsearch index --catalog FILE`)"}


def class_of(kind: str) -> type[Index]:
    if kind == "catalog":
        # imported only for a catalogue: it brings the search code (PIL, the encoder), which
        # `mmsearch stats` or `export` of a folder index never needs
        from mmsearch.catalog import CatalogIndex

        return CatalogIndex
    if kind != "folder":
        raise IndexKindError(f"this index is of a kind this mmsearch does not know: {kind!r}")
    return Index


def open_index(location: IndexLocation, model: ModelSpec | None = None,
               create_model: ModelSpec | None = None, dim: int | None = None,
               vector_index: str | None = None, kind: str | None = None) -> Index:
    """Open the index at `location`, as the class of its recorded kind; close when done.

    An existing index uses its recorded model; a different `model` is a ModelMismatchError.
    A missing one is created with `create_model` and `dim` when given, else it is an
    IndexNotFoundError. `kind` ("folder" or "catalog"), when given, must match the
    index's; it is also the kind a new index gets (default "folder").
    """
    if create_model is not None:
        create_database(location)
    client = connect(location)
    try:
        recorded = Index._read_meta(client)
        if recorded is not None:
            rec_model = ModelSpec.from_record(recorded["model"])
            rec_kind = recorded.get("kind", "folder")
            if model is not None and model != rec_model:
                raise ModelMismatchError(
                    f"the index at {location} was built with model {rec_model.label}; "
                    f"it cannot be searched or extended with {model.label}. Use a new index "
                    "(--db/--uri) for another model, or leave --model out.")
            if kind is not None and kind != rec_kind:
                raise IndexKindError(
                    f"the index at {location} is a {KIND_NAMES.get(rec_kind, rec_kind)}, "
                    f"not a {KIND_NAMES[kind]}; use another --db/--uri for that")
            index = class_of(rec_kind)(client, location, rec_model, int(recorded["dim"]))
            index._create()  # no-op, unless a first run was killed half-way through this
            index._check_schema()
        elif create_model is None or dim is None:
            raise IndexNotFoundError(
                f"no mmsearch index at {location} yet: build one with `mmsearch index FOLDER`"
                " (or `--catalog FILE` for a product catalogue)")
        else:
            index = class_of(kind or "folder")(client, location, create_model, dim)
            index._create(vector_index or vector_index_for(location, client))
        index._load()
        return index
    except BaseException:
        client.close()
        if location.is_embedded:
            _embedded_opened(location.db, -1)
        raise


def searcher_for(index: Index, encoder=None):
    """The searcher that fits an open index of either kind: a CatalogSearcher for a
    catalogue, a Searcher for a folder index (`encoder`: default the index model's Encoder)."""
    from mmsearch.encoder import Encoder
    from mmsearch.search import Searcher

    encoder = Encoder(index.model) if encoder is None else encoder
    if index.KIND == "catalog":
        from mmsearch.catalog import CatalogSearcher

        return CatalogSearcher(index, encoder)
    return Searcher(index, encoder)
