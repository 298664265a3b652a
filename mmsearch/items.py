"""What every index holds: items, and the one schema they are stored in.

An item is a picture and what is known about it: the picture file's facts (path, folder,
size, mtime, content hash, pixel size, when it was taken), a text (title, description and the
words BM25 indexes), fields (JSON: a product's price and brand; later a photo's place), where
it came from (`source`: the catalogue file; "" for a photo found in a folder), its picture
vector and, where the index keeps them, a vector of its text. A photo is an item whose key is
its path; a product is an item whose key is its id in the catalogue; a video scene (later)
will be an item with a time. So a new kind of item, or a new signal of a picture, is written
here once and every index has it.

Milvus's primary key is `id`, a 63-bit hash of the key (`item_id`): an integer key keeps
writes and deletes cheap at 1M rows, and a folder's shards split on it (`Shard.owns`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np

from mmsearch import coarse
from mmsearch.coarse import CODE_BITS, CODE_FIELD, HALF_FIELD

ITEMS = "mmsearch_items"
# 2: one item collection for every kind of index (1: a folder's `images` or a catalogue's
# `items`, each its own shape; mmsearch.upgrade moves those over).
SCHEMA_VERSION = 2
MAX_PATH = 4096
MAX_ID = 512  # a catalogue item's id
MAX_TITLE = 2048
MAX_TEXT = 16384
IMAGE_VECTOR = "image_vector"
TEXT_VECTOR = "text_vector"
SPARSE = "sparse"
# Vectors are stored at unit length (Index.upsert), so inner product is their cosine: IP ranks
# and scores as COSINE does (same ids and distances, measured), and FLAT skips the norm of
# every stored vector that COSINE computes at each query (28% of a search's CPU in perf):
# 40 -> 29 ms a query at 100k x 512-d in Milvus Lite 2.5.1. Indexes made before keep COSINE.
VECTOR_METRIC = "IP"
# Columns only a catalogue's items have (a photo's would be empty: at 100k rows they cost
# 1 s of every load, 4.3 s against 3.3 s, and a tenth of the insert rate; bench notes in
# items.create_items).
PRODUCT_COLUMNS = ("title", "description", "text_hash", "source")
# An item's names kept in the dynamic field, not columns (create_items says why); a
# catalogue's PRODUCT_COLUMNS too, and a photo's text ("text" is a catalogue's BM25 column).
IN_META = ("key", "folder", "size", "mtime", "hash", "text", "fields")


def item_id(key: str) -> int:
    """Stable signed 63-bit primary key of an item's key (a photo's absolute path)."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_content_hash(f, chunk: int = 1 << 20) -> str:
    """`content_hash` of an open file's bytes from where it stands, read a chunk at a time
    (a video may be larger than memory)."""
    digest = hashlib.blake2b(digest_size=16)
    while data := f.read(chunk):
        digest.update(data)
    return digest.hexdigest()


def item_text(title: str, description: str, fields: dict) -> str:
    """What BM25 indexes: title, description and the text fields (brand, category, ...), so a
    brand that no picture shows is still found."""
    words = [title, description, *(v for v in fields.values() if isinstance(v, str))]
    return " ".join(w for w in words if w)[:MAX_TEXT]


