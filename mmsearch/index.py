"""The Index: items (mmsearch.items) in one Milvus collection, embedded or on a server.

The same pymilvus code serves an embedded Milvus Lite index (`--db PATH`) and a Milvus server
(`--uri http://host:19530`): only the URI differs. Every kind of index stores the same item
rows (`mmsearch.items`: the schema), so every method serves every kind. The model that made
the vectors is recorded: a different one is refused.
"""

from __future__ import annotations

import json
import time
from typing import Iterable, Iterator

import numpy as np

from mmsearch import coarse, lite, moments
from mmsearch.coarse import CODE_FIELD
from mmsearch.config import IndexLocation, ModelSpec
from mmsearch.engine import (VECTOR_INDEX_PARAMS, IndexProblem, _disk_bytes, searching,
                             vector_index_for, vector_search_params, writing)
from mmsearch.filters import quote, under_folder
from mmsearch.hits import OUTPUT, Hit  # noqa: F401 - Hit is imported from here too
from mmsearch.items import (IMAGE_VECTOR, ITEMS, SCHEMA_VERSION, SPARSE, TEXT_VECTOR, Item,
                            add_codes, create_items, create_meta, item_id, stored_columns,
                            unit_rows)
from mmsearch.words import WORDS
from mmsearch import words as photo_words

