"""Index folders incrementally: plan (what changed) -> decode -> encode -> write.

Decoding runs in a pool of threads (Pillow releases the GIL while decoding and resizing)
that stays a bounded number of pictures ahead of the encoder, so memory stays flat however
large the folder. Rows are written after every batch: a killed run keeps what it finished
and the next run does only the rest.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from indexer.decode import BadPicture, Picture, enable_heif, read_picture
from indexer.walk import find_pictures, roots_of
from mmsearch.encoder import Encoder
from mmsearch.config import Shard
from mmsearch.index import IMAGE_VECTOR, Index
from mmsearch.items import Item, item_id


@dataclass
class Summary:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    errors: list[dict] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.errors)

    def to_json(self) -> dict:
        return {"added": self.added, "updated": self.updated, "removed": self.removed,
                "unchanged": self.unchanged, "skipped": self.skipped, "errors": self.errors}

    def line(self) -> str:
        text = (f"added {self.added}, updated {self.updated}, removed {self.removed}, "
                f"unchanged {self.unchanged}, skipped {self.skipped}")
        if self.errors:
            reasons: dict[str, int] = {}
            for e in self.errors:
                reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
            text += " (" + "; ".join(f"{n} {r}" for r, n in sorted(reasons.items())) + ")"
        return text


@dataclass(frozen=True)
class Job:
    path: str
    known_hash: str | None  # None: a new picture


@dataclass
class Plan:
    jobs: list[Job]
    removed: list[str]
    unchanged: int


def plan(roots: list[str], index: Index, shard: Shard = Shard()) -> Plan:
    """Compare the folders with the index: what to (re)read, what to drop, what to leave.
    With a shard, only its share of the files is considered (and only its rows removed)."""
    jobs: list[Job] = []
    removed: list[str] = []
    unchanged = 0
    for root in roots:
        rows = index.rows_under(root) if os.path.isdir(root) else index.get([root]).values()
        known = {r["path"]: r for r in rows if shard.owns(item_id(r["path"]))}
        for path in find_pictures(root):
            if not shard.owns(item_id(path)):
                continue
            row = known.pop(path, None)
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished between listing and stat: it is simply not there
            if row and row["size"] == st.st_size and row["mtime"] == st.st_mtime:
                unchanged += 1
            else:
                jobs.append(Job(path, row["hash"] if row else None))
        removed.extend(known)
    return Plan(jobs, removed, unchanged)


def decode_ahead(jobs: list[Job], read: Callable[[Job], Picture], workers: int,
                 ahead: int) -> Iterator[tuple[Job, Picture | BadPicture]]:
    """Run `read` over jobs in a thread pool, in order, at most `ahead` in flight."""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        pending: deque[tuple[Job, Future]] = deque()
        queue = iter(jobs)
        for job in queue:
            pending.append((job, pool.submit(read, job)))
            if len(pending) >= ahead:
                break
        while pending:
            job, fut = pending.popleft()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(read, nxt)))
            try:
                yield job, fut.result()
            except BadPicture as exc:
                yield job, exc


def run_jobs(jobs: list, read: Callable, take: Callable[[object, object], bool],
             write: Callable[[], None], index, *, workers: int | None, batch_size: int,
             unit: str, desc: str, progress: bool,
             on_progress: Callable[[int, int], None] | None) -> None:
    """The one indexing loop of every importer: read `jobs` ahead on `workers` threads,
    hand each (job, picture or BadPicture) to `take`, which keeps it and answers whether a
    batch is due; `write` stores what was kept (then, and once at the end). Draws the
    terminal bar, reports `on_progress(done, total)`, and seals the index when done."""
    from tqdm import tqdm

    workers = workers or os.cpu_count() or 2
    bar = tqdm(total=len(jobs), unit=unit, desc=desc, disable=not progress,
               dynamic_ncols=True, leave=False)
    try:
        stream = decode_ahead(jobs, read, workers, ahead=2 * batch_size + workers)
        for done, (job, result) in enumerate(stream, 1):
            if take(job, result):
                write()
            bar.update(1)
            if on_progress:
                on_progress(done, len(jobs))
        write()
    finally:
        bar.close()
    index.flush()
    index.mark_indexed()


def index_paths(paths: Iterable[str], index: Index, encoder: Encoder, batch_size: int = 32,
                workers: int | None = None, progress: bool = True,
                on_progress: Callable[[int, int], None] | None = None,
                shard: Shard = Shard()) -> Summary:
    """Bring the index in line with the pictures under `paths`. Returns what changed.

    `progress` draws a terminal bar; `on_progress(done, total)` is called as pictures are
    read (the app's progress bar)."""
    roots = roots_of(paths)
    summary = Summary()
    for root in roots:
        if not os.path.exists(root):
            summary.errors.append({"path": root, "reason": "no such file or folder"})
    roots = [r for r in roots if os.path.exists(r)]
    enable_heif()
    work = plan(roots, index, shard)
    index.delete(work.removed)
    summary.removed = len(work.removed)
    summary.unchanged = work.unchanged
    index.add_roots([r if os.path.isdir(r) else os.path.dirname(r) for r in roots])

    if work.jobs:  # an unchanged re-scan never loads the model
        preprocess, draft_size = encoder.preprocess, 2 * encoder.image_size

    def read(job: Job) -> Picture:
        return read_picture(job.path, preprocess, draft_size, job.known_hash)

    batch: list[tuple[Job, Picture]] = []
    touched: list[tuple[Job, Picture]] = []

    def flush() -> None:
        if batch:
            import torch  # here: a re-scan with nothing new never imports it (3 s)

            vectors = encoder.encode_pixels(torch.stack([p.pixels for _, p in batch]))
            index.upsert([_row(p, v) for (_, p), v in zip(batch, vectors)])
            for job, _ in batch:
                if job.known_hash is None:
                    summary.added += 1
                else:
                    summary.updated += 1
            batch.clear()
        if touched:
            # Same content, new mtime (copied, touched): keep the vector, refresh the row.
            old = index.get([p.path for _, p in touched],
                            ("width", "height", "taken", IMAGE_VECTOR))
            rows = []
            for _, p in touched:
                if p.path in old:
                    p.width, p.height = old[p.path]["width"], old[p.path]["height"]
                    p.taken = old[p.path]["taken"]
                    rows.append(_row(p, np.asarray(old[p.path][IMAGE_VECTOR], np.float32)))
            index.upsert(rows)
            summary.unchanged += len(touched)
            touched.clear()

    def take(job: Job, result: Picture | BadPicture) -> bool:
        if isinstance(result, BadPicture):
            summary.errors.append({"path": job.path, "reason": str(result)})
            if job.known_hash is not None:  # it was indexed, but is no longer readable
                index.delete([job.path])
        elif result.pixels is None:
            touched.append((job, result))
        else:
            batch.append((job, result))
        return len(batch) >= batch_size or len(touched) >= batch_size

    if on_progress:
        on_progress(0, len(work.jobs))
    run_jobs(work.jobs, read, take, flush, index, workers=workers, batch_size=batch_size,
             unit="img", desc="indexing", progress=progress, on_progress=on_progress)
    return summary


def _row(p: Picture, vector: np.ndarray) -> Item:
    return Item(path=p.path, size=p.size, mtime=p.mtime, hash=p.hash, width=p.width,
                height=p.height, taken=p.taken, image_vector=vector)
