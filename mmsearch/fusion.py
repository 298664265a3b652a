"""Hybrid search: several signals of an item (its picture vector, the vector of its text, BM25
over its words) searched apart and fused into one ranking here, the same way on every engine.

A text query is fused word by word (`plan`): each word that some item's text holds is asked
whether the pictures show it. Its BM25 matches are compared with the pictures that look like
the whole query and with those that look like the word alone; `agreement` is how far beyond
luck its matches are among them (0: as a random pick, 1: all). A word the pictures show
("gaun", "merah") is left to the picture vectors, a word they cannot show (a brand, a product
line) gets BM25's say, each word its own BM25 search and weight:

    w_word = LEXICAL_MAX * (LEXICAL_FLOOR + (1 - LEXICAL_FLOOR) * (1 - agreement) ** SHARPNESS)

beside the picture vectors' weight 1 + LOOK x (the agreements summed), so in "Minuet gaun" the
brand sorts Minuet's items first and the pictures sort the gowns first among them.

A word the pictures show may also be a field that marks that look exactly ("red" is in every
red item's `colour` field; "merah" only in Indonesian titles). `cover` asks how much of what
the pictures show the word's matches hold: the share of the word's own first COVER pictures
that match it, beyond luck. Such a word gets a second BM25 search whose matches count alike
(`Matches`: in or out, whatever a title's repeat adds to the score), weight EXACT x cover **
EXACT_POWER, and takes that part of its agreement off the pictures' weight: the field carries
the look, so a line's red bag is not lost behind other lines' red blouses ("campus style red"). One BM25 search of the whole query could not:
"gaun" (only Indonesian titles hold it) outscores "Minuet" (a field of 42 items), so other
brands' gowns beat Minuet's English-titled dresses at any weight (bench/catalog.py, before
this: brand + garment P@10 0.48 on the tuning half, fixed weights at best 0.76).

Every constant was fitted on the tuning half of bench/queries/catalog.json only
(bench/catalog_tune.py; bench/results/catalog_tune.json). Its held-out half had been looked at
before `cover` was designed, so bench/queries/catalog_fresh.json (other phrasings, written first)
is the held-out that no choice here saw; bench/results/catalog.json reports all three. Text vectors lowered P@10 for text queries at every weight
tried, so text queries leave them out; "text" mode and recommendations use them.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field, replace

from mmsearch import words as photo_words
from mmsearch.index import IMAGE_VECTOR, SPARSE, TEXT_VECTOR, Hit, Index

SIGNALS = (IMAGE_VECTOR, TEXT_VECTOR, SPARSE)
MODES = ("hybrid", "picture", "text")
# The signals each mode may use.
ALLOWED = {"hybrid": SIGNALS, "picture": (IMAGE_VECTOR,), "text": (TEXT_VECTOR, SPARSE)}
# Fitted on the tuning half over 288 settings (bench/results/catalog_tune.json; worst margin over
# kinds of hybrid P@10 - the best single signal's, then the mean): worst -0.017, mean 0.992
# (without `cover`, 216 settings: -0.026, mean 0.987, line + colour 0.974, adjective 0.973).
# LOOK: each word the pictures show adds LOOK x its agreement to the pictures' weight, so a
# word only the text has weighs less against a query that is mostly a look. Without `cover`
# the best setting with LOOK 0 had worst margin -0.108, the adjective kind ("sepatu lari ringan
# merah": orange "Ringan" sneakers beat the red ones) at 0.89. LEXICAL_FLOOR 0 (with EXACT 0.6)
# reached -0.014 but put Minuet's white trousers between its gowns for "Minuet gaun": a
# title-only look word ("gaun") keeps a little BM25.
LEXICAL_MAX = 0.3
SHARPNESS = 4
LEXICAL_FLOOR = 0.05
LOOK = 1.0
# A word's BM25 top PROBE_LEXICAL against the pictures' top PROBE_SHARE of the index (at most
# CANDIDATES): a sixth of the demo catalogue, 50 of 300; its BM25 matches are read up to as many.
PROBE_LEXICAL, PROBE_SHARE = 20, 1 / 6
# cover^4: the demo's field words ("red", "bag", "dress") cover 0.9-1.0 of their first 10
# pictures, title-only ones 0.2-0.7 ("merah" 0.68 -> 0.2 of a field's weight, "gaun" 0.32 -> 0);
# EXACT 0.3 / 0.6 gave worst margins -0.026 / -0.022 at this setting. An exact weight under
# MIN_EXACT is not searched (one BM25 search each).
EXACT, EXACT_POWER, MIN_EXACT, COVER = 0.4, 4, 0.01, 10
MAX_TERMS = 8  # words of one query looked at apart (each is one BM25 and one picture search)
TERM = re.compile(r"\w+(?:-\w+)*")
CANDIDATES = 1000  # per signal before fusion: exact fusion up to this many items
# A signal "carried" a result (its `matched`) when it gave at least this share of its score.
CARRIED = 0.2
# A photo folder's words, when some photo holds one: their BM25 weight (the pictures 1 - it).
PHOTO_WORDS = 0.9


class Matches(str):
    """A BM25 search whose matches count alike (1 each, whatever their score): a word that
    marks a look exactly ("red" in the colour field) is either there or not; its BM25 score
    is higher where a title repeats it, which favoured English titles over Indonesian."""


@dataclass(frozen=True)
class Plan:
    """What one query's fusion searches: the weights of the picture and text vectors, and the
    BM25 searches as (words, weight): one per query word that some item's text holds."""

    picture: float
    text: float
    lexical: tuple[tuple[str, float], ...] = ()
    exact: tuple[tuple["Matches", float], ...] = ()  # BM25 as a match or not, weight each
    agreements: tuple[tuple[str, float, float], ...] = ()  # (word, agreement, cover): `plan`
    # a folder's words as the probe found them (words.Found), for `fuse` to go on from
    found: photo_words.Found | None = field(default=None, compare=False, repr=False)

    @property
    def weights(self) -> tuple[float, float, float]:
        return (self.picture, self.text, sum(w for _, w in (*self.lexical, *self.exact)))

    @classmethod
    def fixed(cls, weights: tuple[float, float, float], words: str) -> "Plan":
        """These weights, BM25 searching all the words at once (bench: fixed weights, RRF)."""
        return cls(weights[0], weights[1], ((words, weights[2]),) if words else ())


