"""Query composition and search: sentences and pictures in, ranked pictures out.

A query is a list of parts: words, example pictures, or pictures already in the index (by
path, using their stored vectors). Each part is encoded to a unit vector v_i and given a
weight w_i, positive for what to look for and negative for what to leave out (`--not`, "less
like this"). The query vector is the weighted sum normalised back to unit length:

    q = sum(w_i * v_i) / |sum(w_i * v_i)|

and a picture's score is its cosine similarity with q (what Milvus's COSINE metric returns).
A "without" part (`--not` words or a picture) is not in that sum: it removes what matches it
in the query's context, and `all` returns every match rather than the top k (both in
mmsearch.cutoff); `sort="date"` orders the results by when they were taken, newest first.
Filters restrict the candidates inside Milvus; `min_score` drops results below a cutoff. The
CLI and the app both go through `Searcher`, so they rank identically.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from mmsearch import cutoff, fusion, moments
from mmsearch.config import NOT_WEIGHT, MAX_QUERY_BYTES  # noqa: F401
from mmsearch.encoder import Encoder
from mmsearch.filters import Filters, brief
from mmsearch.fusion import MODES
from mmsearch.images import BadPicture, open_image, to_rgb
from mmsearch.index import IMAGE_VECTOR, SPARSE, TEXT_VECTOR, Hit, Index
from mmsearch.items import item_id

# Relevance feedback ("more/less like this"), after Rocchio: the liked pictures together weigh
# LIKE_WEIGHT and the disliked ones -DISLIKE_WEIGHT, however many there are, so the typed
# query keeps its say.
LIKE_WEIGHT = 0.75
DISLIKE_WEIGHT = 0.25
SORTS = ("score", "date")


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
    """What to look for and where, for every kind of index (the CLI, the app and the API
    all build one). `filters`: the picture filters (folder, dates, size, orientation);
    `where`: a filter over the items' fields (mmsearch.where); `mode`: which signals a
    hybrid index searches (mmsearch.fusion.MODES); `exclude`: keys never returned (the
    products liked or disliked, so they are not recommended back)."""

    parts: list[Part] = field(default_factory=list)
    filters: Filters = field(default_factory=Filters)
    min_score: float | None = None
    where: str = ""
    mode: str = "hybrid"
    exclude: tuple[str, ...] = ()
    weights: tuple[float, float, float] | None = None  # (picture, text vectors, BM25) for a
    # fixed fusion instead of the adaptive one (bench/catalog.py); all zero: RRF
    all: bool = False     # every match (mmsearch.cutoff.count) of the top CAP, not the top k
    sort: str = "score"   # or "date": newest first (by `taken`)

    @classmethod
    def of(cls, texts=(), images=(), without=(), without_weight: float = NOT_WEIGHT,
           like=(), dislike=(), **kwargs) -> "Query":
        """Texts and pictures to look for, texts to leave out, and indexed items marked more
        or less like this (their keys; they are excluded from the results), at default
        weights."""
        parts = [Part(text=t) for t in texts if t and t.strip()]
        parts += [Part(image=im) for im in images]
        parts += [Part(text=t, weight=-abs(without_weight)) for t in without if t and t.strip()]
        parts += feedback_parts(like, dislike)
        if like or dislike:
            kwargs.setdefault("exclude", (*like, *dislike))
        return cls(parts, **kwargs)

    @property
    def empty(self) -> bool:
        return not any(p.weight > 0 for p in self.parts)

    @property
    def without(self) -> list[Part]:
        """The parts that remove what matches them (mmsearch.cutoff): words or pictures with a
        negative weight. Indexed pictures marked "less like this" stay in the vector sum."""
        return [p for p in self.parts if p.weight < 0 and p.indexed is None]

    def looking_for(self) -> "Query":
        """The query without its `without` parts, what the candidates are ranked by; a word
        left out is also taken out of the words looked for ("a red sneaker" without red looks
        for "a sneaker": the sneakers left after removing the red ones come first, not the
        next red things)."""
        gone = {w for p in self.without if p.text for w in _WORD.findall(p.text.lower())}
        parts = [replace(p, text=" ".join(w for w in p.text.split()
                                          if not gone & set(_WORD.findall(w.lower()))))
                 if p.text and gone else p for p in self.parts if p.weight > 0 or p.indexed]
        return replace(self, parts=[p for p in parts if p.text is None or p.text.strip()])


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


# What `matched` may hold (the JSON contract): folders' items, then catalogues'.
MATCHED = {"folder": ("picture", "words", "name", "place", "camera"),
           "catalog": ("picture", "title", "fields")}
SNIPPET = 80
# Item fields whose words a folder's BM25 text holds, by the signal name they answer to.
PHOTO_TEXT = {"words": ("words",), "name": ("name", "folders"), "place": ("place",),
              "camera": ("camera",)}
_WORD = re.compile(r"\w+")


def _folded(text: str) -> list[str]:
    """Lower-cased word pieces without accents, as the words analyzer sees them."""
    plain = unicodedata.normalize("NFKD", text.lower())
    return _WORD.findall("".join(c for c in plain if not unicodedata.combining(c)))


def _around(text: str, asked: set[str], width: int = SNIPPET) -> str:
    """A `width`-character window of `text` around its first word in `asked` (read text can
    be a whole screenshot)."""
    if len(text) <= width:
        return text
    at = next((m.start() for m in _WORD.finditer(text) if asked & set(_folded(m.group()))), 0)
    start = max(0, min(at - width // 4, len(text) - width))
    return ("…" if start else "") + text[start:start + width].strip()


def lexical_matches(hit: Hit, words: str, catalog: bool) -> list[tuple[str, str]]:
    """(signal name, the text it matched) for each text of the hit holding a query word;
    BM25 said it matched, this says where (on the same folded word pieces)."""
    asked = set(_folded(words))
    if catalog:
        texts = [("title", "title", hit.title)] + [
            ("fields", key, value) for key, value in hit.fields.items() if isinstance(value, str)]
    else:
        texts = [(name, key, hit.fields.get(key)) for name, keys in PHOTO_TEXT.items()
                 for key in keys if isinstance(hit.fields.get(key), str)]
    labels = {"title": "{}", "words": "text in picture: {}"}
    found = [(name, labels.get(name, f"{key}: {{}}").format(_around(text, asked)))
             for name, key, text in texts if asked & set(_folded(text))]
    return found or [("title" if catalog else "name", "")]


class Searcher:
    """An open index plus the encoder of the model it was built with: runs a Query.

    The query's parts become one vector per signal the index has: the picture vector (words
    and pictures encoded, indexed items' stored picture vectors) and, in a catalogue, the
    text vector (words, stored text vectors) and BM25 (the words). One signal is one Milvus
    search; several are fused (mmsearch.fusion)."""

    def __init__(self, index: Index, encoder=None):
        """`encoder` answers queries: the torch Encoder (the default) or the model's ONNX
        towers (mmsearch.towers.query_encoder), which a resident app opens in ~0.5 s."""
        self.index = index
        self.encoder = encoder or Encoder(index.model)
        self._indexing: Encoder | None = None
        self._indexing_lock = threading.Lock()

    def indexing_encoder(self) -> Encoder:
        """The torch model, for writing pictures (bf16: faster than the ONNX towers for a
        batch): the query encoder when it is that model, else loaded on the first call."""
        if isinstance(self.encoder, Encoder):
            return self.encoder
        with self._indexing_lock:
            if self._indexing is None:
                self._indexing = Encoder(self.index.model)
            return self._indexing

    @property
    def catalog(self) -> bool:
        return self.index.kind == "catalog"

    def warm(self) -> "Searcher":
        """Load the model and run one query, so the user's first query is not the slow one."""
        self.encoder.warm()
        self.search(Query.of(texts=["warm up"]), k=1)
        return self

    def _empty(self) -> QueryError:
        if self.catalog:
            return QueryError("empty query: type some words, give an example picture or --like "
                              "an item")
        return QueryError("empty query: type some words or give an example picture (what to "
                          "leave out alone is not a query)")

    def _stored(self, keys: list[str]) -> dict[str, dict]:
        """The stored vectors of the indexed items a query starts from, by key."""
        if not keys:
            return {}
        fields = (IMAGE_VECTOR, TEXT_VECTOR) if self.index.has_text_vectors else (IMAGE_VECTOR,)
        stored = self.index.get(keys, fields)
        if not self.catalog and (missing := [k for k in keys if k not in stored]):
            # a video's moment: `clip.mp4@1:05`, or the video's path (mmsearch.moments)
            real = {k: moments.resolve(self.index, k) for k in missing}
            found = self.index.get(real.values(), fields)
            stored |= {k: found[r] for k, r in real.items() if r in found}
        for key in keys:
            if key not in stored:
                if self.catalog:
                    raise QueryError(f"no item with id {brief(key)} in the catalogue")
                raise QueryError(f"{brief(key, 200) if key else 'that picture'} "
                                 "is not in the index")
        return stored

    def _signals(self, query: Query) -> tuple[list, list]:
        """(picture parts, text parts): (vector, weight) pairs for the picture-vector and
        the text-vector signals."""
        if query.empty:
            raise self._empty()
        texts = [p for p in query.parts if p.text is not None]
        images = [p for p in query.parts if p.image is not None]
        indexed = [p for p in query.parts if p.indexed is not None]
        stored = self._stored([p.indexed for p in indexed])
        words = list(zip(self.encoder.encode_texts([p.text for p in texts]),
                         [p.weight for p in texts])) if texts else []
        pictures = list(zip(self.encoder.encode_images([p.image for p in images]),
                            [p.weight for p in images])) if images else []
        vector = lambda p, name: np.asarray(stored[p.indexed][name], np.float32)  # noqa: E731
        picture = words + pictures + [(vector(p, IMAGE_VECTOR), p.weight) for p in indexed]
        text = words + [(vector(p, TEXT_VECTOR), p.weight) for p in indexed] \
            if self.index.has_text_vectors else []
        return picture, text

    def vector(self, query: Query) -> np.ndarray:
        """The query's picture-signal vector."""
        return compose(self._signals(query)[0])

    def expression(self, query: Query) -> str:
        """The Milvus filter of a query: its picture filters, its `where`, its exclusions."""
        from mmsearch.where import translate

        terms = [query.filters.expression()]
        if query.where and query.where.strip():
            terms.append(translate(query.where))
        if query.exclude:
            # `not in`, not `not (...)`: Milvus Lite 2.5.1 cannot run a `not` node
            terms.append(f"id not in [{', '.join(str(item_id(k)) for k in query.exclude)}]")
        terms = [t for t in terms if t]
        return terms[0] if len(terms) == 1 else " and ".join(f"({t})" for t in terms)

    def search(self, query: Query, k: int = 20) -> list[Hit]:
        """The top k hits, or with `query.all` every match among the top cutoff.CAP."""
        if query.mode not in MODES:
            raise QueryError(f"mode must be one of {', '.join(MODES)}")
        if query.sort not in SORTS:
            raise QueryError(f"sort is score or date, not {brief(str(query.sort))}")
        expr, plain = self.expression(query), query.looking_for()
        if plain.empty:
            raise self._empty()
        # a video's scenes found together are one result (mmsearch.moments)
        hits = moments.search_grouped(lambda n: self._hybrid(plain, n, expr),
                                      max(k, cutoff.CAP) if query.all or query.without else k)
        gone = cutoff.excluded(self.index, hits, self._contexts(plain, query.without), expr) \
            if query.without else set()
        if query.all:
            hits = hits[:cutoff.count([h.score for h in hits])]
        hits = [h for h in hits if h.key not in gone][:None if query.all else k]
        if query.min_score is not None:
            hits = [h for h in hits if h.score >= query.min_score]
        if query.sort == "date":  # stable: equal dates keep the score order
            hits = sorted(hits, key=lambda h: -h.taken)
        return hits

    def _contexts(self, plain: Query, without: list[Part]) -> list[np.ndarray]:
        """One vector per `without` part X: the query with X added at full weight ("a dress"
        + red), the thing to remove (mmsearch.cutoff.excluded)."""
        return [self.vector(replace(plain, parts=[*plain.parts, replace(p, weight=1.0)]))
                for p in without]

    def _hybrid(self, query: Query, k: int, expr: str) -> list[Hit]:
        picture_parts, text_parts = self._signals(query)
        words = " ".join(p.text.strip() for p in query.parts
                         if p.text is not None and p.weight > 0) \
            if self.index.has_text_search else ""
        has_image = any(p.image is not None for p in query.parts)
        picture = compose(picture_parts).tolist() \
            if any(w > 0 for _, w in picture_parts) else None
        text = compose(text_parts).tolist() if any(w > 0 for _, w in text_parts) else None
        plan = fusion.Plan.fixed(query.weights, words) if query.weights is not None else \
            fusion.plan(self.index, words, picture, expr, query.mode,
                        has_image or bool(query.exclude), encode=self.encoder.encode_texts)
        rrf = not any(plan.weights)  # all weights zero: reciprocal-rank fusion of what there is
        requests, request_weights = [], []
        for anns_field, data, w in [(IMAGE_VECTOR, picture, plan.picture),
                                    (TEXT_VECTOR, text, plan.text),
                                    *((SPARSE, t, w) for t, w in plan.lexical),
                                    *((SPARSE, t, w) for t, w in plan.exact)]:
            if anns_field in fusion.ALLOWED[query.mode] and data is not None and (w > 0 or rrf) \
                    and not (anns_field == SPARSE and has_image):
                requests.append((anns_field, data))
                request_weights.append(w)
        if not requests:
            raise QueryError(f"nothing to search in {query.mode} mode for this query")
        if len(requests) == 1:
            field, data = requests[0]
            hits = [replace(h, matched=(field,))
                    for h in self.index.search_many([data], k, expr, field)[0]]
        else:
            hits = fusion.fuse(self.index, requests, k, expr,
                               None if rrf else tuple(request_weights), plan.found)
        return [self._explained(h, words) for h in hits]

    def _explained(self, hit: Hit, words: str) -> Hit:
        """The hit with `matched` in the documented names (MATCHED) and, when words matched,
        a snippet of the text they matched in."""
        names: list[str] = []
        snippet = ""
        for signal in hit.matched:
            if signal == IMAGE_VECTOR:
                names.append("picture")
            elif signal == TEXT_VECTOR:
                names.append("title")
            else:
                found = lexical_matches(hit, words, self.catalog)
                names += [name for name, _ in found]
                snippet = snippet or next((text for _, text in found), "")
        return replace(hit, matched=tuple(dict.fromkeys(names)), snippet=snippet[:SNIPPET])

    def search_text(self, text: str, k: int = 20, **kwargs) -> list[Hit]:
        return self.search(Query.of(texts=[text or ""], **kwargs), k)

    def search_image(self, image, k: int = 20, **kwargs) -> list[Hit]:
        return self.search(Query.of(images=[load_query_image(image)], **kwargs), k)

    def search_similar(self, key: str, k: int = 20, **kwargs) -> list[Hit]:
        """Items like an indexed one, from its stored vectors (no re-decoding)."""
        return self.search(Query([Part(indexed=key or "")], **kwargs), k)

    def close(self) -> None:
        self.index.close()
