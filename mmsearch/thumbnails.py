"""Small JPEG previews of indexed pictures, keyed by content hash.

The app sends these to the browser instead of the originals (a 12 MP photo is ~5 MB; a
preview ~20 kB), and serves files only from this folder, so nothing outside the index can
be fetched through it. Previews are made on first view and reused afterwards, and only from
a regular file that resolves inside one of the index's roots and still has the content that
was indexed: a picture swapped for a symlink to a private file, or for other content since
indexing, gets no preview. A video's scene gets its frame at the scene's start
(mmsearch.video.frame_at), checked the same way, keyed by the video's hash and that time.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image, ImageOps

from mmsearch.config import IndexLocation, data_home
from mmsearch.images import formats, to_rgb
from mmsearch.items import content_hash, file_content_hash

PREVIEW_SIZE = 384


def thumbnail_dir(location: IndexLocation) -> Path:
    """Beside an embedded index; in the user's data folder for a server index."""
    if location.is_embedded:
        return location.db.with_name(location.db.name + ".thumbs")
    return data_home() / "thumbs"


class Thumbnails:
    """`roots()`: the folders previews may be made from (read when a preview is made)."""

    def __init__(self, folder: Path, roots: Callable[[], Iterable[str]] = tuple,
                 size: int = PREVIEW_SIZE):
        self.folder = Path(folder)
        self.roots = roots
        self.size = size

    def path_for(self, content_hash: str) -> Path:
        return self.folder / content_hash[:2] / f"{content_hash}.jpg"

    def ensure(self, source: str, digest: str, time: float | None = None) -> Path | None:
        """The preview of `source` (a video's: its frame at `time` seconds), made if missing.
        None if the source cannot be read now."""
        target = self.path_for(digest if time is None else f"{digest}-{time:.2f}")
        if target.exists():
            return target
        if time is not None:
            return self._frame(source, digest, time, target)
        data = self._indexed_bytes(source, digest)
        if data is None:
            return None
        try:
            with Image.open(io.BytesIO(data), formats=formats()) as img:
                img.draft("RGB", (self.size, self.size))
                img = ImageOps.exif_transpose(img)
                img = to_rgb(img)
                img.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
        except Exception:
            return None  # moved or corrupted since indexing: the caller shows it without preview
        return self._save(img, target)

    @staticmethod
    def _save(img: Image.Image, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename: a reader never sees half a file, two writers never clash
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            img.save(f, "JPEG", quality=85)
        os.replace(tmp, target)
        return target

    def _frame(self, source: str, digest: str, time: float, target: Path) -> Path | None:
        """A video scene's preview: the frame at `time` of the file opened and checked as
        `_indexed_bytes` does (read through that same open file: no swap in between)."""
        from mmsearch.video import BadVideo, frame_at

        f = self._indexed_file(source)
        if f is None:
            return None
        with f:
            if file_content_hash(f) != digest:
                return None
            f.seek(0)  # where /dev/fd/N shares this file's offset (macOS), start at the start
            by_fd = f"/dev/fd/{f.fileno()}"
            try:
                img = frame_at(by_fd if os.path.exists(by_fd) else os.path.realpath(source),
                               time, self.size)
            except (BadVideo, OSError):
                return None
        return self._save(img, target)

    def _indexed_bytes(self, source: str, expected_hash: str) -> bytes | None:
        """The file's bytes if it is a regular file inside a root with the indexed content."""
        f = self._indexed_file(source)
        if f is None:
            return None
        with f:
            data = f.read()
        return data if content_hash(data) == expected_hash else None

    def _indexed_file(self, source: str):
        return open_inside(source, self.roots())


def open_inside(source: str, roots: Iterable[str]):
    """`source` opened for reading if it resolves to a regular file inside one of `roots`,
    else None: what previews and the app's video route serve from. Opened by its resolved
    path without following a link there and checked as opened (a swap in between is not
    served)."""
    real = os.path.realpath(source)
    if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep)
               for r in map(os.path.realpath, roots)):
        return None
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        return None
    return f
