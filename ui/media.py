"""Playing a video result in the page, from its moment: the player and the one route that
serves video files.

`GET /media/video?key=KEY` serves the video of an indexed scene (KEY: `clip.mp4#t=12.00`,
indexer.videos) and nothing else: the key must be a stored scene, the file a regular file
inside one of the index's folders (symlinks resolved first, the last one not followed), with
the size and mtime that were indexed (a file swapped since is refused; hashing a 4 GB video on
every seek is not an option). Starlette's FileResponse answers HTTP range requests (206), so
the browser seeks without downloading the whole file. The route sits behind ui.security.Guard
like every other: its Host, Origin and login checks apply.

The player is a `<video>` whose URL ends in the media fragment `#t=START`, so the browser
starts it at the scene.
"""

from __future__ import annotations

import html
import os
from urllib.parse import quote

from mmsearch.filters import is_scene
from mmsearch.moments import clock
from mmsearch.thumbnails import open_inside

ROUTE = "/media/video"
TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
         ".mkv": "video/x-matroska", ".webm": "video/webm", ".avi": "video/x-msvideo"}


def playable(index, key: str) -> tuple[str, dict] | None:
    """(the real path to serve, the scene's row) for an indexed scene's key, or None."""
    if not key or len(key) > 4096:
        return None
    row = index.get([key], ("size", "mtime", "fields")).get(key)
    if row is None or not is_scene(row):
        return None
    f = open_inside(row["path"], index.roots)
    if f is None:
        return None
    with f:
        st = os.fstat(f.fileno())
    if st.st_size != row["size"] or st.st_mtime != row["mtime"]:
        return None
    return os.path.realpath(row["path"]), row


def video_route(index_of):
    """The Starlette route; `index_of()`: the open index (read on each request)."""
    from starlette.responses import FileResponse, PlainTextResponse
    from starlette.routing import Route

    def serve(request):
        found = playable(index_of(), request.query_params.get("key", ""))
        if found is None:
            return PlainTextResponse("not an indexed video", status_code=404)
        real, _ = found
        return FileResponse(real, media_type=TYPES.get(os.path.splitext(real)[1].lower(),
                                                       "application/octet-stream"),
                            headers={"Cache-Control": "private, no-store"})

    return Route(ROUTE, serve, methods=["GET", "HEAD"])


def player_html(index, key: str) -> str:
    """The page's player for a selected result: a video from its scene's start, or "" (a
    picture, or nothing selected)."""
    found = playable(index, key) if key and "#t=" in key else None
    if found is None:
        return ""
    _, row = found
    start = float(row["fields"].get("time", 0.0))
    src = f"{ROUTE.lstrip('/')}?key={quote(key, safe='')}#t={start:.2f}"
    name = os.path.basename(row["path"])
    return (f'<figure class="player"><video id="video-player" controls preload="metadata" '
            f'playsinline src="{html.escape(src)}"></video><figcaption>'
            f'{html.escape(name)} @ {clock(start)}</figcaption></figure>')
