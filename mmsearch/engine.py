"""The Milvus engine under every index: which vector index a new collection gets, connecting
(embedded or server), checking an embedded index's file, and the one-line errors an index
raises. The embedded engine's process and lock are `mmsearch.lite`'s.

Two embedded engines are in use (`lite.embedded_engine`): Milvus Lite 2.5.x, the C++ Milvus core,
whose index is one `.db` file (Linux, macOS), and the pure-Python Milvus Lite 3.x, whose index
is a directory (Windows, where 2.5 has no wheels). `mmsearch.index` holds the schema and the
rows; this module knows nothing of them.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

from mmsearch.config import IndexLocation
from mmsearch.errors import IndexProblem
from mmsearch.lite import (_embedded_opened, _lock_path, _started_early, embedded_engine,
                           embedded_in_use, new_index_file, quiet_backend_logs)

VECTOR_INDEX_PARAMS = {"HNSW": {"M": 16, "efConstruction": 200}, "FLAT": {}, "AUTOINDEX": {},
                       "IVF_FLAT": {"nlist": 1024}}


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


def vector_search_params(index_type: str | None, k: int, metric: str = "COSINE") -> dict:
    """Search params that fit the vector index: ef for graphs (HNSW, AUTOINDEX), nprobe for
    IVF, nothing for FLAT; `metric` is the index's (IP since items.VECTOR_METRIC, COSINE
    before)."""
    if index_type and index_type.startswith("IVF"):
        return {"metric_type": metric, "params": {"nprobe": 32}}
    if index_type == "FLAT":
        return {"metric_type": metric, "params": {}}
    return {"metric_type": metric, "params": {"ef": max(64, 2 * k)}}


class IndexInUseError(IndexProblem):
    pass


class ModelMismatchError(IndexProblem):
    pass


class IndexNotFoundError(IndexProblem):
    pass


class SearchFailedError(IndexProblem):
    pass


class OutdatedIndexError(IndexProblem):
    """An index an older mmsearch made, which this one cannot use safely."""


class IndexKindError(IndexProblem):
    pass


def is_lock_failure(text: str) -> bool:
    """Whether an engine's error text says another process holds the embedded index."""
    return "lock" in text.lower() or "Open local milvus failed" in text


