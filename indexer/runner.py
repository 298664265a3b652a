"""The one import runner: plan -> read -> map -> write, for every kind of importer.

After clip-retrieval's reader -> mapper -> writer -> runner. An importer (folders:
`indexer.pipeline.FolderImport`, catalogues: `indexer.catalog.CatalogImport`) supplies only
its own stages:

- `plan(index, summary)`: what to (re)read, which stored keys to remove, how many are
  unchanged, compared with the index (no picture is read here);
- `read(job)`: the picture, decoded and preprocessed (run in threads, in order, a bounded
  number ahead of the encoder: Pillow releases the GIL while decoding, so memory stays flat
  however large the folder), or BadPicture;
- `items(batch)`: the items to write for a batch of (job, picture), vectors encoded or kept
  from the stored row;
- `outcome(job, picture)`: whether the item counts as added, updated or unchanged;
- `failed(job, error)`: the summary's line for a picture that could not be read;
- `finish(job, stream)`: for a job whose `read` gave a stream of pictures (a video's scenes,
  indexer.videos) instead of one: called once they are all written, it says what the job
  counts as and any error line.

The runner writes after every batch (a killed run keeps what it finished and the next run
does only the rest), removes a stored item whose picture broke since, draws the terminal bar,
reports `on_progress(done, total)`, and seals the index at the end.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

from indexer.decode import Picture
from mmsearch.images import BadPicture
from mmsearch.index import Index
from mmsearch.items import Item


@dataclass
class Summary:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    errors: list[dict] = field(default_factory=list)
    ocr_failed: int = 0  # pictures indexed without their words: the OCR engine failed on them
    scenes: int = 0      # video scenes written (the videos count as added, updated, ...)

    @property
    def skipped(self) -> int:
        return len(self.errors)

    def to_json(self) -> dict:
        out = {"added": self.added, "updated": self.updated, "removed": self.removed,
               "unchanged": self.unchanged, "skipped": self.skipped, "errors": self.errors}
        if self.ocr_failed:  # only when it happened: an engine failure is rare
            out["ocr_failed"] = self.ocr_failed
        if self.scenes:
            out["scenes"] = self.scenes
        return out

    def line(self) -> str:
        text = (f"added {self.added}, updated {self.updated}, removed {self.removed}, "
                f"unchanged {self.unchanged}, skipped {self.skipped}")
        if self.errors:
            reasons: dict[str, int] = {}
            for e in self.errors:
                reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
            text += " (" + "; ".join(f"{n} {r}" for r, n in sorted(reasons.items())) + ")"
        if self.scenes:
            text += f"; {self.scenes} video scenes written"
        if self.ocr_failed:
            text += f"; words not read in {self.ocr_failed} (OCR failed; retried next run)"
        return text


@dataclass(frozen=True)
class Job:
    key: str                 # the item's key: a photo's path, a product's id
    path: str                # the picture to read
    known_hash: str | None   # the stored picture's content hash: same bytes, no decoding
    known: bool = False      # an item with this key is stored (it is updated, not added)
    row: object = field(default=None, compare=False)  # what the importer maps (a product)
    stored: tuple[str, ...] = field(default=(), compare=False)  # the keys stored for it now,
    # where those are not just `key` (a video's scenes)


@dataclass
class Plan:
    jobs: list[Job]
    removed: list[str]       # stored keys to remove
    unchanged: int
    extra_keys: int = 0      # keys in `removed` beyond one per file (a video's other scenes)


class Decoding:
    """For importers: the model's preprocessing and draft size, taken from the encoder once
    (loading the model), and kept by a reading-only copy (`for_reading`) that decode tasks on
    other machines get without the model or the index (indexer.ray_runner)."""

    def _decoding(self) -> tuple:
        if "_decode" not in self.__dict__:
            self._decode = (self.encoder.preprocess, 2 * self.encoder.image_size)
        return self._decode


class Importer(Protocol):
    unit: str
    desc: str

    def plan(self, index: Index, summary: Summary) -> Plan: ...
    def read(self, job: Job) -> Picture: ...
    def items(self, batch: list[tuple[Job, Picture]]) -> list[Item]: ...
    def outcome(self, job: Job, picture: Picture) -> str: ...
    def failed(self, job: Job, error: BadPicture) -> dict: ...
    def finish(self, job: Job, stream) -> tuple[str | None, dict | None]: ...


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


def count(summary: Summary, outcome: str | None) -> None:
    """Count one written item as its outcome: added, updated or unchanged (None: nothing)."""
    if outcome:
        setattr(summary, outcome, getattr(summary, outcome) + 1)


def unreadable(importer: Importer, index: Index, summary: Summary, job: Job,
               error: BadPicture) -> None:
    """A picture that could not be read: its line in the summary, and its stored item removed
    when it was indexed before (its picture no longer reads)."""
    summary.errors.append(importer.failed(job, error))
    if job.known:
        index.delete(job.stored or [job.key])
        summary.removed += 1


def run(importer: Importer, index: Index, *, batch_size: int = 32, workers: int | None = None, progress: bool = True,
        on_progress: Callable[[int, int], None] | None = None) -> Summary:
    """Plan, then read, map and write every job of `importer` into `index`."""
    from tqdm import tqdm

    summary = Summary()
    work = importer.plan(index, summary)
    index.delete(work.removed)
    summary.removed += len(work.removed) - work.extra_keys
    summary.unchanged += work.unchanged
    batch: list[tuple[Job, Picture]] = []

    def write() -> None:
        if batch:
            index.upsert(importer.items(batch))
            for job, picture in batch:
                count(summary, importer.outcome(job, picture))
            batch.clear()

    workers = workers or os.cpu_count() or 2
    bar = tqdm(total=len(work.jobs), unit=importer.unit, desc=importer.desc,
               disable=not progress, dynamic_ncols=True, leave=False)
    if on_progress:
        on_progress(0, len(work.jobs))
    try:
        stream = decode_ahead(work.jobs, importer.read, workers, ahead=2 * batch_size + workers)
        for done, (job, result) in enumerate(stream, 1):
            if isinstance(result, BadPicture):
                unreadable(importer, index, summary, job, result)
            elif isinstance(result, Picture):
                batch.append((job, result))
                if len(batch) >= batch_size:
                    write()
            else:  # a stream of pictures from one file (a video's scenes), written as found
                for picture in result:
                    batch.append((job, picture))
                    if len(batch) >= batch_size:
                        write()
                write()  # its last item (the mark that it is whole) is stored before `finish`
                outcome, error = importer.finish(job, result)
                count(summary, outcome)
                if error:
                    summary.errors.append(error)
            bar.update(1)
            if on_progress:
                on_progress(done, len(work.jobs))
        write()
    finally:
        bar.close()
    index.flush()
    index.mark_indexed()
    return summary
