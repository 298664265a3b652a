"""All the matches (`--all`), and "without" that removes, both from the shape of the scores.

**Where the matches end.** `count(scores)` reads a ranked list best first. It draws the
*halfway line*, halfway from the list's median score (what a typical candidate scores) to its
best, and looks at the gaps between neighbours down to the first score under that line. The
matches end below the last gap at least half as wide as the widest of those gaps:

    line = median + HALF * (best - median)
    gaps = s[i] - s[i+1] for every i whose s[i] >= line (the gap under the last one too)
    count = 1 + the last i with gaps[i] >= ALPHA * max(gaps)

Matches form a plateau and the list falls off after it; the widest drop alone often sits at
the top (one exact match, then its kind), the halfway line alone takes the next kind in too.
Measured on the demo index (300 labelled pictures; bench/cutoff.py; the constants chosen on
the English queries, the Indonesian ones held out), F1 of the set returned against the labels:
class queries ("a dress") 0.83, colours ("red") 0.77 (precision 1.00, recall 0.65: the model
hardly sees red in red shoes), colour + class ("a red sneaker") 0.82; held out 0.83 / 0.77 /
0.81. The widest gap alone: 0.42 / 0.47 / 0.81; the halfway line alone: 0.80 / 0.83 / 0.26.
The candidates are the query's top CAP (or k if more): when the matches fill them all the
answer says `capped`, and the median is that of the top CAP, so the count then errs low.

**Without.** A "without" part X (`--not` words or a picture) is not added to the query vector
with weight -0.5 any more: it removes. The query runs without X (a word of X is also taken out
of the words looked for: "a red sneaker" without red looks for "a sneaker"); then X is read in
the query's context, the vector of query + X ("a dress" + red: a red dress), and `count` is
applied to those context scores of the query's own top POOL candidates; every item scoring at
or above the last of those matches is dropped, and what is left keeps the query's order.
Measured on the demo index (bench/exclusion.py), each garment class without each colour, in
English and Indonesian (160 queries): an item of that colour in the top 10 of none; the top 10
holds 0.999 of the plain query's own top-10 items not of that colour (159 of 160 in the same
order); 97% of the top 10 of the query's class. The -0.5 vector also kept the colour out of
these, but kept 0.54 of those items (90% of the class) and, for "a red sneaker" without red,
put red sneakers first. X alone (red, not a red dress) let the colour in 2 of 160 times;
the context scores over all the candidates rather than the top POOL, 7.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mmsearch.index import IMAGE_VECTOR, Hit, Index

CAP = 1000   # candidates `--all` and "without" look at (one Milvus search of this many)
HALF = 0.5   # the halfway line (on bench/cutoff.py's English queries 0.4 gave F1 0.81 for
#              classes, 0.77 for colours, 0.82 for colour + class: no better)
ALPHA = 0.5  # a gap "wide" at half the widest (0.3: colour + class F1 0.74; 1.0, the widest
#              gap above the line: colours 0.54)
POOL = 50    # the query's top candidates whose "X in context" scores set what X removes
#              (bench/exclusion.py: every candidate instead let the colour in 7 of 160 times)


def count(scores: Sequence[float]) -> int:
    """How many of these scores (a ranked list) are matches, by the rule above; at least 1
    of a non-empty list."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    if len(s) < 2:
        return len(s)
    median = float(np.median(s))
    line = median + HALF * (s[0] - median)
    above = int((s >= line).sum())
    gaps = -np.diff(s[:min(above + 1, len(s))])
    if not len(gaps) or gaps.max() <= 0:
        return above
    return int(np.nonzero(gaps >= ALPHA * gaps.max())[0][-1]) + 1


def excluded(index: Index, hits: list[Hit], contexts: list[np.ndarray], expr: str = ""
             ) -> set[str]:
    """Keys to drop from `hits` (the query's ranked candidates without its --not parts): for
    each context vector (query + X), the items it scores at or above the last match `count`
    finds among the top POOL hits' context scores."""
    pool = [h.key for h in hits[:POOL]]
    gone: set[str] = set()
    for context in contexts:
        ranked = index.ranked_keys(IMAGE_VECTOR, np.asarray(context, np.float32).tolist(),
                                   max(CAP, len(hits)), expr)
        if not ranked:
            continue
        score = dict(ranked)
        floor = ranked[-1][1]  # a pool item past the context's list scores at most this
        in_pool = sorted((score.get(key, floor) for key in pool), reverse=True)
        line = in_pool[count(in_pool) - 1]
        gone |= {key for key, s in ranked if s >= line}
    return gone
