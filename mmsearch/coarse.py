"""Fast exact-reranked search on a large embedded index: Hamming over bit codes, then cosine.

Embedded Milvus Lite 2.5.1 offers FLAT (exact, 300-350 ms a query at 1M x 512-d on 2 cores)
and an IVF/AUTOINDEX whose nprobe cannot be set (recall 0.92, or 0.27 on less clustered
vectors, at 1M). So a FLAT folder collection also stores, per picture, a 1,024-bit SimHash
code (`simhash`: the signs of the vector times a fixed Gaussian matrix; BIN_FLAT/HAMMING, exact
in Milvus). A query on a large index asks Milvus for the ids of the CANDIDATES rows with the
nearest codes, filters applied, then for the k of those nearest the query by the exact
metric: a FLAT search of the picture vectors filtered to `id in [candidates]`, which only
scores those rows.

Measured at 1M (bench/scale.py's vectors, ~3,900 per cluster that differ by noise alone;
stored vectors as queries, numpy exact as the truth; 2 shared cores):
- 512 sign bits: recall@10 0.712 at 400 candidates, 0.956 at 1,600, 0.976 at 2,000;
- 1,024 SimHash bits: 0.950 at 1,200, **0.973-0.976 at 1,600**, 0.990 at 2,000; 2,048 bits
  cost 62 ms in the Hamming step alone.
- On less clustered (manifold) vectors every scheme gave 0.999-1.000 from 400 candidates.
- 1,600 candidates: the codes step (ids only) 47 ms, the filtered FLAT step 15 ms with the
  winners' columns (16 ms with a folder filter too). The way before, the candidates' vectors
  in float16 (a `half` text column: 1,368 characters a row, paid for at every load) reranked
  in numpy and the winners fetched after, took 80-86 ms. Indexes made then keep the column
  (written, not read); `half` below names it.
FLOAT16_VECTOR or BINARY_VECTOR fields in a search's output crash 2.5.1's search; a `get` by
id scans (see `fetch`).
"""

from __future__ import annotations

import base64
import functools

import numpy as np

CODE_FIELD = "simhash"
# Indexes made before the rerank moved into Milvus have this float16 copy of each vector: it
# is still written there (a row needs every column), never read.
HALF_FIELD = "half"
CODE_BITS = 1024
# The projection's seed: stored codes depend on it, so it never changes (a new scheme would
# use new field names, and indexes with the old ones are searched by FLAT).
SEED = 12345
# Candidates asked for: the recall knob (measurements above), one per 125 rows between
# MIN_CANDIDATES and CANDIDATES. At 100k (bench/scale.py's vectors, 50 stored vectors as
# queries): 800 candidates gave recall@10 1.000 in 15 ms against FLAT's 26 ms, 1,600 23 ms.
CANDIDATES = 1600
MIN_CANDIDATES = 800
# Below this many rows FLAT, exact and linear in the rows (26 ms at 100k), is quick enough.
MIN_ROWS = 100_000
# A query asking for more than this many hits, or more than MAX_QUERIES vectors at once
# (duplicates), goes to FLAT: the candidates would no longer be a large multiple of k.
MAX_K = 100
MAX_QUERIES = 4


@functools.cache
def _projection(dim: int) -> np.ndarray:
    return np.random.default_rng(SEED).standard_normal((dim, CODE_BITS)).astype(np.float32)


def codes(vectors) -> list[bytes]:
    """The packed SimHash code of each vector (CODE_BITS bits: signs of v @ P)."""
    v = np.atleast_2d(np.asarray(vectors, np.float32))
    packed = np.packbits(v @ _projection(v.shape[1]) > 0, axis=1)
    return [row.tobytes() for row in packed]


def halves(vectors) -> list[str]:
    """Each vector in float16, as base64 text (HALF_FIELD's value)."""
    v = np.atleast_2d(np.asarray(vectors, np.float16))
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in v]


def worth_it(rows: int, k: int, queries: int) -> bool:
    return rows >= MIN_ROWS and k <= MAX_K and queries <= MAX_QUERIES


def candidates(rows: int) -> int:
    """How many rows the codes step passes on, for a collection of `rows`."""
    return min(CANDIDATES, max(MIN_CANDIDATES, rows // 125))


def fetch(client, collection: str, ids: list[int], fields: list[str]) -> list[dict]:
    """Rows by id, found by a search of the codes filtered to exactly those ids: Milvus Lite
    2.5.1 finds a row by id (`get`, or `query` with `id in`) with a scan, 11-12 ms a row at
    100k and 145-180 ms at 1M (1.1-1.4 ms only for the rows stored first), while this search
    returns it in 1.7 ms at 100k and ~7 ms at 1M (8 rows: 2.6 / 7.9 ms). `fields` must not
    name a binary or float16 vector, which 2.5.1's search cannot return."""
    hits = client.search(collection, data=[bytes(CODE_BITS // 8)], anns_field=CODE_FIELD,
                         filter=_id_in(ids),
                         limit=len(ids), output_fields=fields,
                         search_params={"metric_type": "HAMMING"})[0]
    return [{"id": h["id"], **h["entity"]} for h in hits]


def search(client, collection: str, vectors, k: int, filter: str, output: list[str],
           vector_field: str, params: dict, rows: int) -> list[list[dict]]:
    """The top k rows for each query vector: Hamming over the bit codes for the ids of
    `candidates(rows)` rows (filters applied; `rows` is the collection's size), then a search
    of `vector_field` (asked with `params`: its index's metric) over exactly those rows,
    which returns the winners' `output` and their distance as FLAT would (62 ms a query at
    1M; the module's notes)."""
    res = client.search(collection, data=codes(vectors), anns_field=CODE_FIELD,
                        limit=max(candidates(rows), k), filter=filter, output_fields=[],
                        search_params={"metric_type": "HAMMING", "params": {}})
    found = []
    for vector, hits in zip(vectors, res):
        # a row deleted between the two calls (a writer beside the app) is left out
        found.append(list(client.search(
            collection, data=[np.asarray(vector, np.float32).tolist()], anns_field=vector_field,
            limit=k, filter=_id_in([h["id"] for h in hits]), output_fields=output,
            search_params=params)[0]) if hits else [])
    return found


def _id_in(ids) -> str:
    """The filter expression for exactly these primary keys."""
    return f"id in [{', '.join(str(int(i)) for i in ids)}]"