def terms(words: str) -> list[str]:
    """The distinct words of a query, lower case, in order, at most MAX_TERMS; a hyphen keeps
    a word whole ("t-shirt": BM25 still matches its parts, but the pictures of "t" are noise)."""
    return list(dict.fromkeys(TERM.findall(words.lower())))[:MAX_TERMS]


def plan(index: Index, words: str, picture, expr: str, mode: str, not_only_words: bool,
         encode=None) -> Plan:
    """The fusion of this query (module docstring). `not_only_words`: an example picture or
    liked items are part of the query. `encode`: texts -> CLIP text vectors, to see each
    word's own pictures (without it a word is compared with the whole query's only)."""
    if mode == "text":
        return Plan(0.0, 0.5, ((words, 0.5),) if words else ())
    if mode == "picture" or picture is None:
        return Plan(1.0, 0.0)
    if not_only_words:  # an example picture or liked items lead; words refine
        return Plan(0.6, 0.2, ((words, 0.2),)) if words else Plan(0.8, 0.2)
    if index.kind == "folder":
        # A photo's words are labels (its name, folders, camera, place) or words printed in
        # it, not a description of its looks: a photo holding a word of the query comes
        # first, ordered by looks among the others holding it (one BM25 search of all the
        # words). Agreement misread them: a word printed in one picture is one BM25 match,
        # which is in the pictures' top or not by the luck of the model (bench/signals.py,
        # words in pictures, P@1 0.84 tuning / 0.77 held-out with agreement, against 1.00 /
        # 0.94 for the words alone; the other kinds 1.00, mixed 0.97 / 0.96 this way).
        # The probe is the fusion's own first words search (`found`), handed on to `fuse`.
        found = words_found(index, words, picture, expr, CANDIDATES) \
            if words and index.has_words else None
        if found is not None and found.rows:
            return Plan(1.0 - PHOTO_WORDS, 0.0, ((words, PHOTO_WORDS),), found=found)
        return Plan(1.0, 0.0)
    matched = {}  # word -> its BM25 matches, best first, at most `probe`
    rows = max(1, index.rows_now())
    probe = max(1, min(CANDIDATES, int(rows * PROBE_SHARE)))
    for term in terms(words or ""):
        found = [key for key, _ in index.ranked_keys(SPARSE, term, probe, expr)]
        if found:  # else no item's text has this word
            matched[term] = found
    if not matched:
        return Plan(1.0, 0.0)
    own = {}  # a word's own picture query, when the query has other words too
    if encode is not None and len(matched) > 1:
        own = {term: [float(x) for x in vector]
               for term, vector in zip(matched, encode(list(matched)))}

    def top(vector) -> list[str]:  # the pictures' top `probe` for this vector
        return [key for key, _ in index.ranked_keys(IMAGE_VECTOR, vector, probe, expr)]

    def beyond(share: float, luck: float) -> float:  # 0: as a random pick, 1: all
        return max(0.0, (share - luck) / (1.0 - luck)) if luck < 1 else 1.0

    whole = top(picture)
    lexical, shown, agreements, exact = [], 0.0, [], []
    for term, found in matched.items():
        keys = set(found[:PROBE_LEXICAL])
        alone = top(own[term]) if term in own else None
        # agreement, the larger of the two: a word may show only with the rest of the query
        # ("sepatu" in "sepatu bot hitam", alone boots and sneakers alike; tuning half, own
        # pictures only: visual P@10 0.94) or only alone ("sweter" in "sweter kuning", whose
        # pictures are yellow things first; whole query's only, picture weight 1 - w: 0.95)
        agree = max(beyond(len(keys & set(seen)) / len(keys), probe / rows)
                    for seen in (whole, alone) if seen is not None)
        # cover: the share of the pictures' first COVER (the looks a page shows) that hold the
        # word: 1 when the text marks what the pictures show ("red", in every red item's
        # `colour` field), about half for a title-only word ("merah": only Indonesian titles)
        first = (alone or whole)[:min(COVER, len(found))]
        cover = beyond(len(set(found) & set(first)) / len(first), len(found) / rows) \
            if first else 0.0
        shown += agree * (1.0 - cover ** EXACT_POWER)  # a look its field holds is BM25's
        agreements.append((term, round(agree, 4), round(cover, 4)))
        lexical.append((term, LEXICAL_MAX * (
            LEXICAL_FLOOR + (1 - LEXICAL_FLOOR) * (1.0 - agree) ** SHARPNESS)))
        if EXACT * cover ** EXACT_POWER >= MIN_EXACT:
            exact.append((Matches(term), EXACT * cover ** EXACT_POWER))
    return Plan(1.0 + LOOK * shown, 0.0, tuple(lexical), tuple(exact), tuple(agreements))


