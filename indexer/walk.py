"""Find the pictures (and videos) under some folders: the reader stage of indexing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

from mmsearch.config import HEIF_EXTENSIONS, IMAGE_EXTENSIONS
from mmsearch.video import VIDEO_EXTENSIONS

# Folders that NAS boxes and OSes fill with thumbnails of the real pictures.
SKIP_DIRS = frozenset({"@eaDir", "__MACOSX", "$RECYCLE.BIN", "System Volume Information"})
PICTURE_EXTENSIONS = IMAGE_EXTENSIONS | HEIF_EXTENSIONS


def is_hidden(name: str) -> bool:
    return name.startswith(".")  # covers macOS `._*` resource forks too


def is_picture_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in PICTURE_EXTENSIONS


def is_video_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def find_pictures(root: str) -> Iterator[str]:
    """Absolute paths of picture files under `root` (see find_files)."""
    return find_files(root, is_picture_name)


def find_videos(root: str) -> Iterator[str]:
    """Absolute paths of video files under `root` (see find_files)."""
    return find_files(root, is_video_name)


def find_files(root: str, wanted: Callable[[str], bool]) -> Iterator[str]:
    """Absolute paths of the files under `root` whose names are `wanted`, sorted, hidden
    ones left out.

    Symlinked folders are not followed (no loops, nothing outside the folder); a symlinked
    file is kept only when it points inside `root`, so the app never serves files from
    elsewhere.
    """
    root = os.path.abspath(root)
    real_root = os.path.realpath(root)
    if os.path.isfile(root):
        if wanted(root) and not is_hidden(os.path.basename(root)):
            yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=None):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d) and d not in SKIP_DIRS)
        for name in sorted(filenames):
            if is_hidden(name) or not wanted(name):
                continue
            path = os.path.join(dirpath, name)
            if os.path.islink(path) and not _inside(os.path.realpath(path), real_root):
                continue
            yield path


def would_find(path: str, root: str) -> bool:
    """Whether find_pictures(root) yields `path`, asked of one path (the streamed plan's test
    for a stored row whose file is gone, without holding the folder's listing)."""
    root = os.path.abspath(root)
    if os.path.isfile(root):
        return path == root and is_picture_name(root) and not is_hidden(os.path.basename(root))
    if not _inside(path, root) or path == root:
        return False
    parts = os.path.relpath(path, root).split(os.sep)
    if is_hidden(parts[-1]) or not is_picture_name(parts[-1]):
        return False
    folder = root
    for part in parts[:-1]:  # os.walk follows no symlinked folder, nor hidden or skipped ones
        folder = os.path.join(folder, part)
        if is_hidden(part) or part in SKIP_DIRS or os.path.islink(folder) or \
                not os.path.isdir(folder):
            return False
    if not os.path.isfile(path):
        return False
    return not os.path.islink(path) or _inside(os.path.realpath(path), os.path.realpath(root))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def roots_of(paths: Iterable[str | Path]) -> list[str]:
    """Absolute, de-duplicated roots, nested ones folded into their parent."""
    absolute = sorted({os.path.abspath(p) for p in paths})
    roots: list[str] = []
    for p in absolute:
        if not any(_inside(p, r) for r in roots):
            roots.append(p)
    return roots
