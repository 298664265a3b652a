"""Filters on the stored scalar fields, turned into a Milvus filter expression.

They are applied inside Milvus during the vector search, so a filtered search still returns a
full top-k of matching pictures (not a top-k cut down afterwards). Every value is validated
and quoted here; no user text reaches the expression raw.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

ORIENTATIONS = ("landscape", "portrait", "square")
TYPES = ("picture", "video")
# A video's scenes are items with fields["media"] == "video" (indexer.videos). `!=` is true
# where the key is missing in Milvus Lite 2.5.1 (measured), so it selects every picture.
MEDIA, VIDEO = "media", "video"
IS_SCENE, NOT_SCENE = f'fields["{MEDIA}"] == "{VIDEO}"', f'fields["{MEDIA}"] != "{VIDEO}"'


def is_scene(row: dict) -> bool:
    """Whether a stored row (with its `fields`) is a video's scene: IS_SCENE, in Python."""
    return (row.get("fields") or {}).get(MEDIA) == VIDEO


_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")


class FilterError(ValueError):
    """A filter value that cannot be used; the message says why in one line."""


def brief(text: str, limit: int = 60) -> str:
    """Some of the user's input for a message: repr'd, and cut if long (a 1 MB input must not
    come back in full)."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def quote(value: str) -> str:
    """A string literal for a Milvus filter expression: backslash and double quote escaped,
    line breaks as \\n and \\r (no engine takes them raw), every other character as it is.
    Milvus Lite 2.5.1 decodes no other escape (JSON's "\\t" would stay a backslash and a t)."""
    return '"' + (value.replace("\\", "\\\\").replace('"', '\\"')
                  .replace("\n", "\\n").replace("\r", "\\r")) + '"'


def under_folder(folder: str) -> str:
    """Expression: the path lies in `folder` or below it. A range of strings, not `like`:
    every string that starts with "DIR/" sorts between "DIR/" and "DIR0" ("/" + 1), in
    Milvus's byte order as in Python's, and no character of the folder name is a wildcard.
    Milvus Lite 2.5.1 takes `_` in a like pattern as a wildcard whatever the escaping (and a
    lone backslash in one stops its engine)."""
    prefix = folder.rstrip(os.sep) + os.sep
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return f"path >= {quote(prefix)} and path < {quote(upper)}"


def parse_date(text: str, end: bool = False) -> float:
    """`YYYY`, `YYYY-MM` or `YYYY-MM-DD` (local time) -> seconds since the epoch.

    With `end`, the moment just after that year, month or day, so `--until 2024-05` takes in
    the whole of May."""
    m = _DATE.match(text.strip())
    if not m:
        raise FilterError(f"cannot read the date {text!r}: use YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = int(m[1]), int(m[2] or 1), int(m[3] or 1)
    try:
        start = datetime(year, month, day)
    except ValueError as exc:
        raise FilterError(f"cannot read the date {text!r}: {exc}") from None
    if end:
        if m[3]:
            start += timedelta(days=1)
        elif m[2]:
            start = datetime(year + (month == 12), month % 12 + 1, 1)
        else:
            start = datetime(year + 1, 1, 1)
    return start.timestamp()


@dataclass(frozen=True)
class Filters:
    """Which pictures a search may return. Empty filters let everything through."""

    folder: str | None = None       # only pictures in this folder or below (absolute path)
    since: float | None = None      # taken (EXIF date, else file time) at or after, epoch s
    until: float | None = None      # taken before, epoch s
    min_width: int = 0
    min_height: int = 0
    orientation: str | None = None  # landscape, portrait or square
    type: str | None = None         # picture or video (a video's scenes)

    @classmethod
    def parse(cls, folder: str | None = None, since: str | None = None,
              until: str | None = None, min_width: int | None = None,
              min_height: int | None = None, orientation: str | None = None,
              type: str | None = None) -> "Filters":
        """Filters from what a user typed (CLI flags, app fields); bad values: FilterError."""
        orientation = (orientation or "").strip().lower() or None
        type = (type or "").strip().lower() or None
        if type is not None and type not in TYPES:
            raise FilterError(f"type must be picture or video, not {brief(type)}")
        if orientation is not None and orientation not in ORIENTATIONS:
            raise FilterError(f"orientation must be one of {', '.join(ORIENTATIONS)}, "
                              f"not {orientation!r}")
        for name, value in (("minimum width", min_width), ("minimum height", min_height)):
            if value is not None and value < 0:
                raise FilterError(f"the {name} cannot be negative")
        filters = cls(folder=os.path.abspath(os.path.expanduser(folder)) if folder else None,
                      since=parse_date(since) if since else None,
                      until=parse_date(until, end=True) if until else None,
                      min_width=int(min_width or 0), min_height=int(min_height or 0),
                      orientation=orientation, type=type)
        if filters.since is not None and filters.until is not None \
                and filters.since >= filters.until:
            raise FilterError(f"--since {since} is not before --until {until}")
        return filters

    def expression(self) -> str:
        terms = []
        if self.folder:
            terms.append(under_folder(self.folder))
        if self.since is not None:
            terms.append(f"taken >= {float(self.since)!r}")
        if self.until is not None:
            terms.append(f"taken < {float(self.until)!r}")
        if self.min_width:
            terms.append(f"width >= {int(self.min_width)}")
        if self.min_height:
            terms.append(f"height >= {int(self.min_height)}")
        if self.orientation:
            terms.append({"landscape": "width > height", "portrait": "width < height",
                          "square": "width == height"}[self.orientation])
        if self.type:
            terms.append(IS_SCENE if self.type == "video" else NOT_SCENE)
        return " and ".join(f"({t})" for t in terms)
