"""Query composition and search: sentences and pictures in, ranked pictures out.

A query is a list of parts: words, example pictures, or pictures already in the index (by
path, using their stored vectors). Each part is encoded to a unit vector v_i and given a
weight w_i, positive for what to look for and negative for what to leave out (`--not`, "less
like this"). The query vector is the weighted sum normalised back to unit length:

    q = sum(w_i * v_i) / |sum(w_i * v_i)|

and a picture's score is its cosine similarity with q (what Milvus's COSINE metric returns).
Filters restrict the candidates inside Milvus; `min_score` drops results below a cutoff. The
CLI and the app both go through `Searcher`, so they rank identically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mmsearch.config import NOT_WEIGHT, MAX_QUERY_BYTES  # noqa: F401
from mmsearch.encoder import Encoder
from mmsearch.filters import Filters, brief
from mmsearch.images import BadPicture, open_image, to_rgb
from mmsearch.index import Hit, Index

# Relevance feedback ("more/less like this"), after Rocchio: the liked pictures together weigh
# LIKE_WEIGHT and the disliked ones -DISLIKE_WEIGHT, however many there are, so the typed
# query keeps its say.
LIKE_WEIGHT = 0.75
DISLIKE_WEIGHT = 0.25


class QueryError(ValueError):
    """A query that cannot be run; the message says why in one line."""


@dataclass(frozen=True)
class Part:
    """One thing the query is made of: exactly one of `text`, `image` or `indexed` (the
    path of an indexed picture). A negative weight means "not like this"."""

    text: str | None = None
    image: Image.Image | None = field(default=None, compare=False)
    indexed: str | None = None
    weight: float = 1.0


@dataclass
class Query:
    parts: list[Part] = field(default_factory=list)
    filters: Filters = field(default_factory=Filters)
    min_score: float | None = None

    @classmethod
    def of(cls, texts=(), images=(), without=(), without_weight: float = NOT_WEIGHT,
           **kwargs) -> "Query":
        """Texts and pictures to look for, plus texts to leave out, all at default weights."""
        parts = [Part(text=t) for t in texts if t and t.strip()]
        parts += [Part(image=im) for im in images]
        parts += [Part(text=t, weight=-abs(without_weight)) for t in without if t and t.strip()]
        return cls(parts, **kwargs)

    @property
    def empty(self) -> bool:
        return not any(p.weight > 0 for p in self.parts)


def feedback_parts(liked=(), disliked=()) -> list[Part]:
    """Parts for indexed pictures marked "more like this" (liked) or "less like this"."""
    liked, disliked = list(dict.fromkeys(liked)), list(dict.fromkeys(disliked))
    return ([Part(indexed=p, weight=LIKE_WEIGHT / len(liked)) for p in liked]
            + [Part(indexed=p, weight=-DISLIKE_WEIGHT / len(disliked)) for p in disliked])


def compose(parts: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Weighted sum of unit vectors, normalised. Raises QueryError if they cancel out."""
    total = np.sum([w * v for v, w in parts], axis=0).astype(np.float32)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise QueryError("the query parts cancel each other out; change the weights")
    return total / norm


# Query pictures are refused above this many pixels, from their header: a 257 kB PNG of
# 9400x9400 px (under Pillow's bomb limit of 89 MP) took 1 GB of RAM per decode. 50 MP
# covers phone and most camera photos.
MAX_QUERY_PIXELS = 50_000_000


def load_query_image(source: str | Path | bytes | Image.Image,
                     name: str | None = None) -> Image.Image:
    """A picture given as a path, bytes or PIL image -> upright RGB (same decoding as indexing).
    `name`: how messages call it (default: the path)."""
    if isinstance(source, Image.Image):
        return to_rgb(source)
    if isinstance(source, (str, Path)):
        name = str(source) if name is None else name
        try:
            size = os.path.getsize(source)
            if size > MAX_QUERY_BYTES:
                raise QueryError(f"the example picture {name} is too large ({size >> 20} MB)")
            data = Path(source).read_bytes()
        except OSError as exc:
            raise QueryError(f"cannot read {name}: {exc.strerror or exc}") from None
        ext = str(source)
    else:
        data, name, ext = source, name or "", name or ""
    label = f"the example picture {name}" if name else "the example picture"
    if not data:
        raise QueryError(f"{label} is empty")
    try:
        return open_image(data, ext, max_pixels=MAX_QUERY_PIXELS).image
    except BadPicture as exc:
        raise QueryError(f"{label} cannot be used: {exc}") from None


class Searcher:
    """An open index plus the encoder of the model it was built with."""

    def __init__(self, index: Index, encoder: Encoder | None = None):
        self.index = index
        self.encoder = encoder or Encoder(index.model)

    def warm(self) -> "Searcher":
        """Load the model and run one query, so the user's first query is not the slow one."""
        self.encoder.warm()
        self.index.search(self.encoder.encode_texts(["warm up"])[0], k=1)
        return self

    def vector(self, query: Query) -> np.ndarray:
        if query.empty:
            raise QueryError("empty query: type some words or give an example picture "
                             "(what to leave out alone is not a query)")
        texts = [p for p in query.parts if p.text is not None]
        images = [p for p in query.parts if p.image is not None]
        indexed = [p for p in query.parts if p.indexed is not None]
        pairs: list[tuple[np.ndarray, float]] = []
        if texts:
            pairs += zip(self.encoder.encode_texts([p.text for p in texts]),
                         [p.weight for p in texts])
        if images:
            pairs += zip(self.encoder.encode_images([p.image for p in images]),
                         [p.weight for p in images])
        if indexed:
            stored = self.index.get_rows([p.indexed for p in indexed], ("vector",))
            for p in indexed:
                if p.indexed not in stored:
                    raise QueryError(f"{brief(p.indexed, 200) if p.indexed else 'that picture'} "
                                     "is not in the index")
                pairs.append((np.asarray(stored[p.indexed]["vector"], np.float32), p.weight))
        return compose(pairs)

    def search(self, query: Query, k: int = 20) -> list[Hit]:
        hits = self.index.search(self.vector(query), k=k, filter=query.filters.expression())
        if query.min_score is not None:
            hits = [h for h in hits if h.score >= query.min_score]
        return hits

    def search_text(self, text: str, k: int = 20, **kwargs) -> list[Hit]:
        return self.search(Query.of(texts=[text or ""], **kwargs), k)

    def search_image(self, image, k: int = 20, **kwargs) -> list[Hit]:
        return self.search(Query.of(images=[load_query_image(image)], **kwargs), k)

    def search_similar(self, path: str, k: int = 20, **kwargs) -> list[Hit]:
        """Pictures like an indexed one, from its stored vector (no re-decoding)."""
        return self.search(Query([Part(indexed=path or "")], **kwargs), k)

    def close(self) -> None:
        self.index.close()
