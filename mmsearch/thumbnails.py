"""Small JPEG previews of indexed pictures, keyed by content hash.

The app sends these to the browser instead of the originals (a 12 MP photo is ~5 MB; a
preview ~20 kB), and serves files only from this folder, so nothing outside the index can
be fetched through it. Previews are made on first view and reused afterwards.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

from mmsearch.config import IndexLocation, data_home
from mmsearch.images import to_rgb

PREVIEW_SIZE = 384


def thumbnail_dir(location: IndexLocation) -> Path:
    """Beside an embedded index; in the user's data folder for a server index."""
    if location.is_embedded:
        return location.db.with_name(location.db.name + ".thumbs")
    return data_home() / "thumbs"


class Thumbnails:
    def __init__(self, folder: Path, size: int = PREVIEW_SIZE):
        self.folder = Path(folder)
        self.size = size

    def path_for(self, content_hash: str) -> Path:
        return self.folder / content_hash[:2] / f"{content_hash}.jpg"

    def ensure(self, source: str, content_hash: str) -> Path | None:
        """The preview of `source`, made if missing. None if the source cannot be read now."""
        target = self.path_for(content_hash)
        if target.exists():
            return target
        try:
            with Image.open(source) as img:
                img.draft("RGB", (self.size, self.size))
                img = ImageOps.exif_transpose(img)
                img = to_rgb(img)
                img.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
        except Exception:
            return None  # moved or corrupted since indexing: the caller shows it without preview
        target.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename: a reader never sees half a file, two writers never clash
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            img.save(f, "JPEG", quality=85)
        os.replace(tmp, target)
        return target
