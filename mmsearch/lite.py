"""Milvus Lite 2.x, the embedded engine, as this process runs it: which generation is
installed, its child engine process per index file (counted, stopped with the last client,
started early for a cold search), the file's lock and whether another process holds it, and
keeping its logs quiet. `mmsearch.engine` connects through it; this module knows no errors
and no schema.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path

from mmsearch.config import IndexLocation

_OPEN: dict[str, int] = {}
_OPEN_LOCK = threading.Lock()
# Engines `start_early` is starting (set once started) and has started (no client yet).
_STARTING: dict[str, threading.Event] = {}
_STARTED: set[str] = set()

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
    _end_start_wait_when_listening(milvus_lite.server.Server)
    return "file"


# How often a starting engine is looked at: whether it has exited, whether it listens.
START_POLL_S = 0.005


def _end_start_wait_when_listening(server_class) -> None:
    """Milvus Lite 2.5.1 starts its engine process and then waits a fixed 0.5 s
    (`Server.start`: `self._p.wait(0.5)`) to see that it did not exit. The engine listens on
    its socket after 16-21 ms (measured; a file that is no index makes it exit after 16 ms,
    before listening), so every open of an index waited ~0.48 s for nothing: a cold search,
    `stats`, `index`, the app's launch. This is that `start` (milvus_lite 2.5.1's, step for
    step), its wait ending as soon as the engine exits (a failed start, as before) or its
    socket exists; the engine's first call then waits for it, as it always did. A server on a
    TCP address (no socket file) waits the whole 0.5 s."""
    import fcntl
    import subprocess
    import time

    if getattr(server_class.start, "_mmsearch", False):
        return

    def start(self) -> bool:
        assert self._p is None, "Server already started"
        self._lock_fd = open(self._lock_path, "a")
        try:
            fcntl.lockf(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # server_manager says "Open local milvus failed" (engine.connect)
        libs = f"{self._bin_path}:{os.environ.get('LD_LIBRARY_PATH', '')}"
        env = {"LD_LIBRARY_PATH": libs, "DYLD_LIBRARY_PATH": libs, **{
            k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH")}}
        self._p = subprocess.Popen(args=self.args, env=env, cwd=str(self._work_dir))
        deadline = time.monotonic() + 0.5
        while self._p.poll() is None and time.monotonic() < deadline and \
                (self._address is not None or not os.path.exists(self._uds_path)):
            time.sleep(START_POLL_S)
        return self._p.poll() is None

    start._mmsearch = True
    server_class.start = start

def _quiet_imports() -> None:
    """Milvus Lite 2.5.1 imports pkg_resources, whose deprecation warning would print on
    every command; its child engine logs parse errors (glog) that each reach the user as one
    IndexProblem line instead."""
    import warnings

    warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")
    os.environ.setdefault("GLOG_minloglevel", "3")

def quiet_backend_logs() -> None:
    """The embedded Milvus runs in this process and logs its internals (an unimplemented
    timestamp call on every iterator, a traceback when the directory is locked). Each failure
    that matters reaches the user as one clear IndexProblem line instead. pymilvus configures
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

def start_early(location: IndexLocation, load: tuple[str, ...] = ()) -> None:
    """Start an existing embedded index's engine in the background for a fresh process about
    to open it (a cold `mmsearch search`, an app's launch): Milvus Lite 2.5.1 waits a fixed
    0.5 s for its child engine, which then passes while pymilvus is imported (0.5 s).
    `engine.connect` waits for this start and uses that engine; on a missing, read-only or
    busy index nothing starts (nor for a bad name: the engine refuses it), and `connect` says
    what is wrong, once. The collections named in `load` are then loaded (`_early_loader`).

    What the start needs is imported here, before the thread: it imports nothing itself. Two
    threads importing at once can each hold a module the other needs, and CPython then hands
    one of them a partly initialised module (a cold search failed once in ~30 on numpy's
    "partially initialized module" while a thread imported onnxruntime beside pymilvus)."""
    db = location.db
    key = str(db.absolute().resolve()) if location.is_embedded else ""
    with _OPEN_LOCK:
        if not key or key in _STARTING or _OPEN.get(key):
            return
    if embedded_engine() != "file":
        return
    import fcntl  # noqa: F401 - embedded_in_use's, imported before the thread

    from milvus_lite.server_manager import server_manager_instance

    loader = _early_loader(load) if load else None
    started = threading.Event()

    def start() -> None:
        uds = None
        try:
            if db.is_file() and os.access(db, os.W_OK) and os.access(db.parent, os.W_OK) \
                    and not embedded_in_use(db):
                uds = server_manager_instance.start_and_get_uri(key)
                if uds:
                    with _OPEN_LOCK:
                        _STARTED.add(key)  # this process holds it: no in-use check on it
        except Exception:  # noqa: BLE001 - connect() reports the failure as one line
            pass
        finally:
            started.set()
        if uds and loader is not None:
            loader(uds)

    with _OPEN_LOCK:
        if key in _STARTING or _OPEN.get(key):
            return
        _STARTING[key] = started
    quiet_backend_logs()
    threading.Thread(target=start, name="engine", daemon=True).start()