def connect(location: IndexLocation, create: bool = False):
    """A client of the index at `location`; `create`: a new embedded index may be made there
    (its file then gets lite.PAGE_SIZE pages)."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    quiet_backend_logs()
    _skip_checks_that_cannot_fail()
    if location.is_embedded:
        _started_early(location.db)
        check_embedded_path(location.db)
        try:
            location.db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexProblem(f"cannot create the index at {location.db}: "
                              f"{exc.strerror or exc}") from None
        # Milvus Lite writes the index and, for 2.x, a lock file beside it (.NAME.lock)
        for needed in (location.db.parent, location.db):
            if needed.exists() and not os.access(needed, os.W_OK):
                raise IndexProblem(
                    f"the index folder {location.db.parent} is read-only for this user: "
                    "mmsearch needs to write there (even to search, it keeps a lock file). "
                    "Use a writable --db, or serve the index with `mmsearch serve-index` "
                    "and pass --uri.")
        if embedded_in_use(location.db):
            raise _in_use(location)
        if create:
            new_index_file(location.db)
        uri = str(location.db)
    else:
        uri = location.uri
    try:
        client = MilvusClient(uri=uri, token=location.token or "")
    except MilvusException as exc:
        text = getattr(exc, "message", None) or str(exc)
        if location.is_embedded and is_lock_failure(text):
            raise _in_use(location) from None
        raise IndexProblem(f"cannot open the index at {location}: {text}") from None
    if location.is_embedded:
        _embedded_opened(location.db, +1)
    elif location.server_database()[1] is not None and not databases_supported(client):
        client.close()
        raise _no_databases(location)
    return client

def _skip_checks_that_cannot_fail() -> None:
    """Two checks pymilvus 2.6 makes on every call, which cannot fail for what mmsearch sends
    and cost it dearly; both are settings of pymilvus, set the same way every time.

    - Each VARCHAR value of a row-wise insert is "checked" by walking its characters
      (`entity_helper.convert_to_str_array` given one str): each is a str of length 1, so an
      over-long value passes too (pymilvus 2.6.17). With the vector's 1,368-character float16
      copy in every row, that walk was 17-32% of an `mmsearch import` (50k rows: 37.4-38.5 s
      -> 26.0-31.2 s, interleaved). A value that is not a str is still refused.
    - Each search first asks whether its data is a SciPy sparse matrix, and to know, the
      first one executes scipy.sparse afresh (`SciPyHelper._init`: module_from_spec +
      exec_module, beside the copy in sys.modules): ~0.1-0.2 s of every cold search.
      mmsearch searches with vectors, bit codes and words, never with a SciPy matrix."""
    from pymilvus.client import entity_helper, utils

    if hasattr(entity_helper, "CHECK_STR_ARRAY"):
        entity_helper.CHECK_STR_ARRAY = False
    helper = getattr(utils, "SciPyHelper", None)
    if helper is not None and not getattr(helper, "_checked", True):
        helper._matrix_available = helper._array_available = False
        helper._checked = True


def create_database(location: IndexLocation) -> None:
    """On a server, create the database named in the URI (`http://host:19530/photos`)
    if it is missing: one server can hold several indexes."""
    address, name = location.server_database()
    if location.is_embedded or name is None:
        return
    client = connect(IndexLocation(uri=address, token=location.token))
    from pymilvus.exceptions import MilvusException

    try:
        if not databases_supported(client):
            raise _no_databases(location)
        if name not in client.list_databases():
            client.create_database(name)
    except MilvusException as exc:
        if name not in client.list_databases():  # not another indexer creating it first
            raise IndexProblem(f"cannot create the database {name!r} on {address}: "
                              f"{getattr(exc, 'message', exc)}") from None
    finally:
        client.close()


def _disk_bytes(location: IndexLocation) -> int | None:
    if not location.is_embedded or not location.db.exists():
        return None
    if location.db.is_file():
        return location.db.stat().st_size
    return sum(f.stat().st_size for f in location.db.rglob("*") if f.is_file())


# -- embedded engines: paths, locks, the per-process engine ---------------------------------
_NAME = re.compile(r"^[A-Za-z0-9.\-_]+$")
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
            raise IndexProblem(f"{db} is a folder; an embedded index is a .db file (--db "
                              "PATH/NAME.db)")
        if db.suffix != ".db" or not _NAME.match(db.name) or len(db.name) > 36:
            raise IndexProblem(
                f"cannot use {db.name!r} as an embedded index name: Milvus Lite needs a file "
                "name ending in .db, of letters, digits, '.', '-' and '_' only, at most 36 "
                "characters (e.g. --db ~/photos-index.db)")
    elif db.is_file():
        raise OutdatedIndexError(
            f"the index {db} was made by an mmsearch on Milvus Lite 2.5 (a .db file); this one "
            "uses Milvus Lite 3.x (a folder) and cannot read it. Move it: with the other mmsearch "
            f"run `mmsearch export OLD.parquet --db {db}`, then here `mmsearch import "
            f"OLD.parquet --db {db.with_name(db.stem + '-3.db')}`")


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


def _no_databases(location: IndexLocation) -> IndexProblem:
    address, name = location.server_database()
    return IndexProblem(
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


@contextmanager
def writing(location: IndexLocation):
    """Turn a failed write (disk full, read-only folder, server gone) into one clear line.
    Batches written before it stay in the index; the next run redoes only the rest."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as exc:
        reason = getattr(exc, "message", None) or str(exc)
        if "No space left" in reason or "errno 28" in reason.lower() or _disk_full(location):
            reason = "the disk is full"
        elif "Read-only" in reason or "Permission denied" in reason:
            reason = "the index folder is read-only"
        raise IndexProblem(f"cannot write to the index at {location}: {reason}. What was "
                          "indexed before this is kept; fix it and run again.") from None

def _disk_full(location: IndexLocation) -> bool:
    """Milvus Lite 2.5.1 reports a full disk as an "Unexpected error": look at the disk."""
    if not location.is_embedded:
        return False
    import shutil

    try:
        usage = shutil.disk_usage(location.db.parent)
    except OSError:
        return False
    return usage.free < max(1 << 20, usage.total // 50)

@contextmanager
def searching():
    """An engine error during a search (a filter it rejects, a server gone) becomes one
    short line, never a traceback."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as exc:
        reason = (getattr(exc, "message", None) or str(exc)).strip().splitlines()
        reason = reason[0][:160] if reason else type(exc).__name__
        raise SearchFailedError(f"the index could not run this search: {reason}") from None
