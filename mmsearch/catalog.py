"""Product catalogues: items with a picture, a title and fields, searched by picture, text and
BM25 together.

Each item is one row with three searchable signals: the CLIP vector of its picture, the CLIP
text vector of its title and description, and a BM25 sparse vector of its text (title,
description and every text field, such as the brand), which Milvus computes itself from the
`text` column. A text query searches all three and mmsearch fuses the three ranked lists
(`CatalogIndex.hybrid`); a picture query searches the picture vectors; "more / less
like this" starts from the stored vectors of the liked and disliked items. Filters (`--where`)
run inside every one of those searches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from mmsearch.engine import VECTOR_INDEX_PARAMS, OutdatedIndexError, vector_search_params
from mmsearch.filters import brief, quote
from mmsearch.index import MAX_PATH, PAGE, WRITE_RETRIES, Index
from mmsearch.search import QueryError, compose, feedback_parts
from mmsearch.where import translate

ITEMS = "items"
MAX_ID = 512
MAX_TITLE = 2048
MAX_TEXT = 16384
MODES = ("hybrid", "picture", "text")
# Fusion, measured on bench/catalog.py (README, "Catalogues"). `CatalogIndex.hybrid` adds
# the normalised scores of the picture-vector and BM25 lists with query-dependent weights:
# when BM25's top matches are also among the pictures that look like the query ("gaun merah")
# the words describe the picture and the picture signal leads; when they are not (a brand,
# a product line: things no picture shows) BM25 leads. BM25 weight = LEXICAL_MAX * (1 -
# agreement) ** SHARPNESS, agreement = share of BM25's top 20 in the pictures' top 50. Title
# vectors lowered P@10 for text queries at every weight tried, so text queries leave them out;
# "text" mode and recommendations use them.
LEXICAL_MAX = 0.9
SHARPNESS = 7
PROBE_LEXICAL, PROBE_PICTURE = 20, 50
CANDIDATES = 1000  # per signal before fusion: exact fusion up to this many items


def item_text(title: str, description: str, fields: dict) -> str:
    """What BM25 indexes: title, description and the text fields (brand, category, …), so a
    brand that no picture shows is still found."""
    words = [title, description, *(v for v in fields.values() if isinstance(v, str))]
    return " ".join(w for w in words if w)[:MAX_TEXT]


def text_hash(title: str, description: str, fields: dict) -> str:
    payload = json.dumps([title, description, fields], sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


@dataclass
class ItemRow:
    id: str
    path: str
    title: str
    description: str
    fields: dict
    hash: str        # the picture's content hash
    size: int        # the picture file's size and mtime: a re-import skips unchanged ones
    mtime: float
    source: str = ""  # the catalogue file it came from: a re-import removes only its own
    image_vector: np.ndarray | None = field(default=None, repr=False)
    text_vector: np.ndarray | None = field(default=None, repr=False)

    def record(self) -> dict:
        return {"id": self.id, "path": self.path, "title": self.title[:MAX_TITLE],
                "description": self.description[:MAX_TEXT], "fields": self.fields,
                "text": item_text(self.title, self.description, self.fields),
                "text_hash": text_hash(self.title, self.description, self.fields),
                "hash": self.hash, "size": self.size, "mtime": self.mtime,
                "source": self.source[:MAX_PATH],
                "image_vector": np.asarray(self.image_vector, np.float32).tolist(),
                "text_vector": np.asarray(self.text_vector, np.float32).tolist()}


@dataclass(frozen=True)
class Product:
    id: str
    title: str
    path: str
    score: float
    fields: dict
    hash: str = ""

    def to_json(self) -> dict:
        return {"id": self.id, "title": self.title, "path": self.path,
                "score": round(float(self.score), 6), "fields": self.fields}


OUTPUT = ["id", "title", "path", "fields", "hash"]


class CatalogIndex(Index):
    """A product catalogue in Milvus: one row per item (see the module docstring)."""

    KIND = "catalog"
    COLLECTION = ITEMS

    def _create_data(self, vector_index: str) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                       description="mmsearch catalogue items")
        s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID)
        s.add_field("path", DataType.VARCHAR, max_length=MAX_PATH)
        s.add_field("title", DataType.VARCHAR, max_length=MAX_TITLE)
        s.add_field("description", DataType.VARCHAR, max_length=MAX_TEXT)
        s.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True)
        s.add_field("fields", DataType.JSON)
        s.add_field("hash", DataType.VARCHAR, max_length=64)
        s.add_field("text_hash", DataType.VARCHAR, max_length=64)
        s.add_field("size", DataType.INT64)
        s.add_field("mtime", DataType.DOUBLE)
        s.add_field("source", DataType.VARCHAR, max_length=MAX_PATH)
        s.add_field("image_vector", DataType.FLOAT_VECTOR, dim=self.dim)
        s.add_field("text_vector", DataType.FLOAT_VECTOR, dim=self.dim)
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                input_field_names=["text"], output_field_names=["sparse"]))
        params = self.client.prepare_index_params()
        for name in ("image_vector", "text_vector"):
            params.add_index(name, index_type=vector_index, metric_type="COSINE",
                             params=VECTOR_INDEX_PARAMS.get(vector_index, {}))
        params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self._create_collection(self.COLLECTION, s, params)

    # -- rows ----------------------------------------------------------------------------
    def upsert_items(self, rows: list[ItemRow]) -> None:
        self._write(self.COLLECTION, [r.record() for r in rows])

    def delete_ids(self, ids: list[str]) -> None:
        with self._writing():
            for i in range(0, len(ids), PAGE):
                self.client.delete(self.COLLECTION, ids=ids[i:i + PAGE], retry_times=WRITE_RETRIES)

    def get_items(self, ids: list[str], fields=("image_vector", "text_vector")) -> dict[str, dict]:
        ids = list(ids)
        found: dict[str, dict] = {}
        for i in range(0, len(ids), PAGE):
            rows = self.client.get(self.COLLECTION, ids=ids[i:i + PAGE],
                                   output_fields=["id", *fields])
            found.update((r["id"], r) for r in rows)
        return found

    def rows_from(self, source: str, fields) -> dict[str, dict]:
        """The given fields of the items that came from the catalogue file `source`."""
        return {r["id"]: r for r in self.iter_rows(["id", *fields],
                                                   f"source == {quote(source)}")}

    def _check_schema(self) -> None:
        """Catalogues made before items recorded their file cannot be re-imported safely (a
        re-import would not know which items are its own): say so once, clearly."""
        names = {f["name"] for f in self.client.describe_collection(self.COLLECTION)["fields"]}
        if "source" not in names:
            raise OutdatedIndexError(
                f"the catalogue at {self.location} was made by an older mmsearch that did not "
                "record which file each item came from; import the catalogue file again into "
                "a new --db (or delete this one)")

    def stats(self) -> dict:
        return super().stats() | {"items": self.count(), "catalogs": self._get_meta("catalogs", [])}

    def add_catalog(self, path: str) -> None:
        catalogs = self._get_meta("catalogs", [])
        if path not in catalogs:
            self._put_meta("catalogs", [*catalogs, path])

    # -- search --------------------------------------------------------------------------
    def _search_params(self, anns_field: str, k: int) -> dict:
        if anns_field == "sparse":
            return {"metric_type": "BM25"}
        return vector_search_params(self.vector_index_type(anns_field), k)

    def search_field(self, anns_field: str, data, k: int, expr: str = "") -> list[Product]:
        with self.searching():
            res = self.client.search(self.COLLECTION, data=[data], anns_field=anns_field, limit=k,
                                     filter=expr, output_fields=OUTPUT,
                                     search_params=self._search_params(anns_field, k))
        return _products(res[0])

    def hybrid(self, requests: list[tuple[str, object]], k: int, expr: str = "",
               weights: tuple[float, ...] | None = None) -> list[Product]:
        """Search several fields and fuse the ranked lists here, the same way on every engine.

        Weighted: a vector list's cosines min-max normalised to [0, 1] for this query, BM25's
        scores as they are (0 = no match; a match adds weight x score), then the weighted sum
        (an item missing from a list gets nothing from it); all-zero weights: reciprocal-rank
        fusion, the sum of 1 / (60 + rank). Not the engine's `hybrid_search`: Milvus Lite
        2.5.1's let the BM25 list count for nothing on the demo catalogue (title-only words:
        4 of 10 right, as pictures alone), and the engines normalise differently (3.x min-max,
        Milvus 2.5 arctan), so one index would rank differently on each."""
        limit = max(k, CANDIDATES)
        fused: dict[str, float] = {}
        with self.searching():
            for n, (anns_field, data) in enumerate(requests):
                res = self.client.search(self.COLLECTION, data=[data], anns_field=anns_field,
                                         limit=limit, filter=expr, output_fields=["id"],
                                         search_params=self._search_params(anns_field, limit))
                hits = [(str(h["id"]), float(h["distance"])) for h in res[0]]
                if len(hits) > 1 and hits[0][1] < hits[-1][1]:  # best first, whatever the sign
                    hits = [(i, -d) for i, d in hits]
                if weights is None:
                    for rank, (item, _) in enumerate(hits, 1):
                        fused[item] = fused.get(item, 0.0) + 1.0 / (60 + rank)
                    continue
                lo, hi = (min(d for _, d in hits), max(d for _, d in hits)) if hits else (0, 0)
                if anns_field == "sparse":  # 3.x reports BM25 negated: its size is the score
                    hits, lo, hi = [(i, abs(d)) for i, d in hits], 0.0, 1.0
                for item, d in hits:
                    norm = (d - lo) / (hi - lo) if hi > lo else 1.0
                    fused[item] = fused.get(item, 0.0) + weights[n] * norm
        top = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        stored = self.get_items([item for item, _ in top], fields=OUTPUT[1:])
        return [Product(item, r.get("title", ""), r.get("path", ""), score, r.get("fields") or {},
                        r.get("hash", "")) for item, score in top for r in [stored.get(item)] if r]


def _products(hits) -> list[Product]:
    return [Product(str(h["id"]), e.get("title", ""), e.get("path", ""), float(h["distance"]),
                    e.get("fields") or {}, e.get("hash", "")) for h in hits for e in [h["entity"]]]


class CatalogSearcher:
    """Text, picture and like/dislike queries over a catalogue, with `--where` filters."""

    def __init__(self, index: CatalogIndex, encoder):
        self.index = index
        self.encoder = encoder

    def warm(self) -> CatalogSearcher:
        self.encoder.warm()
        self.search(text="warm up", k=1)
        return self

    def search(self, text: str = "", image=None, like=(), dislike=(), where: str = "",
               k: int = 20, mode: str = "hybrid", min_score: float | None = None,
               weights: tuple[float, float, float] | None = None) -> list[Product]:
        """`image`: an upright RGB picture. like/dislike: item ids (their stored vectors
        join the query after Rocchio: +0.75 and -0.25 in all). mode: hybrid, picture or text
        (the last two are the single signals, for comparison). `weights` (picture vectors,
        title vectors, BM25) overrides the adaptive fusion; all zero = RRF."""
        if mode not in MODES:
            raise QueryError(f"mode must be one of {', '.join(MODES)}")
        text = (text or "").strip()
        if not text and image is None and not like:
            raise QueryError("empty query: type some words, give an example picture or --like "
                             "an item")
        expr = translate(where) if where and where.strip() else ""
        seen = [*like, *dislike]
        if seen:
            # `not in`, not `not (...)`: Milvus Lite 2.5.1 cannot run a `not` node
            exclude = f"id not in [{', '.join(quote(i) for i in seen)}]"
            expr = f"({expr}) and {exclude}" if expr else exclude
        picture_parts, title_parts = self._feedback(list(like), list(dislike))
        if text:
            q = self.encoder.encode_texts([text])[0]
            picture_parts.append((q, 1.0))
            title_parts.append((q, 1.0))
        if image is not None:
            picture_parts.append((self.encoder.encode_images([image])[0], 1.0))
        picture = compose(picture_parts).tolist() \
            if any(w > 0 for _, w in picture_parts) else None
        title = compose(title_parts).tolist() if any(w > 0 for _, w in title_parts) else None
        if weights is None:
            weights = self._fusion_weights(text, picture, expr, mode, image is not None or seen)
        allowed = {"hybrid": ("image_vector", "text_vector", "sparse"),
                   "picture": ("image_vector",), "text": ("text_vector", "sparse")}[mode]
        rrf = not any(weights)  # all weights zero: reciprocal-rank fusion of what there is
        requests, request_weights = [], []
        for anns_field, data, w in zip(("image_vector", "text_vector", "sparse"),
                                       (picture, title, text or None), weights):
            if anns_field in allowed and data is not None and (w > 0 or rrf) \
                    and not (anns_field == "sparse" and image is not None):
                requests.append((anns_field, data))
                request_weights.append(w)
        if not requests:
            raise QueryError(f"nothing to search in {mode} mode for this query")
        if len(requests) == 1:
            hits = self.index.search_field(requests[0][0], requests[0][1], k, expr)
        else:
            hits = self.index.hybrid(requests, k, expr, None if rrf else tuple(request_weights))
        if min_score is not None:
            hits = [h for h in hits if h.score >= min_score]
        return hits

    def _fusion_weights(self, text: str, picture, expr: str, mode: str,
                        not_only_words: bool) -> tuple[float, float, float]:
        """(picture vectors, title vectors, BM25) weights for this query (see LEXICAL_MAX)."""
        if mode == "text":
            return (0.0, 0.5, 0.5)
        if mode == "picture" or picture is None:
            return (1.0, 0.0, 0.0)
        if not_only_words:  # an example picture or liked items lead; words refine
            return (0.6, 0.2, 0.2) if text else (0.8, 0.2, 0.0)
        lexical = [p.id for p in self.index.search_field("sparse", text, PROBE_LEXICAL, expr)]
        if not lexical:
            return (1.0, 0.0, 0.0)  # no word of the query is in any item's text
        looks = {p.id for p in self.index.search_field("image_vector", picture, PROBE_PICTURE,
                                                         expr)}
        agreement = len(set(lexical) & looks) / len(lexical)
        bm25 = LEXICAL_MAX * (1.0 - agreement) ** SHARPNESS
        return (1.0 - bm25, 0.0, bm25)

    def _feedback(self, like: list[str], dislike: list[str]):
        """(picture parts, title parts) of the liked and disliked items' stored vectors, with
        the weights `feedback_parts` gives them (the folder app's Rocchio)."""
        parts = feedback_parts(like, dislike)
        stored = self.index.get_items([p.indexed for p in parts])
        missing = [p.indexed for p in parts if p.indexed not in stored]
        if missing:
            raise QueryError(f"no item with id {brief(missing[0])} in the catalogue")
        vector = lambda p, name: np.asarray(stored[p.indexed][name], np.float32)  # noqa: E731
        return ([(vector(p, "image_vector"), p.weight) for p in parts],
                [(vector(p, "text_vector"), p.weight) for p in parts])

    def close(self) -> None:
        self.index.close()
