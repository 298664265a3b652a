"""Index folders incrementally: the folder importer's plan, read and map stages.

`FolderImport` compares the folders with the index (what is new, changed, gone or merely
touched), reads each picture (decoded only when its bytes changed) and turns a batch into
items (vectors encoded, or kept from the stored row when only the mtime moved);
`indexer.runner.run` drives it. `index_paths` is the whole of it in one call.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

import numpy as np

from indexer.decode import Picture, read_facts, read_picture
from indexer.runner import Job, Plan, Summary, run
from indexer.walk import find_pictures, roots_of
from mmsearch.config import Shard
from mmsearch.encoder import Encoder
from mmsearch.images import BadPicture, enable_heif
from mmsearch.index import IMAGE_VECTOR, Index
from mmsearch.items import Item, item_id
from mmsearch.photo_text import SIGNALS_VERSION, photo_fields

# Job.row of a stored photo whose file is unchanged but whose text is older than
# SIGNALS_VERSION: its text is derived again, nothing decoded or embedded.
REFRESH = "refresh"


def plan(roots: list[str], index: Index, shard: Shard = Shard()) -> Plan:
    """Compare the folders with the index: what to (re)read, what to drop, what to leave.
    With a shard, only its share of the files is considered (and only its rows removed)."""
    jobs: list[Job] = []
    removed: list[str] = []
    unchanged = 0
    for root in roots:
        rows = index.rows_under(root) if os.path.isdir(root) else \
            index.get([root], ("size", "mtime", "hash", "fields")).values()
        known = {r["path"]: r for r in rows if shard.owns(item_id(r["path"]))}
        for path in find_pictures(root):
            if not shard.owns(item_id(path)):
                continue
            row = known.pop(path, None)
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished between listing and stat: it is simply not there
            same = bool(row) and row["size"] == st.st_size and row["mtime"] == st.st_mtime
            if same and (row.get("fields") or {}).get("signals") == SIGNALS_VERSION:
                unchanged += 1
            elif same:
                jobs.append(Job(path, path, row["hash"], known=True, row=REFRESH))
            else:
                jobs.append(Job(path, path, row["hash"] if row else None, known=row is not None))
        removed.extend(known)
    return Plan(jobs, removed, unchanged)


class FolderImport:
    """The folder importer (see indexer.runner): pictures under `paths`, one item each."""

    unit, desc = "img", "indexing"

    def __init__(self, paths: Iterable[str], encoder: Encoder, shard: Shard = Shard()):
        self.roots = roots_of(paths)
        self.encoder = encoder
        self.shard = shard
        self.index: Index | None = None

    def plan(self, index: Index, summary: Summary) -> Plan:
        self.index = index
        for root in self.roots:
            if not os.path.exists(root):
                summary.errors.append({"path": root, "reason": "no such file or folder"})
        roots = [r for r in self.roots if os.path.exists(r)]
        enable_heif()
        work = plan(roots, index, self.shard)
        index.add_roots([r if os.path.isdir(r) else os.path.dirname(r) for r in roots])
        if work.jobs:  # an unchanged re-scan never loads the model; this one loads it here,
            # in this thread, before `read` runs in several
            self._decoding()
        return work

    def _decoding(self) -> tuple:
        if "_decode" not in self.__dict__:
            self._decode = (self.encoder.preprocess, 2 * self.encoder.image_size)
        return self._decode

    def read(self, job: Job) -> Picture:
        if job.row == REFRESH:
            return read_facts(job.path, job.known_hash)
        return read_picture(job.path, *self._decoding(), job.known_hash)

    def root_of(self, path: str) -> str:
        """The indexed folder (or file) `path` was found under: its words start there."""
        inside = [r for r in self.roots if path == r or path.startswith(r.rstrip(os.sep) + os.sep)]
        return max(inside, key=len) if inside else os.path.dirname(path)

    def items(self, batch: list[tuple[Job, Picture]]) -> list[Item]:
        fresh = [p for _, p in batch if p.pixels is not None]
        touched = [p for _, p in batch if p.pixels is None]
        items = []
        if fresh:
            import torch  # here: a re-scan with nothing new never imports it (3 s)

            vectors = self.encoder.encode_pixels(torch.stack([p.pixels for p in fresh]))
            items += [self._item(p, v) for p, v in zip(fresh, vectors)]
        if touched:
            # Same content, new mtime (copied, touched): keep the vector, refresh the row.
            old = self.index.get([p.path for p in touched],
                                 ("width", "height", "taken", IMAGE_VECTOR))
            for p in touched:
                if p.path in old:
                    p.width, p.height = old[p.path]["width"], old[p.path]["height"]
                    p.taken = old[p.path]["taken"]
                    items.append(self._item(p, np.asarray(old[p.path][IMAGE_VECTOR],
                                                          np.float32)))
        return items

    def _item(self, p: Picture, vector: np.ndarray) -> Item:
        return Item(path=p.path, size=p.size, mtime=p.mtime, hash=p.hash, width=p.width,
                    height=p.height, taken=p.taken, image_vector=vector,
                    fields=photo_fields(p.path, self.root_of(p.path), p.camera, p.gps))

    @staticmethod
    def outcome(job: Job, picture: Picture) -> str:
        if picture.pixels is None:
            return "unchanged"
        return "updated" if job.known else "added"

    @staticmethod
    def failed(job: Job, error: BadPicture) -> dict:
        return {"path": job.path, "reason": str(error)}


def index_paths(paths: Iterable[str], index: Index, encoder: Encoder, batch_size: int = 32,
                workers: int | None = None, progress: bool = True,
                on_progress: Callable[[int, int], None] | None = None,
                shard: Shard = Shard()) -> Summary:
    """Bring the index in line with the pictures under `paths`. Returns what changed.

    `progress` draws a terminal bar; `on_progress(done, total)` is called as pictures are
    read (the app's progress bar)."""
    return run(FolderImport(paths, encoder, shard), index, batch_size=batch_size,
               workers=workers, progress=progress, on_progress=on_progress)
