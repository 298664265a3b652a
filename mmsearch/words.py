"""A folder index's words: BM25 over the texts of its photos, in a collection of their own.

A photo's text is what it says about itself (mmsearch.photo_text: the words of its name and
folders, its camera, its place, the words read in the picture), joined into `Item.text`. The
words collection holds each *distinct* text once (`id` = a hash of the text) and BM25 ranks
those; the photos of a text are then found in the item collection by the text itself
(`text in [...]`), with the query's filters, and ordered by how they look when the query has
a picture vector, so among a folder's 10,000 "bali" photos the beach ones come first.

Why this shape, measured with Milvus Lite 2.5.1 at 100k photos on 2 cores:
  * loading a BM25 collection of one row per photo took 4.5 s (the 512-d picture vectors
    1.3 s), and the engine answers nothing else while it loads (a picture search waited
    4.5 s), so it can be loaded neither at every launch (45 s at 1M) nor in the background;
    photos share texts (a folder's pictures, a camera's; `IMG_1234` has no words), so distinct
    texts are far fewer rows.
  * the link back: `text in [50 texts]` on the items cost 15-25 ms against 10-17 ms for an
    integer column and 17-25 ms for a JSON key in the same run, so no new column is needed.
A text no photo holds any more is dropped when the last photo holding it changes or goes
(`Index.upsert`, `Index.delete`), so BM25's statistics stay those of the photos.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable

from mmsearch.filters import quote
from mmsearch.items import IMAGE_VECTOR, MAX_TEXT, SPARSE, item_id

WORDS = "mmsearch_words"
# Texts BM25 hands on per query, and at most this many characters of them in one `text in`
# filter (long texts read from screenshots would make the expression itself the cost).
TEXTS = 64
MAX_JOIN_CHARS = 60_000
# One request takes `limit` photos of its texts in no order of score, so the best-scoring
# texts are asked for first, a score level at a time, and after LEVELS levels the rest in
# one request: with all 64 texts in one request "lombok sunset" (`--mode text`) returned 1 of
# the 3 Lombok sunset photos in its top 20, the others being any Lombok photos. Each request
# scans the items' texts (~30 ms at 100k, bench/words.py): 3 levels made a three-word query
# 156 -> 325 ms, so only the best level goes first.
LEVELS = 1
# Item rows read at once to see which of 100 texts photos still hold (Milvus's query limit).
HELD_ROWS = 16384
# Words that say nothing about a picture but fill read text: English and Indonesian function
# words. Without them "a dog on the beach" matched every screenshot holding "the" and "on".
STOP_WORDS = (
    "a", "an", "the", "of", "on", "in", "at", "to", "for", "with", "and", "or", "is", "are",
    "was", "be", "by", "from", "as", "it", "its", "this", "that", "these", "those", "my",
    "your", "our", "we", "you", "i", "me", "he", "she", "they", "not", "no",
    "yang", "di", "ke", "dari", "dan", "atau", "dengan", "untuk", "ini", "itu", "pada",
    "dalam", "adalah", "sebuah", "seorang", "para", "oleh", "juga", "akan", "sudah", "tidak",
    "saya", "kami", "kita", "anda", "dia", "mereka", "nya",
)
# asciifolding: GeoNames spells places with their accents (Tromsø, Île-de-France) and people
# type them without.
_STOP = frozenset(STOP_WORDS)
ANALYZER = {"tokenizer": "standard",
            "filter": ["lowercase", "asciifolding",
                       {"type": "stop", "stop_words": list(STOP_WORDS)}]}


# No length normalisation: a photo's text is a list of labels, and a label that is there
# counts the same in a short text or a long one. With Milvus's default 0.75 the photos of one
# trip folder scored apart by the length of their names and camera, more than the picture
# signal could reorder: bench/signals.py "coat bali"-like queries P@10 0.56 (tuning half) /
# 0.64 (held-out) at 0.75, 0.97 / 0.96 at 0.
BM25_B = 0.0


def text_id(text: str) -> int:
    return item_id(text)


def create_words(client, create) -> None:
    """Create the words collection; `create(name, schema, params)` makes it."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                   description="mmsearch photo words")
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True,
                analyzer_params=ANALYZER)
    s.add_field(SPARSE, DataType.SPARSE_FLOAT_VECTOR)
    s.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                            input_field_names=["text"], output_field_names=[SPARSE]))
    params = client.prepare_index_params()
    params.add_index(SPARSE, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                     params={"bm25_k1": 1.2, "bm25_b": BM25_B})
    create(WORDS, s, params)


def searchable(text: str) -> bool:
    """Whether BM25 can match `text`: a word of it is not a stop word. A text of none adds
    nothing to find, and when every text is such, BM25's mean length is 0 and Milvus Lite
    2.5.1 fails each search with NaN statistics."""
    return any(w not in _STOP for w in re.findall(r"\w+", text.lower()))


def rows_of(texts: Iterable[str]) -> list[dict]:
    """The words rows of these texts: each distinct searchable text once."""
    return [{"id": text_id(t), "text": t} for t in dict.fromkeys(texts) if t and searchable(t)]