def weights_for(index: Index, words: str, picture, expr: str, mode: str,
                not_only_words: bool) -> tuple[float, float, float]:
    """(picture vectors, text vectors, BM25) weights for this query: `plan`'s without a word's
    own pictures, its per-word BM25 weights summed. The fusion searches BM25 word by word:
    callers that fuse should use `plan` and hand `fuse` one (SPARSE, word) per word."""
    return plan(index, words, picture, expr, mode, not_only_words).weights


def fuse(index: Index, requests: list[tuple[str, object]], k: int, expr: str = "",
         weights: tuple[float, ...] | None = None,
         found: photo_words.Found | None = None) -> list[Hit]:
    """Search each (field, query) and fuse the ranked lists into the top k.

    Weighted: a vector list's cosines min-max normalised to [0, 1] for this query, BM25's
    scores as they are (0 = no match; a match adds weight x score), then the weighted sum
    (an item missing from a list gets nothing from it); `weights` None: reciprocal-rank
    fusion, the sum of 1 / (60 + rank). A field may come more than once (BM25 word by word,
    `plan`): what its requests add is summed. Not the engine's `hybrid_search`: Milvus Lite
    2.5.1's let the BM25 list count for nothing on the demo catalogue (title-only words:
    4 of 10 right, as pictures alone), and the engines normalise differently (3.x min-max,
    Milvus 2.5 arctan), so one index would rank differently on each. A folder's pictures and
    words, weighted, go to `fuse_photos` (the same ranking in fewer engine calls); `found`:
    its words as `plan`'s probe found them."""
    if weights is not None and index.has_words and min(weights) >= 0 and \
            [anns_field for anns_field, _ in requests] == [IMAGE_VECTOR, SPARSE]:
        return fuse_photos(index, requests[0][1], requests[1][1], k, expr, weights, found)
    limit = max(k, CANDIDATES)
    parts: dict[str, dict[str, float]] = {}  # key -> signal -> what it added
    # a folder's photos that share a text are ordered by how they look (Index.ranked_keys)
    near = next((data for anns_field, data in requests if anns_field == IMAGE_VECTOR), None)
    searched: dict[str, list] = {}  # BM25 lists by words, searched once
    for n, (anns_field, data) in enumerate(requests):
        if anns_field == SPARSE and str(data) in searched:  # a word's BM25 and its Matches
            hits = searched[str(data)]
        else:
            hits = index.ranked_keys(anns_field, data, limit, expr,
                                     near=near if anns_field == SPARSE else None)
            if anns_field == SPARSE:
                searched[str(data)] = hits
        if weights is None:
            for rank, (key, _) in enumerate(hits, 1):
                added = parts.setdefault(key, {})
                added[anns_field] = added.get(anns_field, 0.0) + 1.0 / (60 + rank)
            continue
        lo, hi = (min(d for _, d in hits), max(d for _, d in hits)) if hits else (0, 0)
        if anns_field == SPARSE:
            lo, hi = 0.0, 1.0
        if isinstance(data, Matches):
            hits = [(key, 1.0) for key, _ in hits]
        for key, d in hits:
            norm = (d - lo) / (hi - lo) if hi > lo else 1.0
            added = parts.setdefault(key, {})  # a field may come twice (BM25 word by word)
            added[anns_field] = added.get(anns_field, 0.0) + weights[n] * norm
    fused = {key: sum(added.values()) for key, added in parts.items()}
    top = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    stored = index.get([key for key, _ in top], fields=index.output)
    return [replace(Hit.of(row, score), matched=carried(parts[key], score))
            for key, score in top for row in [stored.get(key)] if row]


