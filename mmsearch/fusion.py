"""Hybrid search: several signals of an item (its picture vector, the vector of its text, BM25
over its words) searched apart and fused into one ranking here, the same way on every engine.

Measured on bench/catalog.py (README, "Catalogues"): `weights_for` adds the normalised scores
of the picture-vector and BM25 lists with query-dependent weights. When BM25's top matches are
also among the pictures that look like the query ("gaun merah") the words describe the picture
and the picture signal leads; when they are not (a brand, a product line: things no picture
shows) BM25 leads. BM25 weight = LEXICAL_MAX * (1 - agreement) ** SHARPNESS, agreement = share
of BM25's top 20 in the pictures' top 50. Text vectors lowered P@10 for text queries at every
weight tried, so text queries leave them out; "text" mode and recommendations use them.
"""

from __future__ import annotations

from dataclasses import replace

from mmsearch.index import IMAGE_VECTOR, SPARSE, TEXT_VECTOR, Hit, Index

SIGNALS = (IMAGE_VECTOR, TEXT_VECTOR, SPARSE)
MODES = ("hybrid", "picture", "text")
# The signals each mode may use.
ALLOWED = {"hybrid": SIGNALS, "picture": (IMAGE_VECTOR,), "text": (TEXT_VECTOR, SPARSE)}
LEXICAL_MAX = 0.9
SHARPNESS = 7
PROBE_LEXICAL, PROBE_PICTURE = 20, 50
CANDIDATES = 1000  # per signal before fusion: exact fusion up to this many items
# A signal "carried" a result (its `matched`) when it gave at least this share of its score.
CARRIED = 0.2


def weights_for(index: Index, words: str, picture, expr: str, mode: str,
                not_only_words: bool) -> tuple[float, float, float]:
    """(picture vectors, text vectors, BM25) weights for this query (see LEXICAL_MAX).
    `not_only_words`: an example picture or liked items are part of the query."""
    if mode == "text":
        return (0.0, 0.5, 0.5)
    if mode == "picture" or picture is None:
        return (1.0, 0.0, 0.0)
    if not_only_words:  # an example picture or liked items lead; words refine
        return (0.6, 0.2, 0.2) if words else (0.8, 0.2, 0.0)
    if not words:
        return (1.0, 0.0, 0.0)
    # not ordered by looks (no `near`): that would make any word agree with the pictures
    lexical = [key for key, _ in index.ranked_keys(SPARSE, words, PROBE_LEXICAL, expr)]
    if not lexical:
        return (1.0, 0.0, 0.0)  # no word of the query is in any item's text
    if index.kind == "folder":
        # A photo's words are labels (its name, folders, camera, place) or words printed in
        # it, not a description of its looks: a photo holding a word of the query comes
        # first, ordered by looks among the others holding it. Agreement misread them: a
        # word printed in one picture is one BM25 match, which is in the pictures' top 50 or
        # not by the luck of the model (bench/signals.py, words in pictures, P@1 0.84 tuning
        # / 0.77 held-out with agreement, against 1.00 / 0.94 for the words alone).
        return (1.0 - LEXICAL_MAX, 0.0, LEXICAL_MAX)
    # at most a sixth of the index (the catalogue's 50 of 300): in a small index the pictures'
    # top 50 would hold every item, and agreement would mean nothing
    rows = max(1, index.rows_now())
    probe = max(1, min(PROBE_PICTURE, rows // 6))
    looks = {key for key, _ in index.ranked_keys(IMAGE_VECTOR, picture, probe, expr)}
    # Agreement beyond chance: a photo folder's word often holds a fifth of the library
    # ("bali": 64 of 300 photos in bench/signals.py), and then BM25's top 20 meet the
    # pictures' top 50 by chance alone (share probe/rows), which read as "the words describe
    # the picture" and gave "bali" P@10 0.2 instead of 1.0.
    chance = probe / rows
    agreement = max(0.0, len(set(lexical) & looks) / len(lexical) - chance) / \
        max(1.0 - chance, 1e-9)  # an index of one item: its probe is the whole index
    bm25 = LEXICAL_MAX * (1.0 - agreement) ** SHARPNESS
    return (1.0 - bm25, 0.0, bm25)


def fuse(index: Index, requests: list[tuple[str, object]], k: int, expr: str = "",
         weights: tuple[float, ...] | None = None) -> list[Hit]:
    """Search each (field, query) and fuse the ranked lists into the top k.

    Weighted: a vector list's cosines min-max normalised to [0, 1] for this query, BM25's
    scores as they are (0 = no match; a match adds weight x score), then the weighted sum
    (an item missing from a list gets nothing from it); `weights` None: reciprocal-rank
    fusion, the sum of 1 / (60 + rank). Not the engine's `hybrid_search`: Milvus Lite
    2.5.1's let the BM25 list count for nothing on the demo catalogue (title-only words:
    4 of 10 right, as pictures alone), and the engines normalise differently (3.x min-max,
    Milvus 2.5 arctan), so one index would rank differently on each."""
    limit = max(k, CANDIDATES)
    parts: dict[str, dict[str, float]] = {}  # key -> signal -> what it added
    # a folder's photos that share a text are ordered by how they look (Index.ranked_keys)
    near = next((data for anns_field, data in requests if anns_field == IMAGE_VECTOR), None)
    for n, (anns_field, data) in enumerate(requests):
        hits = index.ranked_keys(anns_field, data, limit, expr,
                                 near=near if anns_field == SPARSE else None)
        if weights is None:
            for rank, (key, _) in enumerate(hits, 1):
                parts.setdefault(key, {})[anns_field] = 1.0 / (60 + rank)
            continue
        lo, hi = (min(d for _, d in hits), max(d for _, d in hits)) if hits else (0, 0)
        if anns_field == SPARSE:
            lo, hi = 0.0, 1.0
        for key, d in hits:
            norm = (d - lo) / (hi - lo) if hi > lo else 1.0
            parts.setdefault(key, {})[anns_field] = weights[n] * norm
    fused = {key: sum(added.values()) for key, added in parts.items()}
    top = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    stored = index.get([key for key, _ in top], fields=index.output)
    return [replace(Hit.of(row, score), matched=carried(parts[key], score))
            for key, score in top for row in [stored.get(key)] if row]


def carried(added: dict[str, float], total: float) -> tuple[str, ...]:
    """The signals that gave at least CARRIED of an item's fused score, in SIGNALS order."""
    return tuple(s for s in SIGNALS if added.get(s, 0.0) > 0 and
                 added[s] >= CARRIED * total)
