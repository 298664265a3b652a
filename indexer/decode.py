"""Open one picture file: the mapper stage of indexing.

Reads the bytes once (hash and decode from the same read), decodes them upright and small
(mmsearch.images), runs the model's preprocessing and, with a TextReader, reads the words
printed in the picture (mmsearch.ocr: its gate looks at the same small decode; only a picture
that passes is decoded again, from the same bytes, at the size text is read at).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Callable

from mmsearch.images import BadPicture, header_facts, open_image
from mmsearch.items import content_hash

# With OCR on, decode at least this large (JPEG draft: both sides >= it): a 12 MP photo still
# decodes at 1/8 (500x375, what the model's draft gives anyway), a 1024x768 one at 1/2 instead
# of 1/8 (128x96 for the demo model: too small to tell text). See mmsearch.ocr "Gate".
GATE_DRAFT = 360
# A picture that passes the gate is read from a decode this large: 12 MP at 1/4 (1000x750),
# 1024x768 whole; the scenes of bench/ocr.py (1024x768) were read at full size.
READ_DRAFT = 750


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
    words: str | None = None  # words read in the picture; None: not read (OCR off, or failed)
    ocr_error: str = ""       # why reading failed (the picture is indexed all the same)
    scene: dict | None = None  # a video's scene: {"key", "time", "end"[, "scenes"]}
    # (indexer.videos)


def read_words(picture: Picture, reader, small, data: bytes) -> None:
    """Set picture.words from the small decode `small` (the gate) and, where it passes, a
    READ_DRAFT decode of the same bytes. Any engine failure is recorded, never raised."""
    def larger():
        return open_image(data, picture.path, READ_DRAFT).image
    try:
        picture.words = reader.read(small, larger)
    except Exception as exc:  # noqa: BLE001 (an OCR bug must not cost the picture its place)
        picture.words = None
        picture.ocr_error = f"{type(exc).__name__}: {str(exc)[:200]}"


def read_failure(exc: OSError) -> BadPicture:
    """A file that could not be read, as one line (pictures and videos alike)."""
    if isinstance(exc, FileNotFoundError):
        return BadPicture("vanished while indexing")
    if isinstance(exc, PermissionError):
        return BadPicture("unreadable: permission denied")
    if isinstance(exc, IsADirectoryError):
        return BadPicture("is a folder, not a picture")
    return BadPicture(f"unreadable: {exc.strerror or exc}")


def read_picture(path: str, preprocess: Callable, draft_size: int,
                 known_hash: str | None = None, reader=None, words_known: bool = True) -> Picture:
    """Decode and preprocess `path`. If its content hash equals `known_hash`, skip decoding
    (but for its words when a `reader` is given and the stored item has none: not
    `words_known`). With a reader, a picture whose content changed gets its words read."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device named .jpg would block or never end
            raise BadPicture("not a regular file")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise read_failure(exc) from None
    if not data:
        raise BadPicture("empty file")
    digest = content_hash(data)
    picture = Picture(path, len(data), st.st_mtime, digest, taken=st.st_mtime)
    if digest == known_hash:  # the same picture: its header only, for the EXIF facts
        picture.camera, picture.gps = header_facts(data)
        if reader is not None and not words_known:  # its words only, nothing embedded
            _words_only(picture, reader, data)
        return picture
    decoded = open_image(data, path, max(draft_size, GATE_DRAFT) if reader else draft_size)
    picture.camera, picture.gps = decoded.camera, decoded.gps
    picture.width, picture.height = decoded.width, decoded.height
    picture.taken = decoded.taken or st.st_mtime
    picture.pixels = preprocess(decoded.image)
    if reader is not None:
        read_words(picture, reader, decoded.image, data)
    return picture


def _words_only(picture: Picture, reader, data: bytes) -> None:
    try:
        small = open_image(data, picture.path, GATE_DRAFT).image
    except BadPicture as exc:  # it decoded when it was indexed; say so, keep the item
        picture.ocr_error = str(exc)
    else:
        read_words(picture, reader, small, data)


def read_for_words(path: str, known_hash: str | None, reader) -> Picture:
    """A stored picture whose file did not change (same size and mtime) but whose words were
    never read: read_facts plus its words, decoded small for them; nothing embedded."""
    picture = read_facts(path, known_hash)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        raise BadPicture("vanished while indexing") from None
    _words_only(picture, reader, data)
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
