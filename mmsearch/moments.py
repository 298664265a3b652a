"""Videos in search results: a video's scenes found together become one result, at its best
moment, with its other strong moments; and `path@m:ss` names a scene to start a search from.

Each scene of a video is an item (indexer.videos has the shape: key `path#t=12.00`, fields
`media: "video"`, `time`, `end`), so a search ranks scenes and pictures together. Grouping
happens after the search: Milvus Lite 2.5.1 does take `group_by_field="path"` (one hit per
video, measured), but it ignores `group_size` (so no further moments), and the searches here
also run through the fusion with the words and the SimHash first step, which would each need it.
`search_grouped` asks for the top k; only when a scene is among them does it ask again for
OVERFETCH times as many candidates (for the videos' further moments), and again until there
are k results or no more candidates: a query that finds no video pays nothing.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable

from mmsearch.filters import IS_SCENE, quote
from mmsearch.hits import Hit

TIME, END, SCENES = "time", "end", "scenes"
OVERFETCH = 5
MAX_CANDIDATES = 16384  # Milvus's largest limit
MOMENTS = 3        # further moments given with a video result
STRONG = 0.9       # a further moment scores at least this share of the video's best scene


def media_counts(count: Callable[[str], int], items: int) -> dict:
    """A folder index's `stats`: its pictures, its whole videos and their scenes, from
    `count(filter)` (the last scene of a video written whole holds `scenes`)."""
    scenes = count(IS_SCENE) if items else 0
    return {"images": items - scenes, "videos": count(f'fields["{SCENES}"] > 0') if scenes else 0,
            "scenes": scenes}


def scene_key(path: str, start: float) -> str:
    return f"{path}#t={start:.2f}"


_MOMENT = re.compile(r"^(?P<path>.+?)(?:#t=|@)(?P<time>\d+(?::\d{1,2}){0,2}(?:\.\d+)?)$")


def parse_moment(text: str) -> tuple[str, float] | None:
    """(video path, seconds) of a scene's key (`clip.mp4#t=12.00`) or of `clip.mp4@1:05`
    (also `@65`, `@1:02:05`); None when `text` is neither."""
    m = _MOMENT.match(text.strip())
    if not m:
        return None
    seconds = 0.0
    for piece in m["time"].split(":"):
        seconds = seconds * 60 + float(piece)
    return m["path"], seconds


def clock(seconds: float) -> str:
    """12.5 -> "0:12", 3725 -> "1:02:05": how a moment is printed."""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def resolve(index, key: str) -> str:
    """The stored key a find-similar starts from, for a `key` that is not stored itself: the
    scene of `path@m:ss` (or of a scene key that is not stored) playing at that time, else
    the first scene of a video given by its path alone; otherwise `key` unchanged (the
    caller says it is not in the index). Callers have looked `key` up already."""
    if not key:
        return key
    moment = parse_moment(key) or (key, 0.0)
    path, at = moment
    rows = list(index.iter_rows(("key", "fields"), f"path == {quote(path)} and {IS_SCENE}"))
    rows.sort(key=lambda r: r["fields"][TIME])
    playing = [r for r in rows if r["fields"][TIME] <= at + 1e-6]
    return (playing or rows)[-1]["key"] if rows else key


def group(hits: list[Hit]) -> list[Hit]:
    """One hit per video, at its best scene, with up to MOMENTS further strong scenes as
    `moments`; pictures as they are; the order of the best hits kept."""
    out: list[Hit] = []
    scenes: dict[str, list[Hit]] = {}
    for hit in hits:
        if hit.time is None:
            out.append(hit)
        elif hit.path in scenes:
            scenes[hit.path].append(hit)
        else:
            scenes[hit.path] = [hit]
            out.append(hit)
    for i, hit in enumerate(out):
        if hit.time is not None:
            more = [h for h in scenes[hit.path][1:] if h.score >= STRONG * hit.score]
            out[i] = replace(hit, moments=tuple((h.time, h.score) for h in more[:MOMENTS]))
    return out


def search_grouped(search: Callable[[int], list[Hit]], k: int) -> list[Hit]:
    """`search(n)` (the top n hits) grouped (`group`), from enough candidates for k
    results where there are that many."""
    n = k
    while True:
        hits = search(n)
        grouped = group(hits)
        if n == k and all(h.time is None for h in hits):
            return grouped  # no video among them (every query of a photo library)
        if (n > k and len(grouped) >= k) or len(hits) < n or n >= MAX_CANDIDATES:
            return grouped
        n = min(n * OVERFETCH, MAX_CANDIDATES)
