"""The app's HTTP boundary: who may talk to it, what it may serve, what it may index.

Whatever the app serves is reachable by every local process and, through DNS rebinding, by
web pages. So, in front of every route (an ASGI middleware, `Guard`):
- the Host header must name this app (loopback names, the bound host, `--allow-host` names):
  a page whose domain was rebound to 127.0.0.1 sends its own name and is refused;
- a request whose Origin is another site is refused (no cross-site calls, reads or writes);
- with `--auth`, nothing but a bare login form is shown before login, and failed logins are
  rate-limited per client (the JSON API under /api/ has its own gate: the run's token);
- files are served only from the app's own folders (its previews and its private temp folder),
  whatever Gradio itself would allow.
Indexing from HTTP is a separate, opt-in power (`IndexingPolicy`): off unless the app was
started with `--allow-indexing DIR` (which needs `--auth`), and then only under those folders.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
# Failed logins: LOGIN_FAILURES per client in LOGIN_WINDOW seconds, then 429 until the window
# moves on (50 wrong passwords took 0.05 s before this; now 5 a minute).
LOGIN_FAILURES = 5
LOGIN_WINDOW = 60.0
REFUSED_PATH = ("that path cannot be used from the app: the app indexes only folders under "
                "the ones it was started with (--allow-indexing)")
# Gradio serves files under both spellings (`file=PATH` and `file/PATH`), with and without
# its prefix; all of them are held to the app's own folders. Its reverse proxy (for gr.load,
# never used here) is closed outright.
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/", "/file=", "/file/")
CLOSED_ROUTES = ("/gradio_api/proxy=", "/proxy=")
API_ROUTES = "/api/"  # the JSON API: every call needs the run's token (ui.api)
API_DOCS = ("/api/docs", "/api/openapi.json")
CALL_ROUTE = re.compile(r"^/gradio_api/(?:call/v2|call|run)/([^/]+)/?$")

LOGIN_PAGE = b"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>mmsearch: log in</title>
<style>body{font:16px system-ui,sans-serif;display:grid;place-items:center;min-height:90vh;
margin:0;background:#f6f6f6}form{background:#fff;padding:2rem;border-radius:8px;
box-shadow:0 1px 4px #0002;display:grid;gap:.75rem;min-width:16rem}
input,button{font:inherit;padding:.5rem}button{background:#1f4fa8;color:#fff;border:0;
border-radius:4px}#msg{color:#a00;min-height:1.2em}</style></head><body>
<form id="f"><h1 style="font-size:1.2rem;margin:0">mmsearch</h1>
<label>User <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"
required></label><button>Log in</button><div id="msg" role="alert"></div></form>
<script>document.getElementById('f').onsubmit=async e=>{e.preventDefault();
const r=await fetch('login',{method:'POST',body:new URLSearchParams(new FormData(e.target))});
if(r.ok){location.reload()}else{document.getElementById('msg').textContent=
r.status==429?'Too many attempts: wait a minute.':'Wrong user or password.'}}</script>
</body></html>"""


def is_loopback(host: str) -> bool:
    return host.strip("[]") in LOOPBACK_NAMES