def carried(added: dict[str, float], total: float) -> tuple[str, ...]:
    """The signals that gave at least CARRIED of an item's fused score, in SIGNALS order."""
    return tuple(s for s in SIGNALS if added.get(s, 0.0) > 0 and
                 added[s] >= CARRIED * total)


def words_found(index: Index, words: str, picture, expr: str, limit: int) -> photo_words.Found:
    """A folder's words searched (mmsearch.words.found): the photos of BM25's best texts,
    nearest `picture` first, with the rows a hit is made of."""
    with index.searching():
        return photo_words.found(
            index.client, index.COLLECTION, words, limit, expr, picture, index.output,
            index.search_params(IMAGE_VECTOR, limit))


def fuse_photos(index: Index, picture, words: str, k: int, expr: str,
                weights: tuple[float, float], found: photo_words.Found | None = None
                ) -> list[Hit]:
    """`fuse` of a folder's picture list and words list: the same hits and scores in fewer
    engine calls (bench/words.py). The words are searched once (`found`, `plan`'s probe when
    given); that search returns the hits' rows, so only photos holding no query word are
    fetched after; and the words' next levels are searched only if they could reach the top k.

    Why skipping a level is exact: a photo of a level not searched has a BM25 score at most
    s = found.next_score() and a picture part at most wp (a min-max normalised cosine is at
    most 1), so its fused score is at most B = wp + ws * s. Leaving it out changes no one
    else's score (BM25's part is not normalised over its list, the picture list is searched
    whole) and only lowers its own. So when the k-th best score without those levels is
    above B, none of their photos is in the top k, with or without them, and the top k and
    its scores are those of the full fusion."""
    limit = max(k, CANDIDATES)
    wp, ws = weights
    if found is None or (found.words, found.filter, found.limit) != (words, expr, limit):
        found = words_found(index, words, picture, expr, limit)
    parts: dict[str, dict[str, float]] = {}
    looks = index.ranked_keys(IMAGE_VECTOR, picture, limit, expr)
    lo, hi = (min(d for _, d in looks), max(d for _, d in looks)) if looks else (0, 0)
    for key, d in looks:  # as `fuse` adds them, term for term: the sums are the same floats
        norm = (d - lo) / (hi - lo) if hi > lo else 1.0
        added = parts.setdefault(key, {})
        added[IMAGE_VECTOR] = added.get(IMAGE_VECTOR, 0.0) + wp * norm

    def add(rows: list[dict]) -> None:
        for row in rows:
            added = parts.setdefault(row["key"], {})
            added[SPARSE] = added.get(SPARSE, 0.0) + ws * found.scores.get(row["text"], 0.0)

    add(found.rows)
    params = index.search_params(IMAGE_VECTOR, limit)
    while found.rest and len(found.rows) < limit:
        kth = heapq.nlargest(k, (sum(a.values()) for a in parts.values()))
        if len(kth) == k and kth[-1] > wp + ws * found.next_score():
            break
        before = len(found.rows)
        with index.searching():
            found.more(index.client, index.COLLECTION, picture, index.output, params)
        add(found.rows[before:])
    fused = {key: sum(added.values()) for key, added in parts.items()}
    top = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    rows = {row["key"]: row for row in found.rows}
    if missing := [key for key, _ in top if key not in rows]:
        rows |= index.get(missing, fields=index.output)
    return [replace(Hit.of(row, score), matched=carried(parts[key], score))
            for key, score in top for row in [rows.get(key)] if row]
