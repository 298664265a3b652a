"""Example pictures uploaded to the app: decoded once, kept small, deleted from disk.

Gradio writes each upload into the app's private temp folder and hands the handler its path.
The picture is read once, shrunk, kept in a small per-app cache (the page sends the same path
again with every search while the picture stays in the box), and the file is deleted.
Decoding is the memory-hungry part (a 48 MP PNG is ~150 MB of pixels), so at most
`PICTURE_SLOTS` uploads are decoded at once, whatever endpoint they came through.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from mmsearch.search import QueryError, load_query_image

PICTURE_SLOTS = 2      # decodes at once, shared by every picture endpoint
KEEP = 64              # decoded uploads kept (at most KEEP_SIZE px a side: ~3 MB each)
KEEP_SIZE = 1024       # larger than any CLIP input (224-448 px): no loss for the query


def _trim_heap() -> None:
    """Hand freed pixel memory back to the OS (glibc keeps large freed blocks otherwise: RSS
    stayed at 4.35 GB after a burst of big PNGs)."""
    name = ctypes.util.find_library("c")
    if name and "libc" in name:
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):
            pass  # not glibc: nothing to do


class QueryPictures:
    def __init__(self, folder: Path | None = None):
        self.folder = os.path.realpath(folder) if folder else None
        self._slots = threading.BoundedSemaphore(PICTURE_SLOTS)
        self._lock = threading.Lock()
        # Gradio names an upload by its content hash, so one path is one content: the answer
        # (a picture or the reason it cannot be used) is kept by path, and clients that send
        # the same picture at once share one decode (the first one deletes the file).
        self._kept: OrderedDict[str, Image.Image | QueryError] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}

    def load(self, path: str) -> Image.Image:
        """The upright RGB picture of an upload; QueryError with a one-line reason (the file's
        name only, never the server path) when it cannot be used."""
        with self._lock:
            busy = self._loading.setdefault(path, threading.Lock())
        with busy:
            with self._lock:
                answer = self._kept.get(path)
                if answer is not None:
                    self._kept.move_to_end(path)
            if answer is None and not os.path.exists(path):  # not kept: it may come again
                answer = QueryError(f"the example picture {os.path.basename(path)} is no "
                                    "longer on the server: drop it again")
            elif answer is None:
                answer = self._decode(path)
                with self._lock:
                    self._kept[path] = answer
                    while len(self._kept) > KEEP:
                        self._kept.popitem(last=False)
        with self._lock:
            self._loading.pop(path, None)
        if isinstance(answer, QueryError):
            raise answer
        return answer

    def _decode(self, path: str) -> Image.Image | QueryError:
        name = os.path.basename(path)
        try:
            with self._slots:
                try:
                    image = load_query_image(path, name=name)
                    image.thumbnail((KEEP_SIZE, KEEP_SIZE), Image.Resampling.BILINEAR)
                    return image
                finally:
                    self._forget_file(path)
                    _trim_heap()
        except QueryError as exc:
            return exc
        except Exception:  # noqa: BLE001 (a decoder bug must stay a one-line answer)
            return QueryError(f"the example picture {name} cannot be used")

    def _forget_file(self, path: str) -> None:
        """Delete an upload once read, if it is one of this app's (never anything else)."""
        if self.folder is None:
            return
        real = os.path.realpath(path)
        if real.startswith(self.folder + os.sep):
            # Only the file: Gradio names an upload's folder by its content, and removing it
            # raced a concurrent upload of the same picture, whose mkdir then failed (a 500
            # in tests/test_security.py's 8 clients). The empty folders go at exit.
            try:
                os.unlink(real)
            except OSError:
                pass
