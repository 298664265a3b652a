"""The Index: image rows and their CLIP vectors in Milvus, embedded or on a server.

The same pymilvus code serves an embedded Milvus Lite index (`--db PATH`) and a Milvus server
(`--uri http://host:19530`): only the MilvusClient's URI differs. Two embedded engines are in
use (see `embedded_engine`): Milvus Lite 2.5.x, the C++ Milvus core, whose index is one `.db`
file (Linux, macOS), and the pure-Python Milvus Lite 3.x, whose index is a directory (Windows,
where 2.5 has no wheels); the calls differ only where guarded by feature below. The schema lives here and
nowhere else. The model that made the vectors is recorded beside them, so later runs use it
and a different model is refused instead of silently mixing two vector spaces.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from mmsearch import coarse
from mmsearch.coarse import BITS_FIELD, sign_bits
from mmsearch.config import IndexLocation, ModelSpec
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


VECTOR_INDEX_PARAMS = {"HNSW": {"M": 16, "efConstruction": 200}, "FLAT": {}, "AUTOINDEX": {},
                       "IVF_FLAT": {"nlist": 1024}}


@functools.cache
def embedded_engine() -> str:
    """"file" for Milvus Lite 2.x (the C++ Milvus core run as a child process: the index is a
    `.db` file), "directory" for the pure-Python Milvus Lite 3.x (the index is a directory).
    A fact about the installed package, so asked once."""
    _quiet_imports()
    try:
        import milvus_lite.server  # noqa: F401 - only 2.x has it
    except ImportError:
        return "directory"
    return "file"


def vector_index_for(location: IndexLocation, client=None) -> str:
    """The vector index type a new collection at `location` gets; the one place that decides.

    Embedded Milvus Lite 2.5.1 accepts only FLAT, IVF_FLAT and AUTOINDEX ("local mode only
    support FLAT IVF_FLAT AUTOINDEX"). Measured (bench/results/engines.json, 512-d, k=10, 200
    queries, recall against numpy exact): FLAT p50 32 ms at 100k and 275 ms at 1M, recall 1.0
    (exact). IVF_FLAT and AUTOINDEX answer in 2 ms at 100k and 12-15 ms at 1M, but ignore
    nprobe/ef (identical ids at 1, 16, 64, 256) and their recall cannot be raised: 0.92 at 1M
    on clustered vectors, 0.64 (100k) and 0.27 (1M) on less clustered ones. A search that
    silently misses a third of the right pictures is worse than a slower exact one: FLAT.
    Milvus Lite 2.5.1's server (`mmsearch serve-index`) is the same local mode, recognised by
    `client` having no databases. Milvus servers (standalone, cluster) and Milvus Lite 3.x
    keep HNSW (M=16, efConstruction=200; recall 0.99+ measured there)."""
    if location.is_embedded:
        return "FLAT" if embedded_engine() == "file" else "HNSW"
    if client is not None and not databases_supported(client):
        return "FLAT"
    return "HNSW"


def vector_search_params(index_type: str | None, k: int) -> dict:
    """Search params that fit the vector index: ef for graphs (HNSW, AUTOINDEX), nprobe for
    IVF, nothing for FLAT."""
    if index_type and index_type.startswith("IVF"):
        return {"metric_type": "COSINE", "params": {"nprobe": 32}}
    if index_type == "FLAT":
        return {"metric_type": "COSINE", "params": {}}
    return {"metric_type": "COSINE", "params": {"ef": max(64, 2 * k)}}


def _quiet_imports() -> None:
    """Milvus Lite 2.5.1 imports pkg_resources, whose deprecation warning would print on
    every command; its child engine logs parse errors (glog) that each reach the user as one
    IndexError_ line instead."""
    import warnings

    warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")
    os.environ.setdefault("GLOG_minloglevel", "3")


class IndexError_(RuntimeError):
    """Base for index problems that deserve one clear line, not a traceback."""


class IndexInUseError(IndexError_):
    pass


class ModelMismatchError(IndexError_):
    pass


class IndexNotFoundError(IndexError_):
    pass


class SearchFailedError(IndexError_):
    pass


class OutdatedIndexError(IndexError_):
    """An index an older mmsearch made, which this one cannot use safely."""


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


def quiet_backend_logs() -> None:
    """The embedded Milvus runs in this process and logs its internals (an unimplemented
    timestamp call on every iterator, a traceback when the directory is locked). Each failure
    that matters reaches the user as one clear IndexError_ line instead. pymilvus configures
    its loggers when imported, so this runs after that import."""
    for name, level in (("pymilvus", logging.CRITICAL), ("milvus_lite", logging.CRITICAL),
                        ("grpc", logging.CRITICAL)):
        logging.getLogger(name).setLevel(level)
    _quiet_imports()
    root = logging.getLogger()
    if not any(isinstance(f, _MilvusLiteRecords) for f in root.filters):
        root.addFilter(_MilvusLiteRecords())  # milvus_lite.server logs to the root logger


class _MilvusLiteRecords(logging.Filter):
    """Drops what Milvus Lite 2.x logs on the root logger ("Open ... failed, the file has been
    opened by another program"): the user gets IndexInUseError's line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}milvus_lite{os.sep}" not in (record.pathname or "")


class IndexKindError(IndexError_):
    pass


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
    def connect(location: IndexLocation):
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        quiet_backend_logs()
        if location.is_embedded:
            check_embedded_path(location.db)
            try:
                location.db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise IndexError_(f"cannot create the index at {location.db}: "
                                  f"{exc.strerror or exc}") from None
            # Milvus Lite writes the index and, for 2.x, a lock file beside it (.NAME.lock)
            for needed in (location.db.parent, location.db):
                if needed.exists() and not os.access(needed, os.W_OK):
                    raise IndexError_(
                        f"the index folder {location.db.parent} is read-only for this user: "
                        "mmsearch needs to write there (even to search, it keeps a lock file). "
                        "Use a writable --db, or serve the index with `mmsearch serve-index` "
                        "and pass --uri.")
            if embedded_in_use(location.db):
                raise _in_use(location)
            uri = str(location.db)
        else:
            uri = location.uri
        try:
            client = MilvusClient(uri=uri, token=location.token or "")
        except MilvusException as exc:
            text = getattr(exc, "message", None) or str(exc)
            if location.is_embedded and ("lock" in text.lower() or "Open local milvus failed" in text):
                raise _in_use(location) from None
            raise IndexError_(f"cannot open the index at {location}: {text}") from None
        if location.is_embedded:
            _embedded_opened(location.db, +1)
        elif location.server_database()[1] is not None and not databases_supported(client):
            client.close()
            raise _no_databases(location)
        return client

    @staticmethod
    def create_database(location: IndexLocation) -> None:
        """On a server, create the database named in the URI (`http://host:19530/photos`)
        if it is missing: one server can hold several indexes."""
        address, name = location.server_database()
        if location.is_embedded or name is None:
            return
        client = Index.connect(IndexLocation(uri=address, token=location.token))
        from pymilvus.exceptions import MilvusException

        try:
            if not databases_supported(client):
                raise _no_databases(location)
            if name not in client.list_databases():
                client.create_database(name)
        except MilvusException as exc:
            if name not in client.list_databases():  # not another indexer creating it first
                raise IndexError_(f"cannot create the database {name!r} on {address}: "
                                  f"{getattr(exc, 'message', exc)}") from None
        finally:
            client.close()

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
        if vector_index == "FLAT":  # sign bits for a quick first step (mmsearch/coarse.py);
            # servers have HNSW instead
            schema.add_field(BITS_FIELD, DataType.BINARY_VECTOR, dim=-(-self.dim // 8) * 8)
            params.add_index(BITS_FIELD, index_type="BIN_FLAT", metric_type="HAMMING")
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

    @contextmanager
    def _writing(self):
        """Turn a failed write (disk full, read-only folder, server gone) into one clear line.
        Batches written before it stay in the index; the next run redoes only the rest."""
        from pymilvus.exceptions import MilvusException

        try:
            yield
        except MilvusException as exc:
            reason = getattr(exc, "message", None) or str(exc)
            if "No space left" in reason or "errno 28" in reason.lower() or self._disk_full():
                reason = "the disk is full"
            elif "Read-only" in reason or "Permission denied" in reason:
                reason = "the index folder is read-only"
            raise IndexError_(f"cannot write to the index at {self.location}: {reason}. What was "
                              "indexed before this is kept; fix it and run again.") from None

    def _disk_full(self) -> bool:
        """Milvus Lite 2.5.1 reports a full disk as an "Unexpected error": look at the disk."""
        if not self.location.is_embedded:
            return False
        import shutil

        try:
            usage = shutil.disk_usage(self.location.db.parent)
        except OSError:
            return False
        return usage.free < max(1 << 20, usage.total // 50)

    @contextmanager
    def searching(self):
        """An engine error during a search (a filter it rejects, a server gone) becomes one
        short line, never a traceback."""
        from pymilvus.exceptions import MilvusException

        try:
            yield
        except MilvusException as exc:
            reason = (getattr(exc, "message", None) or str(exc)).strip().splitlines()
            reason = reason[0][:160] if reason else type(exc).__name__
            raise SearchFailedError(f"the index could not run this search: {reason}") from None

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
        records = []
        with_bits = self._has_bits()
        for row in rows:
            record = {f.name: getattr(row, f.name) for f in fields(row)}
            record["vector"] = np.asarray(row.vector, np.float32).tolist()
            if with_bits:
                record[BITS_FIELD] = sign_bits(row.vector)[0]
            record["id"] = path_id(row.path)
            records.append(record)
        self._write(self.COLLECTION, records)
        self.__dict__.pop("_rows_seen", None)

    def _has_bits(self) -> bool:
        """Whether the collection stores sign bits (folder indexes made before they did not:
        those are searched by their vector index alone)."""
        if "_bits" not in self.__dict__:
            described = self.client.describe_collection(self.COLLECTION)
            self._bits = any(f["name"] == BITS_FIELD for f in described.get("fields", []))
        return self._bits

    def _rows_now(self) -> int:
        """The row count, asked again at most once a minute (and after each write here)."""
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
        if index_type == "FLAT" and self._has_bits() and \
                coarse.worth_it(self._rows_now(), k, len(vectors)):
            return self._search_by_bits(vectors, k, filter)
        with self.searching():
            res = self.client.search(
                self.COLLECTION, data=[np.asarray(v, np.float32).tolist() for v in vectors],
                anns_field="vector", limit=k, filter=filter,
                output_fields=["path", "width", "height", "hash"],
                search_params=vector_search_params(index_type, k))
        return [[Hit(e["path"], float(h["distance"]), e["width"], e["height"], e["hash"])
                 for h in hits for e in [h["entity"]]] for hits in res]

    def _search_by_bits(self, vectors, k: int, filter: str) -> list[list[Hit]]:
        """Hamming over the sign bits for coarse.CANDIDATES rows, then exact cosine over their
        vectors (mmsearch/coarse.py: 50 ms at 1M, against 300+ ms FLAT)."""
        with self.searching():
            res = self.client.search(
                self.COLLECTION, data=sign_bits(vectors), anns_field=BITS_FIELD,
                limit=max(coarse.CANDIDATES, k), filter=filter,
                output_fields=["path", "width", "height", "hash", "vector"],
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


def _disk_bytes(location: IndexLocation) -> int | None:
    if not location.is_embedded or not location.db.exists():
        return None
    if location.db.is_file():
        return location.db.stat().st_size
    return sum(f.stat().st_size for f in location.db.rglob("*") if f.is_file())


# -- embedded engines: paths, locks, the per-process engine ---------------------------------
_NAME = re.compile(r"^[A-Za-z0-9.\-_]+$")
_OPEN: dict[str, int] = {}
_OPEN_LOCK = threading.Lock()


def _lock_path(db: Path) -> Path:
    """Milvus Lite 2.x's lock file, beside the index (milvus_lite/server.py)."""
    return db.parent / f".{db.name}.lock"


def check_embedded_path(db: Path) -> None:
    """Refuse, in one line, an embedded index this engine cannot open: an index of the other
    Milvus Lite generation, or (2.x) a name its server does not accept."""
    made_by_3x = db.is_dir() and any((db / n).exists() for n in ("LOCK", "collections",
                                                                  "databases"))
    if embedded_engine() == "file":
        if made_by_3x:
            raise OutdatedIndexError(
                f"the index {db} was made by an mmsearch on Milvus Lite 3.x (a folder); this "
                "one uses Milvus Lite 2.5 (a .db file) and cannot read it. Move it: with the "
                f"old mmsearch run `mmsearch export OLD.parquet --db {db}`, then with this one "
                f"`mmsearch import OLD.parquet --db {db.with_name(db.stem + '-2.5.db')}`")
        if db.is_dir():
            raise IndexError_(f"{db} is a folder; an embedded index is a .db file (--db "
                              "PATH/NAME.db)")
        if db.suffix != ".db" or not _NAME.match(db.name) or len(db.name) > 36:
            raise IndexError_(
                f"cannot use {db.name!r} as an embedded index name: Milvus Lite needs a file "
                "name ending in .db, of letters, digits, '.', '-' and '_' only, at most 36 "
                "characters (e.g. --db ~/photos-index.db)")
    elif db.is_file():
        raise OutdatedIndexError(
            f"the index {db} was made by an mmsearch on Milvus Lite 2.5 (a .db file); this one "
            "uses Milvus Lite 3.x (a folder) and cannot read it. Move it: with the other mmsearch "
            f"run `mmsearch export OLD.parquet --db {db}`, then here `mmsearch import "
            f"OLD.parquet --db {db.with_name(db.stem + '-3.db')}`")


def embedded_in_use(db: Path) -> bool:
    """Whether another process holds Milvus Lite 2.x's lock on `db`. Asked before connecting:
    a Milvus Lite 2.5.1 open that fails on the lock deletes the lock file as it gives up, so
    a third process would then open the index beside the running one."""
    if embedded_engine() != "file" or _opened_here(db):
        return False
    lock = _lock_path(db)
    if not lock.exists():
        return False
    import fcntl

    try:
        with open(lock, "a") as f:  # this process holds no lock on it (checked above)
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.lockf(f, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _opened_here(db: Path) -> bool:
    with _OPEN_LOCK:
        return _OPEN.get(str(db.absolute().resolve()), 0) > 0


def _embedded_opened(db: Path, delta: int) -> None:
    """Count this process's open clients per embedded index; when the last one closes, stop
    the engine (2.x: a child process, ~100 MB) and free the index for other processes."""
    key = str(db.absolute().resolve())
    with _OPEN_LOCK:
        count = _OPEN.get(key, 0) + delta
        if count > 0:
            _OPEN[key] = count
            return
        _OPEN.pop(key, None)
    try:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(key)
    except Exception:  # noqa: BLE001 - an engine without it keeps its server until exit
        pass


def databases_supported(client) -> bool:
    """Whether the server has databases. Milvus standalone/cluster and Milvus Lite 3.x's
    server do; Milvus Lite 2.5.1's answers UNIMPLEMENTED and ignores the database in the URI
    (every name would share one set of collections)."""
    import grpc

    try:
        client.list_databases()
    except grpc.RpcError as exc:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        return code != grpc.StatusCode.UNIMPLEMENTED
    except Exception:  # noqa: BLE001 - e.g. not allowed to list them: databases exist
        return True
    return True


def _no_databases(location: IndexLocation) -> IndexError_:
    address, name = location.server_database()
    return IndexError_(
        f"the Milvus server at {address} has no databases (Milvus Lite's server), so it cannot "
        f"hold the index {name!r} beside others: use --uri {address} (one index per server; "
        "serve another index on another port with `mmsearch serve-index --data-dir OTHER.db "
        "--port N`) or a Milvus standalone/cluster server")


def _in_use(location: IndexLocation) -> IndexInUseError:
    return IndexInUseError(
        f"the index {location.db} is in use by another mmsearch process (the app or an "
        "indexer). Close it, or share the index: run `mmsearch serve-index --data-dir "
        f"{location.db}` (it listens on 127.0.0.1:19530 only) and pass --uri "
        "http://127.0.0.1:19530 to every mmsearch command.")


def remove_embedded(db: Path) -> None:
    """Delete an embedded index: the .db file (2.x) with its lock file, or 3.x's folder."""
    import shutil

    if db.is_dir():
        shutil.rmtree(db, ignore_errors=True)
    else:
        db.unlink(missing_ok=True)
    if not embedded_in_use(db):
        _lock_path(db).unlink(missing_ok=True)
