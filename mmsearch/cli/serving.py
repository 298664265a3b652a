"""The long-running commands: `mmsearch ui` (the app), `serve` (the JSON API, headless),
`serve-index` (the Milvus engine for several processes) and `demo`."""

from __future__ import annotations

import sys

from mmsearch.cli.common import index_location, refuse_old_dependencies


def cmd_ui(args) -> int:
    from mmsearch.stores import start_engine_early
    from ui.security import IndexingPolicy, is_loopback, parse_auth

    auth = parse_auth(args.auth) if args.auth else None
    indexing = IndexingPolicy.of(args.allow_indexing)
    if indexing.enabled and not auth:
        raise ValueError("--allow-indexing needs --auth user:password (without a login, "
                         "anyone who can reach the app could make it read your files)")
    if not is_loopback(args.host) and not auth:
        print(f"warning: --host {args.host} lets anyone on your network search your pictures; "
              "add --auth user:password", file=sys.stderr)
    refuse_old_dependencies(args.host)
    location = index_location(args)
    start_engine_early(location)  # it loads the index while gradio imports (~5 s)
    from ui.app import serve

    serve(location, host=args.host, port=args.port, auth=auth, share=args.share,
          indexing=indexing, allow_hosts=tuple(args.allow_host))
    return 0


def cmd_serve(args) -> int:
    from mmsearch.stores import open_searcher, start_engine_early

    refuse_old_dependencies(args.host)
    location = index_location(args)
    start_engine_early(location)  # it loads the index while the API's code imports
    from ui.api import serve_headless

    print("loading the index and its model …", file=sys.stderr)
    searcher = open_searcher(location)
    with searcher.index as index:
        searcher.warm()
        print(f"mmsearch serving {index.location} on http://{args.host}:{args.port}/api "
              "(docs: /api/docs); mmsearch commands for this index now ask it; Ctrl+C stops",
              file=sys.stderr, flush=True)
        serve_headless(searcher, args.host, args.port)
    return 0


def cmd_demo(args) -> int:
    from mmsearch.cli.demo import run_demo

    if not args.no_launch:
        refuse_old_dependencies(args.host)
    return run_demo(db=args.db, launch=not args.no_launch, host=args.host, port=args.port,
                    catalog=args.catalog)


def cmd_serve_index(args) -> int:
    from mmsearch.config import IndexLocation
    from mmsearch.engine import IndexInUseError, check_embedded_path, is_lock_failure
    from mmsearch.lite import embedded_engine, embedded_in_use, quiet_backend_logs

    location = IndexLocation.resolve(db=args.data_dir)
    if not location.is_embedded:  # $MMSEARCH_URI is set: that index is served already
        raise ValueError("serve-index serves an embedded index: give --data-dir")
    data_dir = location.db
    quiet_backend_logs()
    check_embedded_path(data_dir)
    in_use = IndexInUseError(f"the index {data_dir} is open in another process; close it "
                             "first (the server must be its only user)")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {args.host} lets anyone on your network read and change the "
              "index (Milvus Lite has no authentication)", file=sys.stderr)
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    if embedded_engine() == "file":
        if embedded_in_use(data_dir):
            raise in_use
        _check_port_free(args.host, args.port)
        try:
            data_dir.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"cannot create {data_dir.parent}: {exc.strerror or exc}") from None
        return _serve_lite_file(data_dir, args.host, args.port, url, in_use)
    from milvus_lite.adapter.grpc.server import run_server  # Milvus Lite 3.x

    print(f"serving {data_dir} on {url}; use --uri {url} (or export MMSEARCH_URI={url}) with "
          "every mmsearch command; Ctrl+C stops", file=sys.stderr, flush=True)
    try:
        run_server(str(data_dir), host=args.host, port=args.port)
    except Exception as exc:  # the directory lock, a port in use: one line, not a traceback
        text = str(exc)
        if is_lock_failure(text):
            raise in_use from None
        raise ValueError(f"cannot serve {data_dir} on port {args.port}: {text}") from None
    return 0


def _check_port_free(host: str, port: int) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ValueError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


def _serve_lite_file(db, host: str, port: int, url: str, in_use) -> int:
    """Milvus Lite 2.x: its engine binary serves the .db file on host:port (milvus_lite.server
    .Server) while this process holds the index's lock; SIGTERM and Ctrl+C stop both."""
    import signal
    import time

    from milvus_lite.server import Server

    from mmsearch.lite import embedded_in_use

    server = Server(str(db), address=f"{host}:{port}")
    if not server.init():
        raise ValueError(f"cannot serve {db}: Milvus Lite's engine binary is missing")

    def stop(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        if not server.start():
            if embedded_in_use(db):
                raise in_use
            raise ValueError(f"cannot serve {db} on {host}:{port}: Milvus Lite's engine did "
                             "not start")
        print(f"serving {db} on {url}; use --uri {url} (or export MMSEARCH_URI={url}) with "
              "every mmsearch command; Ctrl+C stops", file=sys.stderr, flush=True)
        while server._p.poll() is None:
            time.sleep(0.5)
        raise ValueError(f"the Milvus Lite engine serving {db} stopped (exit status "
                         f"{server._p.returncode})")
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server._p is not None and server._p.poll() is None:
            server._p.terminate()  # the engine exits at once on SIGTERM, before the lock goes
            try:
                server._p.wait(timeout=20)
            except Exception:  # noqa: BLE001 - stop() kills it
                pass
        server.stop()