def text_hash(title: str, description: str, fields: dict) -> str:
    payload = json.dumps([title, description, fields], sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


@dataclass
class Item:
    """One item to write. `key` defaults to the path (a photo); `folder` to the path's."""

    path: str
    size: int
    mtime: float
    hash: str           # the picture's content hash
    width: int = 0
    height: int = 0
    folder: str = ""
    taken: float = 0.0  # EXIF DateTimeOriginal when present, else mtime (seconds since epoch)
    key: str = ""
    title: str = ""
    description: str = ""
    fields: dict = field(default_factory=dict)
    source: str = ""    # the catalogue file it came from: a re-import removes only its own
    image_vector: np.ndarray | None = field(default=None, repr=False)
    text_vector: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        self.key = self.key or self.path
        self.folder = self.folder or os.path.dirname(self.path)

    def record(self, vector: np.ndarray, columns: set[str]) -> dict:
        """The row Milvus stores in a collection of these `columns`; `vector` is the picture
        vector as float32. The SimHash codes are not in it: `add_codes` adds them to a whole
        batch at once (one projection for the batch, not one per row)."""
        rec = {"id": item_id(self.key), "key": self.key[:MAX_PATH], "path": self.path,
               "folder": self.folder, "size": int(self.size), "mtime": float(self.mtime),
               "taken": float(self.taken), "hash": self.hash, "width": int(self.width),
               "height": int(self.height),
               "text": item_text(self.title, self.description, self.fields),
               "fields": self.fields, IMAGE_VECTOR: vector.tolist()}
        if PRODUCT_COLUMNS[0] in columns:
            rec |= {"title": self.title[:MAX_TITLE], "description": self.description[:MAX_TEXT],
                    "text_hash": text_hash(self.title, self.description, self.fields),
                    "source": self.source[:MAX_PATH]}
        if TEXT_VECTOR in columns:
            rec[TEXT_VECTOR] = unit_rows(self.text_vector)[0].tolist()
        return rec


def unit_rows(vectors) -> np.ndarray:
    """Each row scaled to unit length (a zero row stays zero): what VECTOR_METRIC needs."""
    v = np.atleast_2d(np.asarray(vectors, np.float32))
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def add_codes(records: list[dict], vectors: np.ndarray, columns: set[str]) -> None:
    """Give each record the bit code of its vector (rows of `vectors`), and its float16 copy
    where the collection has that older column."""
    for rec, code in zip(records, coarse.codes(vectors)):
        rec[CODE_FIELD] = code
    if HALF_FIELD in columns:
        for rec, half in zip(records, coarse.halves(vectors)):
            rec[HALF_FIELD] = half


def create_items(client, dim: int, vector_index: str, index_params: dict, products: bool,
                 create) -> None:
    """Create the item collection; `create(name, schema, params)` makes it
    (Index._create_collection). Every item has the picture columns, its text and fields;
    `products` (a catalogue) adds PRODUCT_COLUMNS, a CLIP vector of each item's text (titles
    say what a picture cannot; photos go without, 2 GB less at 1M) and BM25 over the text.

    Only what a filter compares or an index needs is a column of its own (below); the rest
    of an item (IN_META) is kept in Milvus's dynamic field, one JSON per row, and read,
    written and filtered by the same names. Milvus Lite 2.5.1 pays for every column of every
    row at each load, the more so for text columns (it copies the schema once per text
    column per row). bench/columns.py, 100k photo items with codes, taking turns 3 times:
    open + load + first answer 4.32 s with every fact a column (and the float16 copies),
    2.73 s this way (quicker in every round), inserts 3,171 -> 5,802 rows/s."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True,
                                   description="mmsearch items")
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("path", DataType.VARCHAR, max_length=MAX_PATH)  # the folder filter's range
    s.add_field("taken", DataType.DOUBLE)  # the date filter
    # --orientation compares the two: Milvus cannot compare two values of the JSON
    s.add_field("width", DataType.INT32)
    s.add_field("height", DataType.INT32)
    if products:  # BM25's input must be a column of its own
        s.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True)
    s.add_field(IMAGE_VECTOR, DataType.FLOAT_VECTOR, dim=dim)
    params = client.prepare_index_params()
    params.add_index(IMAGE_VECTOR, index_type=vector_index, metric_type=VECTOR_METRIC,
                     params=index_params)
    if products:
        s.add_field(SPARSE, DataType.SPARSE_FLOAT_VECTOR)
        s.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                input_field_names=["text"], output_field_names=[SPARSE]))
        params.add_index(SPARSE, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        s.add_field(TEXT_VECTOR, DataType.FLOAT_VECTOR, dim=dim)
        params.add_index(TEXT_VECTOR, index_type=vector_index, metric_type=VECTOR_METRIC,
                         params=index_params)
    if vector_index == "FLAT":  # bit codes for a quick first step on large indexes
        # (mmsearch/coarse.py); servers have HNSW instead
        s.add_field(CODE_FIELD, DataType.BINARY_VECTOR, dim=CODE_BITS)
        params.add_index(CODE_FIELD, index_type="BIN_FLAT", metric_type="HAMMING")
    create(ITEMS, s, params)


def stored_columns(described: dict) -> set[str]:
    """What an item collection holds, by name, from `describe_collection`: its columns, and
    where it has a dynamic field, the names kept there (IN_META; a catalogue's, BM25 over its
    text, PRODUCT_COLUMNS too). Collections made before IN_META kept every name a column."""
    names = {f["name"] for f in described.get("fields", [])}
    if described.get("enable_dynamic_field"):
        names |= set(IN_META) | (set(PRODUCT_COLUMNS) if SPARSE in names else set())
    return names


def create_meta(client, name: str, create) -> None:
    """Create the meta collection: one row per key ("index": the schema, model, dim and kind;
    "roots", "catalogs", "last_indexed"), its value JSON."""
    from pymilvus import DataType, MilvusClient

    meta = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    meta.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
    meta.add_field("value", DataType.VARCHAR, max_length=65535)
    meta.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector field
    params = client.prepare_index_params()
    params.add_index("dummy", index_type="FLAT", metric_type="L2")
    create(name, meta, params)
