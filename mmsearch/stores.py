"""Opening an index: the one place that reads what an index records about itself.

An index records its model, its schema version and its kind beside its items: "folder" (photos
found in folders, one item per picture file) or "catalog" (one item per product). Every kind
is stored the same way (`mmsearch.items`), so one `Index` class serves them; `open_index`
checks the model and the kind, finishes a half-made index and moves an older schema over
(`mmsearch.upgrade`).
"""

from __future__ import annotations

from mmsearch.config import IndexLocation, ModelSpec
from mmsearch.engine import (IndexKindError, IndexNotFoundError, ModelMismatchError,
                             OutdatedIndexError, connect, create_database, vector_index_for)
from mmsearch.index import META, Index
from mmsearch.lite import _embedded_opened, start_early
from mmsearch.items import ITEMS, SCHEMA_VERSION
from mmsearch.upgrade import upgrade
from mmsearch.words import WORDS

KIND_NAMES = {"folder": "folder index (`mmsearch index FOLDER`)",
              "catalog": "product catalogue (`mmsearch index --catalog FILE`)"}


# What opening an index loads, in the order a fresh process asks for it as soon as the engine
# has started (`start_engine_early`): the meta first (a few rows: the model it names is read
# next, while the rest loads), then the items, then the photos' words.
EARLY_LOADS = (META, ITEMS, WORDS)


def start_engine_early(location: IndexLocation) -> None:
    """For a fresh process about to open the embedded index at `location` (a cold search, an
    app's launch, an indexing run): its engine starts and loads the index in the background
    while this process imports the rest (pymilvus ~0.5 s; gradio ~5 s before an app opens
    it). `open_index` then finds it loaded, or waits for the load under way."""
    start_early(location, load=EARLY_LOADS)


def check_kind(kind: str) -> str:
    if kind not in KIND_NAMES:
        raise IndexKindError(f"this index is of a kind this mmsearch does not know: {kind!r}")
    return kind


def open_index(location: IndexLocation, model: ModelSpec | None = None,
               create_model: ModelSpec | None = None, dim: int | None = None,
               vector_index: str | None = None, kind: str | None = None,
               meanwhile=None) -> Index:
    """Open the index at `location`; close when done.

    An existing index uses its recorded model; a different `model` is a ModelMismatchError.
    A missing one is created with `create_model` and `dim` when given, else it is an
    IndexNotFoundError. `kind` ("folder" or "catalog"), when given, must match the
    index's; it is also the kind a new index gets (default "folder"). `meanwhile(model)`
    runs while the engine loads the items (`_load_while`), or once they are loaded where
    `start_engine_early` had them loading already.
    """
    if create_model is not None:
        create_database(location)
    client = connect(location, create=create_model is not None)
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
            index = Index(client, location, rec_model, int(recorded["dim"]), check_kind(rec_kind))
            if int(recorded.get("schema", 1)) > SCHEMA_VERSION:
                raise OutdatedIndexError(
                    f"the index at {location} was made by a newer mmsearch (schema "
                    f"{recorded['schema']}); upgrade mmsearch to use it")
            index._create()  # no-op, unless a first run was killed half-way through this
            if int(recorded.get("schema", 1)) < SCHEMA_VERSION:
                upgrade(index, recorded)
        elif create_model is None or dim is None:
            raise IndexNotFoundError(
                f"no mmsearch index at {location} yet: build one with `mmsearch index FOLDER`"
                " (or `--catalog FILE` for a product catalogue)")
        else:
            index = Index(client, location, create_model, dim, check_kind(kind or "folder"))
            index._create(vector_index or vector_index_for(location, client))
        if meanwhile is not None:
            _load_while(index, meanwhile)
        index._load()
        return index
    except BaseException:
        client.close()
        if location.is_embedded:
            _embedded_opened(location.db, -1)
        raise


def _load_while(index: Index, meanwhile) -> None:
    """Load the index's collections in a thread while this one runs `meanwhile(model)`: the
    query encoder opens (imports onnxruntime and the tokenizer, opens the ONNX session:
    ~0.2-0.3 s) while the engine loads 100k rows (~2 s). Where `start_engine_early` asked for
    the load, `_read_meta` has already waited for it (the engine answers nothing meanwhile),
    so this overlap is for the other engines (a server, Milvus Lite 3.x), and the encoder
    of the remembered model opened before (`open_searcher`). The thread only makes
    the calls `_read_meta` already made on this client (so it imports nothing: two threads
    importing at once can get a partly initialised module): `_load` without its flush, which
    `open_index` runs after it, finding the collections loaded."""
    import threading

    failed: list[BaseException] = []

    def load() -> None:
        try:
            index._load(flush=False)
        except BaseException as exc:  # noqa: BLE001 - raised below, in the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=load, name="load", daemon=True)
    thread.start()
    try:
        meanwhile(index.model)
    finally:
        thread.join()
    if failed:
        raise failed[0]


def open_searcher(location: IndexLocation, text: bool = True, visual: bool = True,
                  prepare=None):
    """The searcher of the index at `location`, its query encoder (for `text` and `visual`
    queries) readied while the engine loads the items (a launch had done one after the
    other: at 100k ~3-4 s of each). That is the model's ONNX towers where they were exported
    (`query_encoder`): they open in ~0.5 s, where importing torch and loading the model took
    ~5 s of both cores beside the engine's load; the torch model then loads on the first
    indexing job (`Searcher.indexing_encoder`).

    The towers of the model this index was last opened with (`towers.remembered_model`)
    start opening before the index is asked anything: an engine that loads the index
    (`start_engine_early`) answers nothing else until it is done. `prepare(towers)` then
    runs (a cold search encodes its texts). The index's own record decides the model; a
    different one is opened once the index names it, and remembered."""
    from mmsearch.encoder import Encoder
    from mmsearch.towers import query_encoder, remember_model, remembered_model

    wanted = text or visual
    hint = remembered_model(location) if wanted else None
    early = query_encoder(hint) if hint else None
    if early is not None and not isinstance(early, Encoder):
        early.warm_meanwhile(text=text, visual=visual)
        if prepare is not None:
            prepare(early)
    encoders: list = []

    def ready(model) -> None:
        encoder = early if early is not None and model == hint else query_encoder(model)
        encoders.append(encoder)
        if isinstance(encoder, Encoder):
            encoder.warm()  # no towers exported: the torch model
        elif encoder is not early:
            encoder.warm(text=text, visual=visual)

    index = open_index(location, meanwhile=ready if wanted else None)
    if wanted and index.model != hint:
        remember_model(location, index.model)
    return searcher_for(index, encoders[0] if encoders else query_encoder(index.model))


def searcher_for(index: Index, encoder=None):
    """The searcher of an open index (`encoder`: default the index model's Encoder)."""
    from mmsearch.encoder import Encoder
    from mmsearch.search import Searcher

    return Searcher(index, Encoder(index.model) if encoder is None else encoder)
