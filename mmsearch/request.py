"""A search as the command line states it, runnable here or sent to a resident process.

`mmsearch search` builds one `SearchRequest` from its flags. With a resident process up
(`mmsearch.resident`), the request travels as JSON to its `/api/search`; otherwise it runs
here. Both ends call `run`, so a query ranks the same whichever process answers it.
Pictures travel as their bytes (base64), never as paths the other process would open.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field

from mmsearch.config import NOT_WEIGHT

KINDS = ("image", "not_text", "not_image")
FILTER_FIELDS = ("folder", "since", "until", "min_width", "min_height", "orientation", "type")


@dataclass
class PicturePart:
    """`kind`: image (look for it), not_text / not_image (leave it out). `value`: words, or
    the picture's bytes base64-encoded."""

    kind: str
    value: str
    weight: float | None = None  # None: the default for the kind
    name: str = ""               # how messages call the picture (its file name)


@dataclass
class SearchRequest:
    text: str = ""
    text_weight: float = 1.0
    parts: list[PicturePart] = field(default_factory=list)
    similar: list[str] = field(default_factory=list)  # indexed pictures (paths) to start from,
    # or a video's scenes (key `clip.mp4#t=12.00`, or `clip.mp4@0:12`: mmsearch.moments)
    folder: str | None = None
    since: str | None = None
    until: str | None = None
    min_width: int | None = None
    min_height: int | None = None
    orientation: str | None = None
    type: str | None = None  # picture or video
    like: list[str] = field(default_factory=list)     # catalogues: item ids
    dislike: list[str] = field(default_factory=list)
    where: str = ""
    mode: str = "hybrid"
    k: int = 10
    min_score: float | None = None
    all: bool = False     # every match (mmsearch.cutoff), not the top k
    sort: str = "score"   # or "date" (newest first)

    @staticmethod
    def picture(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    def to_json(self) -> dict:
        return asdict(self)

    def check(self) -> "SearchRequest":
        for p in self.parts:
            if p.kind not in KINDS:
                raise ValueError(f"a part's kind is one of {', '.join(KINDS)}")
        return self

    @property
    def has_picture_filters(self) -> bool:
        return any(getattr(self, f) for f in FILTER_FIELDS)

    def answer(self, searcher) -> dict:
        """What `--json` and `/api/search` say: {"kind", "results"}, and with `all` also
        "count" and "capped" (the matches filled all the candidates: there may be more)."""
        from mmsearch.cutoff import CAP

        results = self.run(searcher)
        out = {"kind": searcher.index.kind, "results": results}
        if self.all:
            out |= {"count": len(results), "capped": len(results) >= max(CAP, self.k)}
        return out

    def run(self, searcher) -> list[dict]:
        """Results as the JSON the CLI prints: [{"path", "score"}] for a folder index (a
        video's also "key", "time", "end", "moments": mmsearch.hits.Hit.to_json),
        [{"id", "title", "path", "score", "fields"}] for a catalogue."""
        if self.k < 1 or self.k > 16384:
            raise ValueError("-k takes 1 to 16384 results")
        kind = searcher.index.kind
        if kind == "catalog":
            self._check_catalog()
            if self.sort == "date":
                raise ValueError("--sort date is for folder indexes: a catalogue's items have "
                                 "no date")
        elif self.like or self.dislike or self.where or self.mode != "hybrid":
            raise ValueError("--like, --dislike, --where and --mode work on catalogues; this "
                             "is a folder index (see --not, --in and the other filters)")
        return [h.to_json(kind) for h in searcher.search(self.query(), k=self.k)]

    def query(self):
        """The Query this request describes."""
        from mmsearch.filters import Filters
        from mmsearch.search import Part, Query, feedback_parts, load_query_image

        parts = []
        if self.text.strip():
            parts.append(Part(text=self.text, weight=self.text_weight))
        for p in self.parts:
            if p.kind == "image":
                parts.append(Part(image=load_query_image(_bytes(p.value), p.name),
                                  weight=1.0 if p.weight is None else abs(p.weight)))
                continue
            weight = -abs(NOT_WEIGHT if p.weight is None else p.weight)
            parts.append(Part(image=load_query_image(_bytes(p.value), p.name), weight=weight)
                         if p.kind == "not_image" else Part(text=p.value, weight=weight))
        parts += [Part(indexed=path) for path in self.similar]
        parts += feedback_parts(self.like, self.dislike)
        filters = Filters.parse(self.folder, self.since, self.until, self.min_width,
                                self.min_height, self.orientation, self.type)
        return Query(parts, filters=filters, min_score=self.min_score, where=self.where or "",
                     mode=self.mode, exclude=(*self.like, *self.dislike), all=bool(self.all),
                     sort=self.sort)

    def _check_catalog(self) -> None:
        if any(p.kind != "image" for p in self.parts) or self.has_picture_filters \
                or self.similar:
            raise ValueError("this is a catalogue: leave things out with --dislike ID and "
                             "filter with --where (--not, --in and the picture filters are for "
                             "folders)")
        if len(self.parts) > 1:
            raise ValueError("a catalogue search takes one --image")


def _bytes(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError("a picture must be sent as base64 bytes") from None


def why_matched(matched, text: str = "") -> str:
    """What carried a result besides its picture, in words ("name: bali sunset", or the
    signal names), or "" when the picture alone did: the CLI table and the app show it."""
    others = [m for m in matched if m != "picture"]
    return (text or ", ".join(others)) if others else ""