def _early_loader(collections: tuple[str, ...]):
    """What loads `collections` (in this order) on a just-started engine, before pymilvus is
    imported: the load of the items is a cold search's longest step (100k rows: 1.3-2.3 s
    measured, even with only an id and a vector per row) and it had waited for pymilvus's
    import and connection (~0.6-0.8 s) to be asked. Only `grpc` is needed (0.1 s, which
    pymilvus imports anyway): the one LoadCollectionRequest field sent, `collection_name`
    (field 3, a string), is encoded here (tests check it against pymilvus's own message).
    Milvus Lite 2.5.1 answers a load asked again while one runs when that one is done, so
    the load `Index._load` asks after this waits for it instead of loading twice; its answer
    is the one that counts (an error here, as a collection an older index lacks, is
    dropped). The thread imports nothing: a first channel imports grpc's channel modules
    (grpc._channel, grpc.experimental: seen with an audit hook), so one is made and closed
    here first (it connects to nothing: channels connect on their first call)."""
    import grpc

    grpc.insecure_channel(f"unix:{os.devnull}").close()

    def load(uds: str) -> None:
        try:
            with grpc.insecure_channel(uds) as channel:
                call = channel.unary_unary(LOAD_COLLECTION)
                for name in collections:
                    call(load_collection_request(name), timeout=EARLY_LOAD_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - Index._load asks again and reports
            pass

    return load


LOAD_COLLECTION = "/milvus.proto.milvus.MilvusService/LoadCollection"
EARLY_LOAD_TIMEOUT_S = 3600.0  # 1M rows load in ~20-25 s here; a slow disk may take minutes


def load_collection_request(name: str) -> bytes:
    """milvus.proto's LoadCollectionRequest naming only `collection_name` (field 3), as
    protobuf encodes it: the field's key (3 << 3 | 2, a length-delimited value), the length
    of its UTF-8 bytes as a varint, the bytes."""
    data = name.encode()
    size, length = len(data), bytearray()
    while size > 0x7F:
        length.append(size & 0x7F | 0x80)
        size >>= 7
    length.append(size)
    return bytes([3 << 3 | 2]) + bytes(length) + data


def _started_early(db: Path) -> None:
    """Wait for `start_early`'s start of this engine (not its early loads): a POSIX lock
    taken and dropped by one thread (an in-use check) drops the engine's lock that another
    thread's start took."""
    with _OPEN_LOCK:
        started = _STARTING.pop(str(db.absolute().resolve()), None)
    if started is not None:
        started.wait()

# SQLite page size of a new embedded index's file. Milvus Lite 2.5.1 keeps each row as one
# blob in SQLite (~2.2 kB for a 512-d photo item) and reads every one at each load; SQLite's
# default 4 kB pages hold one such row each, half empty. With 64 kB pages (bench/scale.py's
# rows, the engine's CPU for the load, interleaved): 100k 1.52-2.25 s against 1.91-2.76 s,
# 1M 21.7-26.7 s against 32.6-34.0 s, and the file 0.67x the size; the same answers.
PAGE_SIZE = 65536


def new_index_file(db: Path) -> None:
    """Make the file of a new embedded index with PAGE_SIZE pages, where there is none yet:
    Milvus Lite 2.x adds its tables to it and keeps its page size. It is made beside and
    linked into place, so an index another process made meanwhile is never touched; if it
    cannot be made, Milvus Lite makes the file as before (4 kB pages)."""
    if embedded_engine() != "file" or db.exists():
        return
    import contextlib
    import sqlite3

    part = db.with_name(f".{db.name}.{os.getpid()}.new")
    try:
        os.close(os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # umask applies
        with contextlib.closing(sqlite3.connect(part)) as con:
            con.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            con.execute("CREATE TABLE mmsearch_page_size (x)")  # writes the header
            con.execute("DROP TABLE mmsearch_page_size")
            con.commit()
        os.link(part, db)
    except (OSError, sqlite3.Error):
        pass  # FileExistsError: another process's new index, left as it is
    finally:
        with contextlib.suppress(OSError):
            os.unlink(part)

def _lock_path(db: Path) -> Path:
    """Milvus Lite 2.x's lock file, beside the index (milvus_lite/server.py)."""
    return db.parent / f".{db.name}.lock"

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
    key = str(db.absolute().resolve())
    with _OPEN_LOCK:
        return _OPEN.get(key, 0) > 0 or key in _STARTED


def _embedded_opened(db: Path, delta: int) -> None:
    """Count this process's open clients per embedded index; when the last one closes, stop
    the engine (2.x: a child process, ~100 MB) and free the index for other processes."""
    key = str(db.absolute().resolve())
    with _OPEN_LOCK:
        _STARTED.discard(key)  # a client now holds it: the count decides when it stops
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