META = "mmsearch_meta"
# Rows per insert/query page: Milvus Lite 2.5.1 inserts 5k-12k rows/s in batches of 500-1,000
# rows and 277 rows/s in batches of 5,000 (NOTES.md): every write is cut to at most PAGE rows.
PAGE = 1000
# A write the engine fails (Milvus Lite 2.5.1 on a full disk answers UNKNOWN) is retried this
# many times, not pymilvus's 75 (~3 minutes of back-off before the one line).
WRITE_RETRIES = 3
class Index:
    """Items in a Milvus collection. Open with `mmsearch.stores.open_index(...)`; close when
    done. `kind` ("folder" or "catalog", recorded) says what the items are, not their shape."""

    COLLECTION = ITEMS

    def __init__(self, client, location: IndexLocation, model: ModelSpec, dim: int,
                 kind: str = "folder"):
        self.client = client
        self.location = location
        self.model = model
        self.dim = dim
        self.kind = kind

    # -- opening -------------------------------------------------------------------------
    @staticmethod
    def _read_meta(client) -> dict | None:
        from pymilvus.exceptions import MilvusException

        try:
            if not client.has_collection(META):
                return None
        except MilvusException as exc:  # a server database not created yet: no index there
            if "database" in str(exc) and "not exist" in str(exc):
                return None
            raise
        client.load_collection(META)
        rows = client.query(META, filter='key == "index"', output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else None

    def _create(self, vector_index: str | None = None) -> None:
        """Create what is missing: the meta collection first (it names the model), then the
        item collection, so a run killed in between leaves an index the next run finishes."""
        if not self.client.has_collection(META):
            create_meta(self.client, META, self._create_collection)
            self._put_meta("index", {"schema": SCHEMA_VERSION, "model": self.model.to_record(),
                                     "dim": self.dim, "kind": self.kind,
                                     "created": time.time()})
        if not self.client.has_collection(self.COLLECTION):
            kind = vector_index or vector_index_for(self.location, self.client)
            create_items(self.client, self.dim, kind, VECTOR_INDEX_PARAMS.get(kind, {}),
                         products=self.kind == "catalog", create=self._create_collection)
        if self.kind == "folder" and not self.client.has_collection(WORDS):
            photo_words.create_words(self.client, self._create_collection)
            self.client.load_collection(self.COLLECTION)  # an index made before photos' words
            # were searched: its photos' texts are found at once, before any re-index
            self._write(photo_words.rows_of(
                r["text"] for r in self.iter_rows(["text"], 'text != ""')), WORDS,
                replace=False)
            self.__dict__.pop("_has_words", None)

    def _create_collection(self, name: str, schema, params) -> None:
        """Create a collection; when several indexers (shards) start at once on one server,
        the first one creates it and the others use it."""
        from pymilvus.exceptions import MilvusException

        try:
            self.client.create_collection(name, schema=schema, index_params=params)
        except MilvusException:
            if not self.client.has_collection(name):
                raise

    def _writing(self):
        return writing(self.location)

    def searching(self):
        return searching()

    def _put_meta(self, key: str, value) -> None:
        with self._writing():
            self.client.upsert(META, [{"key": key, "value": json.dumps(value),
                                       "dummy": [0.0, 0.0]}], retry_times=WRITE_RETRIES)

    def _get_meta(self, key: str, default=None):
        rows = self.client.query(META, filter=f"key == {quote(key)}", output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else default

    def _load(self, flush: bool = True) -> None:
        # A reopened collection is "released": load it now, not on the first search.
        for name in (self.COLLECTION, META, *([WORDS] if self.has_words else [])):
            self.client.load_collection(name)
        try:  # rows a killed run left in the write-ahead log: make them fast
            if flush:
                self.flush()
        except IndexProblem:
            pass  # a full disk must not stop searching; the rows are found without it

    def flush(self) -> None:
        """Seal recent writes into indexed segments. Milvus Lite 3.x searches unsealed rows by
        brute force in Python (0.5 s at 10k rows); sealed ones through the vector index. The
        indexer calls this once at the end of a run."""
        with self._writing():
            self.client.flush(self.COLLECTION)

    def close(self) -> None:
        if self.client is None:
            return
        self.client.close()
        self.client = None
        if self.location.is_embedded:
            lite._embedded_opened(self.location.db, -1)

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- where the items came from: folders (the app serves files only from these) and
    # -- catalogue files ----------------------------------------------------------------
    @property
    def roots(self) -> list[str]:
        return list(self._get_meta("roots", []))

    def add_roots(self, folders: Iterable[str]) -> None:
        roots = self.roots
        for folder in folders:
            if folder not in roots:
                roots.append(folder)
        self._put_meta("roots", roots)

    @property
    def catalogs(self) -> list[str]:
        return list(self._get_meta("catalogs", []))

    def add_catalog(self, path: str) -> None:
        if path not in (catalogs := self.catalogs):
            self._put_meta("catalogs", [*catalogs, path])

    def mark_indexed(self) -> None:
        self._put_meta("last_indexed", time.time())

    @property
    def last_indexed(self) -> float | None:
        return self._get_meta("last_indexed")

    # -- what the collection holds -------------------------------------------------------
    def columns(self) -> set[str]:
        """The collection's column names (read once): which optional groups it has."""
        if "_field_names" not in self.__dict__:
            self._field_names = stored_columns(self.client.describe_collection(self.COLLECTION))
        return self._field_names

    @property
    def has_codes(self) -> bool:
        """Whether items carry bit codes (FLAT collections do; a server's HNSW does not need
        them)."""
        return CODE_FIELD in self.columns()

    @property
    def output(self) -> list[str]:
        """What a search returns of each hit, of the columns this collection has."""
        return [f for f in OUTPUT if f in self.columns()]

    @property
    def has_words(self) -> bool:
        """Whether photos' texts are BM25-searched in a words collection (mmsearch.words)."""
        if "_has_words" not in self.__dict__:
            self._has_words = self.kind == "folder" and self.client.has_collection(WORDS)
        return self._has_words

    @property
    def has_text_search(self) -> bool:
        """Whether BM25 searches the items' text: a catalogue's own column (items.create_items)
        or a folder's words collection."""
        return SPARSE in self.columns() or self.has_words

    @property
    def has_text_vectors(self) -> bool:
        """Whether items keep a CLIP vector of their text (catalogues)."""
        return TEXT_VECTOR in self.columns()

    # -- rows ----------------------------------------------------------------------------
    def upsert(self, items: list[Item]) -> None:
        """Write items, replacing those with the same key."""
        if not items:
            return
        vectors = unit_rows(np.stack([np.asarray(it.image_vector, np.float32) for it in items]))
        if vectors.shape[1] != self.dim:  # Milvus Lite 2.5.1 stores a longer one cut short
            raise IndexProblem(f"a vector of {vectors.shape[1]} numbers, not {self.dim}")
        columns = self.columns()
        records = [it.record(v, columns) for it, v in zip(items, vectors)]
        if self.has_codes:
            add_codes(records, vectors, columns)
        replaced = self._write(records)
        if self.has_words:
            self._write(photo_words.rows_of(r["text"] for r in records), WORDS, replace=False)
            self._forget_texts(replaced - {r["text"] for r in records})
        self.__dict__.pop("_rows_seen", None)

    def rows_now(self) -> int:
        """The row count, asked again at most once a minute (and after each write here)."""
        seen = self.__dict__.get("_rows_seen")
        if seen is None or time.monotonic() - seen[1] > 60:
            seen = self.__dict__["_rows_seen"] = (self.count(), time.monotonic())
        return seen[0]

    def _write(self, records: list[dict], collection: str = ITEMS, replace=True) -> set[str]:
        """Insert or replace rows by their `id`, <= PAGE a call (any --batch-size); returns
        the texts of the photos' rows it replaced (for the words collection). `replace`
        False keeps stored rows: a words row's id hashes its text (re-upserting a folder's
        texts was 66 of 123 ms per 32-photo upsert at 100k, bench/words.py).

        Rows the collection lacks are inserted, the others upserted: Milvus Lite 2.5.1's upsert
        slows as the collection grows (5.5k rows/s at 50k, 2.1k at 200k, a 1M import unfinished
        after 21 min), its insert does not (6k rows/s at 200k); asking for 1,000 ids: 6-20 ms."""
        by_id = {r["id"]: r for r in records}  # the same row twice in one call: the last wins
        records = list(by_id.values())
        texts = collection == ITEMS and self.has_words
        replaced: set[str] = set()
        with self._writing():
            for i in range(0, len(records), PAGE):
                page = records[i:i + PAGE]
                stored = self.client.get(  # Strong: a batch redone after a crash sees the
                    collection, ids=[r["id"] for r in page], consistency_level="Strong",
                    output_fields=["id", "text"] if texts else ["id"])  # first try's rows
                have = {r["id"] for r in stored}
                replaced.update(r["text"] for r in stored if texts)
                new = [r for r in page if r["id"] not in have]
                old = [r for r in page if r["id"] in have]
                if new:
                    self.client.insert(collection, new, retry_times=WRITE_RETRIES)
                if old and replace:
                    self.client.upsert(collection, old, retry_times=WRITE_RETRIES)
        return replaced

    def _forget_texts(self, texts: set[str]) -> None:
        """Drop from the words collection those of `texts` no photo holds any more."""
        with self._writing():
            photo_words.forget(self.client, self.COLLECTION, texts, WRITE_RETRIES)

    def delete(self, keys: Iterable[str]) -> None:
        """Remove the items with these keys (photos: their paths)."""
        keys = list(dict.fromkeys(keys))
        ids = [item_id(k) for k in keys]
        texts: set[str] = set()
        with self._writing():
            for i in range(0, len(ids), PAGE):
                if self.has_words:
                    texts.update(r["text"] for r in self.get(keys[i:i + PAGE], ["text"]).values())
                self.client.delete(self.COLLECTION, ids=ids[i:i + PAGE], retry_times=WRITE_RETRIES)
        self._forget_texts(texts)
        if ids:
            self.__dict__.pop("_rows_seen", None)

    def rows_under(self, folder: str) -> Iterator[dict]:
        """path, size, mtime, hash and fields of every indexed picture under `folder`."""
        return self.iter_rows(("path", "size", "mtime", "hash", "fields"), under_folder(folder))

    def rows_from(self, source: str, fields: Iterable[str]) -> dict[str, dict]:
        """The given fields of the items that came from the catalogue file `source`, by key."""
        return {r["key"]: r for r in self.iter_rows(["key", *fields],
                                                    f"source == {quote(source)}")}

    def iter_rows(self, fields: Iterable[str], filter: str = "") -> Iterator[dict]:
        """The given fields of every row matching `filter`, a page at a time."""
        it = self.client.query_iterator(self.COLLECTION, batch_size=PAGE, filter=filter,
                                        output_fields=list(fields))
        try:
            while batch := it.next():
                yield from batch
        finally:
            it.close()

    def get(self, keys: Iterable[str], fields: Iterable[str] = ("size", "mtime", "hash")
            ) -> dict[str, dict]:
        """Stored fields of the items with these keys (those indexed), by key."""
        ids = [item_id(k) for k in dict.fromkeys(keys)]
        out = list(dict.fromkeys(["key", "path", *fields]))
        by_codes = self.has_codes and CODE_FIELD not in out  # a `get` scans (coarse.fetch)
        found: dict[str, dict] = {}
        for i in range(0, len(ids), PAGE):
            rows = coarse.fetch(self.client, self.COLLECTION, ids[i:i + PAGE], out) if by_codes \
                else self.client.get(self.COLLECTION, ids=ids[i:i + PAGE], output_fields=out)
            found.update((r["key"], r) for r in rows)
        return found

    def count(self, filter: str = "") -> int:
        res = self.client.query(self.COLLECTION, filter=filter, output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    # -- search --------------------------------------------------------------------------
    def search(self, vector: np.ndarray, k: int = 20, filter: str = "") -> list[Hit]:
        return self.search_many([vector], k, filter)[0]

    def search_many(self, vectors, k: int = 20, filter: str = "",
                    anns_field: str = IMAGE_VECTOR) -> list[list[Hit]]:
        """The top-k items matching `filter` for each query (vectors, or words for the BM25
        field `sparse`), best first, in one request."""
        k = max(1, min(int(k), 16384))
        if anns_field == SPARSE and self.has_words:  # a folder's words: ranked photos' rows
            return [[Hit.of(rows[key], score) for key, score in ranked if key in rows]
                    for ranked in (self.ranked_keys(SPARSE, w, k, filter) for w in vectors)
                    for rows in [self.get([key for key, _ in ranked], self.output)]]
        if anns_field == IMAGE_VECTOR and self.has_codes and \
                self.vector_index_type(anns_field) == "FLAT" and \
                coarse.worth_it(rows := self.rows_now(), k, len(vectors)):
            with self.searching():
                found = coarse.search(self.client, self.COLLECTION, vectors, k, filter,
                                      self.output, anns_field, self.search_params(anns_field, k),
                                      rows)
            return [[Hit.of(h["entity"], h["distance"]) for h in hits] for hits in found]
        data = list(vectors) if anns_field == SPARSE else \
            [np.asarray(v, np.float32).tolist() for v in vectors]
        with self.searching():
            res = self.client.search(self.COLLECTION, data=data, anns_field=anns_field,
                                     limit=k, filter=filter, output_fields=self.output,
                                     search_params=self.search_params(anns_field, k))
        return [[Hit.of(h["entity"], h["distance"]) for h in hits] for hits in res]

    def search_params(self, anns_field: str, k: int) -> dict:
        """What a search of this field asks: BM25, or the vector index's kind and metric."""
        if anns_field == SPARSE:
            return {"metric_type": "BM25"}
        index_type, metric = self._vector_index(anns_field)
        return vector_search_params(index_type, k, metric)

    def ranked_keys(self, anns_field: str, data, limit: int, filter: str = "", near=None
                    ) -> list[tuple[str, float]]:
        """(key, score) of the top `limit` items for one query on one field, best first
        whatever the metric's sign (Milvus Lite 3.x reports BM25 negated): what a fusion of
        several fields starts from (mmsearch.fusion). A folder's BM25 (its words collection)
        orders the photos of one text by their cosine to the picture vector `near`."""
        if anns_field == SPARSE and self.has_words:
            with self.searching():
                return photo_words.ranked_photos(
                    self.client, self.COLLECTION, data, limit, filter, near,
                    self.search_params(IMAGE_VECTOR, limit))
        with self.searching():
            res = self.client.search(self.COLLECTION, data=[data], anns_field=anns_field,
                                     limit=limit, filter=filter, output_fields=["key"],
                                     search_params=self.search_params(anns_field, limit))
        hits = [(h["entity"]["key"], float(h["distance"])) for h in res[0]]
        if anns_field == SPARSE:
            return [(key, abs(d)) for key, d in hits]
        if len(hits) > 1 and hits[0][1] < hits[-1][1]:
            hits = [(key, -d) for key, d in hits]
        return hits

    def vector_index_type(self, field: str) -> str | None:
        """The index type on a vector field (AUTOINDEX, HNSW, IVF_FLAT, FLAT)."""
        return self._vector_index(field)[0]

    def _vector_index(self, field: str) -> tuple[str | None, str]:
        """(index type, metric) of a vector field's index, read once."""
        cache = self.__dict__.setdefault("_index_types", {})
        if field not in cache:
            try:
                got = self.client.describe_index(self.COLLECTION, field)
                cache[field] = (got.get("index_type"), got.get("metric_type") or "COSINE")
            except Exception:  # noqa: BLE001 - an engine without describe_index: ef suits both
                cache[field] = (None, "COSINE")
        return cache[field]

    def stats(self) -> dict:
        count = self.count()
        stats = {"images": count, "kind": self.kind, "model": self.model.label,
                 "location": str(self.location), "dim": self.dim, "roots": self.roots,
                 "last_indexed": self.last_indexed, "disk_bytes": _disk_bytes(self.location)}
        if self.kind == "catalog":
            stats |= {"items": count, "catalogs": self.catalogs}
        else:  # a video's scenes are items too: pictures, videos and scenes apart
            stats |= moments.media_counts(self.count, count)
        return stats