def top_texts(client, words: str, limit: int = TEXTS) -> dict[str, float]:
    """The texts BM25 ranks highest for `words`, with their scores, best first; none while
    the collection is empty (a new index, photos without words: Milvus Lite 2.5.1 fails a
    BM25 search there, printing an assert on the terminal; asking costs ~1 ms)."""
    if not client.query(WORDS, filter="", output_fields=["id"], limit=1):
        return {}
    res = client.search(WORDS, data=[words], anns_field=SPARSE, limit=limit,
                        output_fields=["text"], search_params={"metric_type": "BM25"})
    return {h["entity"]["text"]: abs(float(h["distance"])) for h in res[0]}


def holding(texts: Iterable[str]) -> tuple[str, list[str]]:
    """A filter for the items whose text is one of `texts`, and the texts it holds (as many
    as fit MAX_JOIN_CHARS, in order)."""
    kept, quoted, size = [], [], 0
    for text in texts:
        q = quote(text)
        if quoted and size + len(q) > MAX_JOIN_CHARS:
            break
        kept.append(text)
        quoted.append(q)
        size += len(q) + 2
    return f"text in [{', '.join(quoted)}]", kept


def levels(scores: dict[str, float]) -> list[list[str]]:
    """The texts (best first) in groups of equal score; after LEVELS groups, the rest as one."""
    groups: list[list[str]] = []
    last = None
    for text, score in scores.items():
        if groups and (len(groups) > LEVELS or math.isclose(score, last, rel_tol=1e-6)):
            groups[-1].append(text)
        else:
            groups.append([text])
        last = score
    return groups


@dataclass
class Found:
    """A query's words searched once, level by level (`levels`): BM25's top texts and the
    photos holding them found so far (search entities, with `text`). `mmsearch.fusion` probes
    with it (is any photo there?) and fuses the same rows, searching the next levels only when
    they could change the top k."""

    words: str
    filter: str
    limit: int
    scores: dict[str, float]
    rows: list[dict] = field(default_factory=list)
    rest: list[list[str]] = field(default_factory=list)  # levels not searched yet, best first

    def next_score(self) -> float:
        """The best BM25 score a photo of the levels not searched yet can have."""
        return self.scores[self.rest[0][0]] if self.rest else 0.0

    def more(self, client, collection: str, near=None, output=("key",),
             search_params: dict | None = None) -> None:
        """Add the photos of the next level (at most `limit` rows in all), nearest `near`
        first when given (else in no set order)."""
        join, _ = holding(self.rest.pop(0))
        expr = f"({join}) and ({self.filter})" if self.filter else join
        fields = list(dict.fromkeys([*output, "key", "text"]))
        if near is not None:
            res = client.search(collection, data=[near], anns_field=IMAGE_VECTOR,
                                limit=self.limit - len(self.rows), filter=expr,
                                output_fields=fields, search_params=search_params or {})[0]
            self.rows += [h["entity"] for h in res]
        else:
            self.rows += client.query(collection, filter=expr, output_fields=fields,
                                      limit=self.limit - len(self.rows))


def found(client, collection: str, words: str, limit: int, filter: str = "", near=None,
          output=("key",), search_params: dict | None = None) -> Found:
    """BM25's top texts for `words` and the photos of their best level that `filter` lets
    through (or of the next levels, until one has some); no rows: no such photo holds a word."""
    scores = top_texts(client, words)
    out = Found(words, filter, limit, scores, rest=levels(scores))
    while out.rest and not out.rows:
        out.more(client, collection, near, output, search_params)
    return out


def ranked_photos(client, collection: str, words: str, limit: int, filter: str = "",
                  near=None, search_params: dict | None = None) -> list[tuple[str, float]]:
    """(key, BM25 score of its text) of up to `limit` photos whose texts match `words` best,
    among those `filter` lets through; photos of one text are ordered by their cosine to the
    picture vector `near` when given (else in no set order)."""
    got = found(client, collection, words, limit, filter, near, search_params=search_params)
    while got.rest and len(got.rows) < limit:
        got.more(client, collection, near, search_params=search_params)
    scores, rows = got.scores, got.rows
    ranked = sorted(enumerate(rows), key=lambda nr: (-scores.get(nr[1]["text"], 0.0), nr[0]))
    return [(row["key"], scores.get(row["text"], 0.0)) for _, row in ranked]


def forget(client, collection: str, texts: set[str], retries: int) -> None:
    """Delete from the words collection those of `texts` that no row of `collection` (the
    items) holds any more."""
    texts = {t for t in texts if t}
    while texts:
        join, asked = holding(list(texts)[:100])
        texts -= set(asked)
        rows = client.query(collection, filter=join, output_fields=["text"], limit=HELD_ROWS)
        held = {r["text"] for r in rows}
        if len(rows) >= HELD_ROWS:  # a text held by many photos may have filled the answer
            held |= {t for t in set(asked) - held if client.query(
                collection, filter=f"text == {quote(t)}", output_fields=["id"], limit=1)}
        gone = [text_id(t) for t in set(asked) - held]
        if gone:
            client.delete(WORDS, ids=gone, retry_times=retries)