def _split_host(value: str) -> str:
    """'Example.org:7860' -> 'example.org', '[::1]:7860' -> '::1'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":")[0]
    return value


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostPolicy:
    """Which Host header values name this app."""

    names: frozenset[str]
    any_ip: bool = False  # bound to all interfaces: reached by any of its addresses
    suffixes: tuple[str, ...] = ()

    @classmethod
    def for_bind(cls, host: str, extra: tuple[str, ...] = (), share: bool = False
                 ) -> "HostPolicy":
        names = set(LOOPBACK_NAMES) | {_split_host(h) for h in extra if h}
        wildcard = host in WILDCARD_HOSTS
        if wildcard:
            # An address typed into a browser cannot be rebound (rebinding needs a domain the
            # attacker controls), so any IP literal is fine; names must be this machine's.
            hostname = socket.gethostname().lower()
            names |= {hostname, f"{hostname}.local", socket.getfqdn().lower()}
        else:
            names.add(_split_host(host))
        return cls(frozenset(names), wildcard, (".gradio.live",) if share else ())

    def allows(self, header: str | None) -> bool:
        if not header:
            return False
        host = _split_host(header)
        return host in self.names or (self.any_ip and _is_ip(host)) \
            or any(host.endswith(s) for s in self.suffixes)


@dataclass
class LoginLimiter:
    """Failed logins in a sliding window, per user name, per client address and overall; per
    app, not global. An attempt counts before the password is checked (so a burst sent at
    once cannot outrun the count) and is taken back when it succeeds. Keyed by user name too,
    because a client address is what the caller says it is behind a proxy header."""

    failures: int = LOGIN_FAILURES
    overall: int = 4 * LOGIN_FAILURES
    window: float = LOGIN_WINDOW
    _seen: dict[str, deque] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, client: str, user: str) -> tuple[str, ...] | None:
        """The keys this attempt was counted under, or None if it must wait (429)."""
        keys = (f"client:{client}", f"user:{user}", "all")
        limits = (self.failures, self.failures, self.overall)
        now = time.monotonic()
        with self._lock:
            for key, limit in zip(keys, limits):
                times = self._seen.setdefault(key, deque())
                while times and now - times[0] > self.window:
                    times.popleft()
                if len(times) >= limit:
                    return None
            for key in keys:
                self._seen[key].append(now)
            while len(self._seen) > 10_000:  # bounded: forget the oldest keys
                self._seen.pop(next(iter(self._seen)))
        return keys

    def succeeded(self, keys: tuple[str, ...]) -> None:
        with self._lock:
            for key in keys:
                if self._seen.get(key):
                    self._seen[key].pop()


class Guard:
    """ASGI middleware in front of the Gradio app (see the module docstring)."""

    def __init__(self, app, hosts: HostPolicy, served: tuple[str, ...], auth: bool):
        self.app = app
        self.hosts = hosts
        self.served = tuple(os.path.realpath(p) for p in served)
        self.auth = auth
        self.logins = LoginLimiter()

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if not self.hosts.allows(headers.get("host")):
            return await _plain(send, 421, "unknown host: this app answers only to the names "
                                           "it was started for")
        origin = headers.get("origin")
        if origin is not None and not self._same_origin(origin, headers["host"]):
            return await _plain(send, 403, "cross-origin requests are refused")
        method = scope.get("method", "GET")
        token_gated = path.startswith(API_ROUTES) and not path.startswith(API_DOCS)
        if self.auth and not token_gated and not self._logged_in(scope, headers):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await self._before_login(scope, receive, send, path, method)
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        if path.startswith(CLOSED_ROUTES) or \
                (path.startswith(FILE_ROUTES) and not self._servable(path, scope)):
            return await _plain(send, 403, "not allowed")
        call = CALL_ROUTE.match(path)
        if call and method == "POST" and call.group(1) not in _api_names(scope):
            return await _plain(send, 404, "no such endpoint")  # Gradio would answer 500
        return await self.app(scope, receive, send)

    @staticmethod
    def _same_origin(origin: str, host: str) -> bool:
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()

    @staticmethod
    def _logged_in(scope, headers) -> bool:
        app = scope.get("app")
        tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
        if not tokens or cookie_id is None:
            return False
        names = (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}")
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name in names and value in tokens:
                return True
        return False

    async def _before_login(self, scope, receive, send, path: str, method: str):
        """Only the login form and the login call; nothing about the app or the index."""
        if path in ("/login", "/login/") and method == "POST":
            body = await _read_body(receive, limit=16_384)
            fields = parse_qs(body.decode("utf-8", "replace"))
            user = (fields.get("username") or [""])[0].strip()
            client = (scope.get("client") or ("?", 0))[0]
            counted = self.logins.attempt(client, user)
            if counted is None:
                return await _plain(send, 429, "too many failed logins: wait a minute")
            status = {}

            async def watch(message):
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            await self.app(scope, _replay(body), watch)
            if status.get("code", 500) < 400:
                self.logins.succeeded(counted)
            return None
        if path == "/gradio_api/startup-events":  # Gradio calls itself here while launching
            return await self.app(scope, receive, send)
        if path == "/" and method in ("GET", "HEAD"):
            return await _respond(send, 200, LOGIN_PAGE, b"text/html; charset=utf-8",
                                  send_body=method == "GET")
        return await _plain(send, 401, "log in first")

    def _servable(self, path: str, scope) -> bool:
        """The file routes serve the app's own folders only (previews, its temp folder)."""
        prefix = next(p for p in FILE_ROUTES if path.startswith(p))
        # the path exactly as the route will see it (the server decoded it once already):
        # decoding again could make a path look deeper, and so inside, than the route reads it
        raw = path[len(prefix):]
        if not raw.startswith("/"):
            return False  # relative, Windows drive or UNC spelling: not ours
        real = os.path.realpath(raw)
        return any(real == root or real.startswith(root + os.sep) for root in self.served)


