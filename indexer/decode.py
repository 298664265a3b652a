"""Open one picture file: the mapper stage of indexing.

Reads the bytes once (hash and decode from the same read), decodes them upright and small
(mmsearch.images) and runs the model's preprocessing.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Callable

from mmsearch.images import BadPicture, header_facts, open_image
from mmsearch.items import content_hash


@dataclass
class Picture:
    path: str
    size: int
    mtime: float
    hash: str
    width: int = 0
    height: int = 0
    taken: float = 0.0
    pixels: object = None  # preprocessed tensor; None when the content was unchanged
    camera: str = ""       # EXIF make and model
    gps: tuple[float, float] | None = None  # EXIF latitude, longitude


def read_picture(path: str, preprocess: Callable, draft_size: int,
                 known_hash: str | None = None) -> Picture:
    """Decode and preprocess `path`. If its content hash equals `known_hash`, skip decoding."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device named .jpg would block or never end
            raise BadPicture("not a regular file")
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise BadPicture("vanished while indexing") from None
    except PermissionError:
        raise BadPicture("unreadable: permission denied") from None
    except IsADirectoryError:
        raise BadPicture("is a folder, not a picture") from None
    except OSError as exc:
        raise BadPicture(f"unreadable: {exc.strerror or exc}") from None
    if not data:
        raise BadPicture("empty file")
    digest = content_hash(data)
    picture = Picture(path, len(data), st.st_mtime, digest, taken=st.st_mtime)
    if digest == known_hash:  # the same picture: its header only, for the EXIF facts
        picture.camera, picture.gps = header_facts(data)
        return picture
    decoded = open_image(data, path, draft_size)
    picture.camera, picture.gps = decoded.camera, decoded.gps
    picture.width, picture.height = decoded.width, decoded.height
    picture.taken = decoded.taken or st.st_mtime
    picture.pixels = preprocess(decoded.image)
    return picture


def read_facts(path: str, known_hash: str | None) -> Picture:
    """A stored picture whose file did not change (same size and mtime): its file facts and
    EXIF header only, for the item's text; nothing decoded, the bytes not hashed."""
    try:
        st = os.stat(path)
    except OSError:
        raise BadPicture("vanished while indexing") from None
    camera, gps = header_facts(path)
    return Picture(path, st.st_size, st.st_mtime, known_hash or "", camera=camera, gps=gps)
