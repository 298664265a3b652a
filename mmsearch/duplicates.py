"""Near-duplicate groups: exact copies (same bytes) and resized or re-encoded copies.

Each indexed picture's stored vector is searched against the index (Milvus ANN, a page of
vectors per request); pairs at or above the threshold are joined with union-find, so a chain
of near-copies lands in one group. Exact copies are joined by content hash, whatever the
threshold. A member's score is its cosine similarity with the group's first picture.

A video (its scenes are items: indexer.videos) joins another video, never a picture: when at
least SHARED of each one's scenes have a near-copy among the other's (a re-encoded copy has
them all; two videos that share one shot are not copies). Its score is its first scene's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmsearch.config import DEMO_MODEL, ModelSpec
from mmsearch.filters import is_scene
from mmsearch.index import IMAGE_VECTOR, PAGE, Index

# immich's default (cosine distance 0.01) for real CLIP models. The embedded demo model sees
# 32-pixel pictures and packs its vectors tightly: measured on the demo pictures, resized and
# re-encoded copies score >= 0.9994 but two different garments of one kind and colour score
# up to 0.9997, so it gets its own default and cannot always tell those apart.
DEFAULT_THRESHOLD = 0.99
DEMO_THRESHOLD = 0.999
NEIGHBOURS = 8  # candidates per picture; larger groups still form through chains
SHARED = 0.5    # of a video's scenes that must have a near-copy in the other video


@dataclass(frozen=True)
class Member:
    path: str
    score: float

    def to_json(self) -> dict:
        return {"path": self.path, "score": round(float(self.score), 6)}


def default_threshold(model: ModelSpec) -> float:
    return DEMO_THRESHOLD if model.name == DEMO_MODEL else DEFAULT_THRESHOLD


class _UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[str]]:
        out: dict[str, list[str]] = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return [sorted(g) for g in out.values() if len(g) > 1]


def find_duplicates(index: Index, threshold: float | None = None,
                    filter: str = "") -> list[list[Member]]:
    """Groups of two or more pictures, largest first; each starts with its reference picture.
    `threshold` defaults to the model's (see `default_threshold`)."""
    if threshold is None:
        threshold = default_threshold(index.model)
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"the threshold is a cosine similarity in [-1, 1], not {threshold}")
    uf = _UnionFind()
    by_hash: dict[str, str] = {}
    page: list[dict] = []
    first_key: dict[str, str] = {}      # a path's first stored item (a video: a scene)
    scenes: dict[str, int] = {}         # a video's scene count
    shared: dict[tuple[str, str], set[str]] = {}  # (video, other): its scenes found there

    def link(rows: list[dict]) -> None:
        results = index.search_many([r[IMAGE_VECTOR] for r in rows], NEIGHBOURS, filter)
        for row, hits in zip(rows, results):
            video = is_scene(row)
            for hit in hits:
                if hit.score < threshold or hit.path == row["path"]:
                    continue
                if not video and hit.time is None:
                    uf.union(row["path"], hit.path)
                elif video and hit.time is not None:
                    shared.setdefault((row["path"], hit.path), set()).add(row["key"])

    for row in index.iter_rows(("key", "path", "hash", "fields", IMAGE_VECTOR), filter):
        first_key.setdefault(row["path"], row["key"])
        if is_scene(row):
            scenes[row["path"]] = scenes.get(row["path"], 0) + 1
        first = by_hash.setdefault(row["hash"], row["path"])
        if first != row["path"]:
            uf.union(first, row["path"])
        page.append(row)
        if len(page) >= PAGE:
            link(page)
            page.clear()
    if page:
        link(page)
    for (a, b), found in shared.items():
        if len(found) >= SHARED * scenes[a] and \
                len(shared.get((b, a), ())) >= SHARED * scenes.get(b, 1):
            uf.union(a, b)

    groups = []
    for paths in uf.groups():
        stored = {r["path"]: r for r in
                  index.get([first_key[p] for p in paths], (IMAGE_VECTOR,)).values()}
        ref = np.asarray(stored[paths[0]][IMAGE_VECTOR], np.float32)
        members = [Member(p, float(np.dot(ref, np.asarray(stored[p][IMAGE_VECTOR], np.float32))))
                   for p in paths if p in stored]
        members = members[:1] + sorted(members[1:], key=lambda m: (-m.score, m.path))
        groups.append(members)
    groups.sort(key=lambda g: (-len(g), g[0].path))
    return groups