async def _read_body(receive, limit: int) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body") or len(body) > limit:
            return body[:limit]


def _replay(body: bytes):
    """A `receive` that hands the app the body the Guard already read."""
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _api_names(scope) -> set[str]:
    blocks = scope["app"].get_blocks() if hasattr(scope.get("app"), "get_blocks") else None
    return {fn.api_name for fn in getattr(blocks, "fns", {}).values()
            if isinstance(fn.api_name, str)}


async def _plain(send, status: int, text: str):
    return await _respond(send, status, text.encode(), b"text/plain; charset=utf-8")


async def _respond(send, status: int, body: bytes, content_type: bytes, send_body: bool = True):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body if send_body else b""})


@dataclass(frozen=True)
class IndexingPolicy:
    """Which folders (and catalogue files) the app may index on behalf of HTTP callers.

    Empty: none (the default). Every refusal, whatever its reason (outside the roots, missing,
    not a folder, a symlink out), is the same neutral message, so the app cannot be used to
    learn what exists on the machine."""

    roots: tuple[str, ...] = ()

    @classmethod
    def of(cls, folders) -> "IndexingPolicy":
        roots = []
        for f in folders or ():
            real = os.path.realpath(os.path.expanduser(f))
            if not os.path.isdir(real):
                raise ValueError(f"--allow-indexing {f}: no such folder")
            roots.append(real)
        return cls(tuple(roots))

    @property
    def enabled(self) -> bool:
        return bool(self.roots)

    def covers(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in self.roots)

    def folder(self, typed: str) -> str:
        """The real path of a typed folder under the roots, or PathRefused."""
        return self._resolve(typed, os.path.isdir)

    def file(self, typed: str) -> str:
        """The real path of a typed file (a catalogue) under the roots, or PathRefused."""
        return self._resolve(typed, os.path.isfile)

    def _resolve(self, typed: str, exists) -> str:
        path = typed.strip()
        if not self.enabled or not path or "\0" in path or not os.path.isabs(path):
            raise PathRefused(REFUSED_PATH)
        real = os.path.realpath(path)
        if not exists(real) or not self.covers(real):
            raise PathRefused(REFUSED_PATH)
        return real


class PathRefused(ValueError):
    """A path an HTTP caller may not use; the message is the same for every reason."""


def private_temp_dir() -> Path:
    """This process's folder for the app's uploads and the copies Gradio serves: readable by
    this user only (mode 0700), removed at exit, never the world-shared /tmp/gradio.

    Gradio reads its folder from GRADIO_TEMP_DIR when a request comes in, not only when the
    app is built, so the variable is set for the process: one folder per process (named with
    its pid, so a child process that inherits the variable makes its own)."""
    import atexit
    import shutil
    import tempfile

    current = os.environ.get("GRADIO_TEMP_DIR", "")
    prefix = f"mmsearch-app-{os.getpid()}-"
    if os.path.basename(current).startswith(prefix) and os.path.isdir(current):
        return Path(current)
    folder = tempfile.mkdtemp(prefix=prefix)
    os.environ["GRADIO_TEMP_DIR"] = folder
    atexit.register(shutil.rmtree, folder, True)
    return Path(folder)


def public_text(text: str, hide: tuple[str, ...] = (), limit: int = 300) -> str:
    """An error text fit for an HTTP caller: server folders replaced, cut to `limit`."""
    for folder in sorted({h for h in hide if h and len(h) > 1}, key=len, reverse=True):
        text = text.replace(folder.rstrip(os.sep) + os.sep, "").replace(folder, "…")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def parse_auth(value: str) -> list[tuple[str, str]]:
    """`user:password`, or a file of such lines (blank lines and #comments ignored)."""
    lines = [value]
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    pairs = []
    for line in lines:
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise ValueError("--auth takes user:password or a file of user:password lines")
        pairs.append((user, password))
    return pairs
