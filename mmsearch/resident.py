"""The resident process: a running app (`mmsearch ui` or `mmsearch serve`) that owns an index,
and how a command-line run finds it and asks it instead of opening the index itself.

An embedded index can be open in one process only, and loading a CLIP costs seconds, so the
process that has both answers for the others. It announces itself in a small file beside the
index (`INDEX.server.json`; for a server index, in the user's data folder) with its address
and a random token, readable by this user only (mode 0600), as Jupyter does: a web page cannot
read it, another user cannot read it, and the JSON API refuses any call without the token.

Only the standard library here: `mmsearch search` through a resident process must not pay
for numpy, torch or pymilvus. A client talks HTTP with `http.client`, not `urllib.request`
(which adds ssl, email and tempfile: ~10 ms of each such search's start on these cores).
"""

from __future__ import annotations

import http.client
import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mmsearch.config import IndexLocation, data_home

TOKEN_HEADER = "Authorization"


class ResidentUnavailable(Exception):
    """No resident process answers for this index (none announced, or it went away)."""


class ResidentError(ValueError):
    """The resident process refused the request; str() is its one-line reason."""


@dataclass(frozen=True)
class Resident:
    url: str     # e.g. http://127.0.0.1:7860
    token: str
    pid: int
    index: str   # str(IndexLocation), to be sure the file speaks of this index

    def call(self, method: str, path: str, payload: dict | None = None,
             timeout: float = 120.0):
        """JSON in, JSON out. ResidentUnavailable if it does not answer; ResidentError with
        the server's reason if it refuses."""
        response = self.open(method, path, payload, timeout)
        with response:
            return json.loads(response.read() or b"null")

    def open(self, method: str, path: str, payload: dict | None = None,
             timeout: float | None = 120.0) -> http.client.HTTPResponse:
        """The response, to read (a stream of lines for /api/index) and close."""
        data = None if payload is None else json.dumps(payload).encode()
        where = urlsplit(self.url)
        connection = http.client.HTTPConnection(where.hostname, where.port, timeout=timeout)
        try:
            connection.request(method, where.path.rstrip("/") + path, body=data, headers={
                TOKEN_HEADER: f"Bearer {self.token}", "Content-Type": "application/json",
                "Connection": "close"})
            response = connection.getresponse()
        except (http.client.HTTPException, OSError) as exc:  # refused, reset, timed out
            connection.close()
            raise ResidentUnavailable(str(exc) or type(exc).__name__) from None
        if response.status < 400:
            return response
        with response:
            try:
                reason = json.loads(response.read()).get("detail")
            except (ValueError, AttributeError, OSError, http.client.HTTPException):
                reason = None
        if response.status in (401, 403, 421):
            raise ResidentUnavailable(f"refused ({response.status})")
        raise ResidentError(str(reason or f"the app answered {response.status}"))


def url_host(bound: str) -> str:
    """How a local client reaches a server bound to `bound` (a wildcard: loopback; an IPv6
    address in brackets)."""
    if bound in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{bound}]" if ":" in bound and not bound.startswith("[") else bound


def announcement_path(location: IndexLocation) -> Path:
    if location.is_embedded:
        return location.db.with_name(location.db.name + ".server.json")
    import hashlib  # here: a client of an embedded index never needs it

    digest = hashlib.blake2b(str(location).encode(), digest_size=8).hexdigest()
    return data_home() / "servers" / f"{digest}.json"


def new_token() -> str:
    import secrets  # the server's side only

    return secrets.token_urlsafe(32)


def announce(location: IndexLocation, url: str, token: str) -> Resident:
    """Write this process's announcement (mode 0600, atomically) and return it."""
    resident = Resident(url, token, os.getpid(), str(location))
    import tempfile

    path = announcement_path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: a new file (O_EXCL, mode 0600) at an unpredictable name, so nothing planted
    # beside the index (a symlink to a readable file) can receive the token
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(resident), f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return resident


def withdraw(location: IndexLocation, resident: Resident) -> None:
    """Remove the announcement if it is still this process's."""
    path = announcement_path(location)
    found = _read(path)
    if found is not None and found.token == resident.token:
        try:
            path.unlink()
        except OSError:
            pass


def find(location: IndexLocation) -> Resident | None:
    """The resident process announced for this index, if its process is alive. A file that
    another user could have written (not ours, or readable by others) is ignored."""
    if os.environ.get("MMSEARCH_NO_RESIDENT"):
        return None
    resident = _read(announcement_path(location))
    if resident is None or resident.index != str(location):
        return None
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there: just try to connect
        return resident
    try:
        os.kill(resident.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return None  # another user's process: not ours to talk to
    return resident


def _read(path: Path) -> Resident | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        with os.fdopen(fd, encoding="utf-8") as f:
            st = os.fstat(f.fileno())  # the file opened, not what the name points to now
            if (hasattr(os, "getuid") and st.st_uid != os.getuid()) or \
                    stat.S_IMODE(st.st_mode) & 0o077:
                return None
            return Resident(**json.load(f))
    except (OSError, ValueError, TypeError):
        return None
