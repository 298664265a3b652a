"""Query composition and search: sentences and pictures in, ranked pictures out.

A query is a weighted sum of unit vectors: each text or picture part is encoded, multiplied
by its weight, the parts are added and the sum is normalised back to unit length. Its
cosine similarity with every indexed picture is the score. The CLI and the app both call
`Searcher`, so they rank identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mmsearch.config import IndexLocation, ModelSpec
from mmsearch.encoder import Encoder
from mmsearch.images import BadPicture, open_image, to_rgb
from mmsearch.index import Hit, Index


class QueryError(ValueError):
    """A query that cannot be run; the message says why in one line."""


@dataclass
class Query:
    texts: list[str] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)
    text_weight: float = 1.0
    image_weight: float = 1.0

    @property
    def empty(self) -> bool:
        return not self.texts and not self.images


def compose(parts: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Weighted sum of unit vectors, normalised. Raises QueryError if they cancel out."""
    total = np.sum([w * v for v, w in parts], axis=0).astype(np.float32)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise QueryError("the query parts cancel each other out; change the weights")
    return total / norm


def load_query_image(source: str | Path | bytes | Image.Image) -> Image.Image:
    """A picture given as a path, bytes or PIL image -> upright RGB (same decoding as indexing)."""
    if isinstance(source, Image.Image):
        return to_rgb(source)
    if isinstance(source, (str, Path)):
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise QueryError(f"cannot read {source}: {exc.strerror or exc}") from None
        name = str(source)
    else:
        data, name = source, ""
    label = f"the example picture {name}" if name else "the example picture"
    if not data:
        raise QueryError(f"{label} is empty")
    try:
        return open_image(data, name).image
    except BadPicture as exc:
        raise QueryError(f"{label} cannot be used: {exc}") from None


class Searcher:
    """An open index plus the encoder of the model it was built with."""

    def __init__(self, index: Index, encoder: Encoder | None = None):
        self.index = index
        self.encoder = encoder or Encoder(index.model)

    @classmethod
    def open(cls, location: IndexLocation, model: ModelSpec | None = None) -> "Searcher":
        return cls(Index.open(location, model=model))

    def warm(self) -> "Searcher":
        """Load the model and run one query, so the user's first query is not the slow one."""
        self.encoder.warm()
        self.index.search(self.encoder.encode_texts(["warm up"])[0], k=1)
        return self

    def vector(self, query: Query) -> np.ndarray:
        if query.empty:
            raise QueryError("empty query: type some words or give an example picture")
        parts: list[tuple[np.ndarray, float]] = []
        if query.texts:
            parts += [(v, query.text_weight) for v in self.encoder.encode_texts(query.texts)]
        if query.images:
            parts += [(v, query.image_weight) for v in self.encoder.encode_images(query.images)]
        return compose(parts)

    def search(self, query: Query, k: int = 20) -> list[Hit]:
        return self.index.search(self.vector(query), k=k)

    def search_text(self, text: str, k: int = 20) -> list[Hit]:
        text = (text or "").strip()
        return self.search(Query(texts=[text] if text else []), k)

    def search_image(self, image, k: int = 20) -> list[Hit]:
        return self.search(Query(images=[load_query_image(image)]), k)

    def search_similar(self, path: str, k: int = 20) -> list[Hit]:
        """Pictures like an indexed one, from its stored vector (no re-decoding)."""
        row = self.index.get_rows([path], ("vector",)).get(path)
        if row is None:
            raise QueryError(f"{path or 'that picture'} is not in the index")
        return self.index.search(np.asarray(row["vector"], np.float32), k=k)

    def close(self) -> None:
        self.index.close()
