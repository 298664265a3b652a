"""The Index: image rows and their CLIP vectors in Milvus, embedded or on a server.

The same pymilvus code serves an embedded Milvus Lite index (`--db PATH`) and a Milvus server
(`--uri http://host:19530`): only the MilvusClient's URI differs (`mmsearch.engine` connects
and knows the engines). The schema lives here and nowhere else. The model that made the
vectors is recorded beside them, so later runs use it and a different model is refused
instead of silently mixing two vector spaces.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field, fields
from typing import Iterable, Iterator

import numpy as np

from mmsearch import coarse
from mmsearch.coarse import CODE_BITS, CODE_FIELD, HALF_FIELD
from mmsearch.config import IndexLocation, ModelSpec
from mmsearch.engine import (VECTOR_INDEX_PARAMS, IndexError_, _disk_bytes, _embedded_opened,
                             searching, vector_index_for, vector_search_params, writing)
from mmsearch.filters import quote, under_folder

IMAGES = "images"
META = "mmsearch_meta"
SCHEMA_VERSION = 1
MAX_PATH = 4096
# Rows per insert/query page: large enough to amortise the RPC, small enough for bounded memory.
# Milvus Lite 2.5.1 inserts 5k-12k rows/s in batches of 500-1,000 rows and 277 rows/s in
# batches of 5,000 (NOTES.md): every write is cut to at most PAGE rows.
PAGE = 1000
# A write the engine fails (Milvus Lite 2.5.1 on a full disk answers UNKNOWN) is retried this
# many times, not pymilvus's 75 (~3 minutes of back-off before the one line).
WRITE_RETRIES = 3


@dataclass
class ImageRow:
    """One indexed picture. `id` is derived from the absolute path (see `path_id`)."""

    path: str
    size: int
    mtime: float
    hash: str
    width: int
    height: int
    folder: str = ""
    taken: float = 0.0  # EXIF DateTimeOriginal when present, else mtime (seconds since epoch)
    vector: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if not self.folder:
            self.folder = os.path.dirname(self.path)


@dataclass(frozen=True)
class Hit:
    path: str
    score: float
    width: int = 0
    height: int = 0
    hash: str = ""

    def to_json(self) -> dict:
        return {"path": self.path, "score": round(float(self.score), 6)}


def path_id(path: str) -> int:
    """Stable signed 63-bit primary key of an absolute path."""
    digest = hashlib.blake2b(path.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class Index:
    """Image rows in a Milvus collection. Open with `mmsearch.stores.open_index(...)`; close
    when done.

    A folder index; `mmsearch.catalog.CatalogIndex` is the product-catalogue kind. The kind
    is recorded with the model, and `open_index` returns the class that fits. Every method
    works on `self.COLLECTION`, so a kind inherits them for its own collection."""

    KIND = "folder"
    COLLECTION = IMAGES

    def __init__(self, client, location: IndexLocation, model: ModelSpec, dim: int):
        self.client = client
        self.location = location
        self.model = model
        self.dim = dim

    # -- opening -------------------------------------------------------------------------
    @staticmethod
    def _read_meta(client) -> dict | None:
        from pymilvus.exceptions import MilvusException

        try:
            if not client.has_collection(META):
                return None
        except MilvusException as exc:  # a server database not created yet: no index there
            if "database" in str(exc) and "not exist" in str(exc):
                return None
            raise
        client.load_collection(META)
        rows = client.query(META, filter='key == "index"', output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else None

    def _create(self, vector_index: str | None = None) -> None:
        """Create what is missing: the meta collection first (it names the model), then the
        images collection, so a run killed in between leaves an index the next run finishes."""
        from pymilvus import DataType, MilvusClient

        if not self.client.has_collection(META):
            meta = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            meta.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
            meta.add_field("value", DataType.VARCHAR, max_length=65535)
            meta.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector field
            mparams = self.client.prepare_index_params()
            mparams.add_index("dummy", index_type="FLAT", metric_type="L2")
            self._create_collection(META, meta, mparams)
            self._put_meta("index", {"schema": SCHEMA_VERSION, "model": self.model.to_record(),
                                     "dim": self.dim, "kind": self.KIND,
                                     "created": time.time()})
        if not self.client.has_collection(self.COLLECTION):
            self._create_data(vector_index or vector_index_for(self.location, self.client))

    def _check_schema(self) -> None:
        """Refuse, in one line, a collection this mmsearch cannot use safely (kinds override)."""

    def _create_data(self, vector_index: str) -> None:
        """The collection of this kind of index: here, one row per picture file."""
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                            description="mmsearch images")
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH)
        schema.add_field("folder", DataType.VARCHAR, max_length=MAX_PATH)
        schema.add_field("size", DataType.INT64)
        schema.add_field("mtime", DataType.DOUBLE)
        schema.add_field("taken", DataType.DOUBLE)
        schema.add_field("hash", DataType.VARCHAR, max_length=64)
        schema.add_field("width", DataType.INT32)
        schema.add_field("height", DataType.INT32)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        params = self.client.prepare_index_params()
        params.add_index("vector", index_type=vector_index, metric_type="COSINE",
                         params=VECTOR_INDEX_PARAMS.get(vector_index, {}))
        if vector_index == "FLAT":  # bit codes and float16 copies for a quick first step
            # on large indexes (mmsearch/coarse.py); servers have HNSW instead
            schema.add_field(CODE_FIELD, DataType.BINARY_VECTOR, dim=CODE_BITS)
            schema.add_field(HALF_FIELD, DataType.VARCHAR, max_length=coarse.half_chars(self.dim))
            params.add_index(CODE_FIELD, index_type="BIN_FLAT", metric_type="HAMMING")
        self._create_collection(self.COLLECTION, schema, params)

    def _create_collection(self, name: str, schema, params) -> None:
        """Create a collection; when several indexers (shards) start at once on one server,
        the first one creates it and the others use it."""
        from pymilvus.exceptions import MilvusException

        try:
            self.client.create_collection(name, schema=schema, index_params=params)
        except MilvusException:
            if not self.client.has_collection(name):
                raise

    def _writing(self):
        return writing(self.location)

    def searching(self):
        return searching()

    def _put_meta(self, key: str, value) -> None:
        with self._writing():
            self.client.upsert(META, [{"key": key, "value": json.dumps(value),
                                       "dummy": [0.0, 0.0]}], retry_times=WRITE_RETRIES)

    def _get_meta(self, key: str, default=None):
        rows = self.client.query(META, filter=f"key == {quote(key)}", output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else default

    def _load(self) -> None:
        # A reopened collection is "released": load it now, not on the first search.
        self.client.load_collection(self.COLLECTION)
        self.client.load_collection(META)
        try:
            self.flush()  # rows a killed run left in the write-ahead log: make them fast
        except IndexError_:
            pass  # a full disk must not stop searching; the rows are found without it

    def flush(self) -> None:
        """Seal recent writes into indexed segments. Milvus Lite 3.x searches unsealed rows by
        brute force in Python (0.5 s at 10k rows); sealed ones through the vector index. The
        indexer calls this once at the end of a run."""
        with self._writing():
            self.client.flush(self.COLLECTION)

    def close(self) -> None:
        if self.client is None:
            return
        self.client.close()
        self.client = None
        if self.location.is_embedded:
            _embedded_opened(self.location.db, -1)

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- roots: the folders this index covers (the app serves files only from these) ----
    @property
    def roots(self) -> list[str]:
        return list(self._get_meta("roots", []))

    def add_roots(self, folders: Iterable[str]) -> None:
        roots = self.roots
        for folder in folders:
            if folder not in roots:
                roots.append(folder)
        self._put_meta("roots", roots)

    def mark_indexed(self) -> None:
        self._put_meta("last_indexed", time.time())

    @property
    def last_indexed(self) -> float | None:
        return self._get_meta("last_indexed")

    # -- rows ----------------------------------------------------------------------------
    def upsert(self, rows: list[ImageRow]) -> None:
        if not rows:
            return
        vectors = np.stack([np.asarray(row.vector, np.float32) for row in rows])
        records = []
        for row, vector in zip(rows, vectors):
            record = {f.name: getattr(row, f.name) for f in fields(row)}
            record["vector"] = vector.tolist()
            record["id"] = path_id(row.path)
            records.append(record)
        if self._has_codes():
            for record, code, half in zip(records, coarse.codes(vectors), coarse.halves(vectors)):
                record[CODE_FIELD], record[HALF_FIELD] = code, half
        self._write(self.COLLECTION, records)
        self.__dict__.pop("_rows_seen", None)

    def _has_codes(self) -> bool:
        """Whether the collection stores bit codes and float16 copies (folder indexes made
        before they did not: those are searched by their vector index alone)."""
        if "_codes" not in self.__dict__:
            described = self.client.describe_collection(self.COLLECTION)
            names = {f["name"] for f in described.get("fields", [])}
            self._codes = {CODE_FIELD, HALF_FIELD} <= names
        return self._codes

    def _rows_now(self) -> int:
        """The row count, asked again at most once a minute (and after each upsert here)."""
        seen = self.__dict__.get("_rows_seen")
        if seen is None or time.monotonic() - seen[1] > 60:
            seen = self.__dict__["_rows_seen"] = (self.count(), time.monotonic())
        return seen[0]

    def _write(self, collection: str, records: list[dict]) -> None:
        """Insert or replace rows by their `id`, <= PAGE a call (any --batch-size).

        Rows the collection lacks are inserted and only the others upserted: Milvus Lite
        2.5.1's upsert slows as the collection grows (5.5k rows/s at 50k, 2.1k at 200k, and a
        1M import that did not finish in 21 minutes), its insert does not (6k rows/s at 200k),
        and asking which of 1,000 ids exist costs 6-20 ms."""
        by_id = {r["id"]: r for r in records}  # the same row twice in one call: the last wins
        records = list(by_id.values())
        with self._writing():
            for i in range(0, len(records), PAGE):
                page = records[i:i + PAGE]
                have = {r["id"] for r in self.client.get(collection, ids=[r["id"] for r in page],
                                                         output_fields=["id"])}
                new = [r for r in page if r["id"] not in have]
                old = [r for r in page if r["id"] in have]
                if new:
                    self.client.insert(collection, new, retry_times=WRITE_RETRIES)
                if old:
                    self.client.upsert(collection, old, retry_times=WRITE_RETRIES)

    def delete_paths(self, paths: Iterable[str]) -> None:
        ids = [path_id(p) for p in paths]
        with self._writing():
            for i in range(0, len(ids), PAGE):
                self.client.delete(self.COLLECTION, ids=ids[i:i + PAGE], retry_times=WRITE_RETRIES)

    def rows_under(self, folder: str) -> Iterator[dict]:
        """path, size, mtime and hash of every indexed picture under `folder`."""
        return self.iter_rows(("path", "size", "mtime", "hash"), under_folder(folder))

    def iter_rows(self, fields: Iterable[str], filter: str = "") -> Iterator[dict]:
        """The given fields of every row matching `filter`, a page at a time."""
        it = self.client.query_iterator(self.COLLECTION, batch_size=PAGE, filter=filter,
                                        output_fields=list(fields))
        try:
            while batch := it.next():
                yield from batch
        finally:
            it.close()

    def get_rows(self, paths: list[str], fields: Iterable[str] = ("size", "mtime", "hash")
                 ) -> dict[str, dict]:
        """Stored fields of the given paths (those indexed), keyed by path."""
        if not paths:
            return {}
        rows = self.client.get(self.COLLECTION, ids=[path_id(p) for p in paths],
                               output_fields=["path", *fields])
        return {r["path"]: r for r in rows}

    def count(self) -> int:
        res = self.client.query(self.COLLECTION, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    # -- search --------------------------------------------------------------------------
    def search(self, vector: np.ndarray, k: int = 20, filter: str = "") -> list[Hit]:
        return self.search_many([vector], k, filter)[0]

    def search_many(self, vectors, k: int = 20, filter: str = "") -> list[list[Hit]]:
        """The top-k rows matching `filter` for each vector, best first (one request)."""
        k = max(1, min(int(k), 16384))
        index_type = self.vector_index_type("vector")
        if index_type == "FLAT" and self._has_codes() and \
                coarse.worth_it(self._rows_now(), k, len(vectors)):
            return self._search_by_codes(vectors, k, filter)
        with self.searching():
            res = self.client.search(
                self.COLLECTION, data=[np.asarray(v, np.float32).tolist() for v in vectors],
                anns_field="vector", limit=k, filter=filter,
                output_fields=["path", "width", "height", "hash"],
                search_params=vector_search_params(index_type, k))
        return [[Hit(e["path"], float(h["distance"]), e["width"], e["height"], e["hash"])
                 for h in hits for e in [h["entity"]]] for hits in res]

    def _search_by_codes(self, vectors, k: int, filter: str) -> list[list[Hit]]:
        """Hamming over the bit codes for coarse.CANDIDATES rows, then exact cosine over their
        float16 copies (mmsearch/coarse.py: 60 ms at 1M, against 300+ ms FLAT)."""
        with self.searching():
            res = self.client.search(
                self.COLLECTION, data=coarse.codes(vectors), anns_field=CODE_FIELD,
                limit=max(coarse.CANDIDATES, k), filter=filter,
                output_fields=["path", "width", "height", "hash", HALF_FIELD],
                search_params={"metric_type": "HAMMING", "params": {}})
        return [[Hit(e["path"], h["distance"], e["width"], e["height"], e["hash"])
                 for h in coarse.rerank(v, list(hits), k) for e in [h["entity"]]]
                for v, hits in zip(vectors, res)]

    def vector_index_type(self, field: str) -> str | None:
        """The index type on a vector field (read once: AUTOINDEX, HNSW, IVF_FLAT, FLAT)."""
        cache = self.__dict__.setdefault("_index_types", {})
        if field not in cache:
            try:
                cache[field] = self.client.describe_index(self.COLLECTION, field).get("index_type")
            except Exception:  # noqa: BLE001 - an engine without describe_index: ef suits both
                cache[field] = None
        return cache[field]

    def stats(self) -> dict:
        return {"images": self.count(), "kind": self.KIND, "model": self.model.label,
                "location": str(self.location),
                "dim": self.dim, "roots": self.roots, "last_indexed": self.last_indexed,
                "disk_bytes": _disk_bytes(self.location)}


