"""Index folders incrementally: the folder importer's plan, read and map stages.

`FolderImport` compares the folders with the index (what is new, changed, gone or merely
touched), reads each picture (decoded only when its bytes changed) and turns a batch into
items (vectors encoded, or kept from the stored row when only the mtime moved);
`indexer.runner.run` drives it. `index_paths` is the whole of it in one call.

Words in the picture (OCR, mmsearch.ocr): with a reader, each picture whose content is read
also has its printed words read, stored as fields["words"] with fields["ocr"] = 1 ("text was
read", also when none was found). A stored photo without that mark gets its words on the next
run with OCR on, decoded small for it and never embedded again; a run with OCR off keeps the
words of unchanged photos and marks nothing.

Videos (indexer.videos): with `video` on, each video under the folders is read as a stream of
scenes, one item each, through the same runner; with it off, stored videos are left as they are.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator

import numpy as np

from indexer.decode import Picture, read_facts, read_for_words, read_picture
from indexer.runner import Decoding, Job, Plan, Summary, run
from indexer.videos import SceneStream, VideoWork, finish, open_video, plan_videos
from indexer.walk import find_pictures, roots_of, would_find
from mmsearch.config import Shard
from mmsearch.encoder import Encoder
from mmsearch.images import BadPicture, enable_heif
from mmsearch.filters import MEDIA, VIDEO, is_scene, under_folder
from mmsearch.index import IMAGE_VECTOR, Index
from mmsearch.items import Item, item_id
from mmsearch.photo_text import SIGNALS_VERSION, photo_fields

# Job.row of a stored photo whose file is unchanged but whose text is older than
# SIGNALS_VERSION: its text is derived again, nothing decoded or embedded.
REFRESH = "refresh"
# Job.row of a stored photo whose words were never read, on a run with OCR on. READ_WORDS: its
# file is unchanged (as for REFRESH), so it is decoded small for its words only and nothing is
# embedded; NO_WORDS: its file changed, and if its bytes are the same all the same, likewise.
READ_WORDS, NO_WORDS = "read-words", "no-words"
OCR_DONE, OCR_WORDS = "ocr", "words"   # the fields: text was read; the words read


def plan(roots: list[str], index: Index, shard: Shard = Shard(), ocr: bool = False) -> Plan:
    """Compare the folders with the index: what to (re)read, what to drop, what to leave.
    With a shard, only its share of the files is considered (and only its rows removed).
    With `ocr`, a stored photo whose words were never read is read again for them."""
    jobs: list[Job] = []
    removed: list[str] = []
    unchanged = 0
    for root in roots:
        rows = index.rows_under(root) if os.path.isdir(root) else \
            index.get([root], PLAN_FIELDS).values()
        known = {r["path"]: r for r in rows
                 if shard.owns(item_id(r["path"])) and not is_scene(r)}
        for path in find_pictures(root):
            if not shard.owns(item_id(path)):
                continue
            row = known.pop(path, None)
            job = decide(path, row, ocr)
            if job is UNCHANGED:
                unchanged += 1
            elif job is not None:
                jobs.append(job)
        removed.extend(known)
    return Plan(jobs, removed, unchanged)


PLAN_FIELDS = ("size", "mtime", "hash", "fields")
UNCHANGED = Job("", "", None)  # decide's answer for a file the index already holds as it is


def decide(path: str, row: dict | None, ocr: bool) -> Job | None:
    """One file against its stored row (None: not indexed): its Job, UNCHANGED, or None when
    it vanished before it could be looked at (it is simply not there)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    same = bool(row) and row["size"] == st.st_size and row["mtime"] == st.st_mtime
    fields = (row or {}).get("fields") or {}
    need_words = ocr and bool(row) and not fields.get(OCR_DONE)
    if same and fields.get("signals") == SIGNALS_VERSION and not need_words:
        return UNCHANGED
    if same:
        return Job(path, path, row["hash"], known=True, row=READ_WORDS if need_words else REFRESH)
    return Job(path, path, row["hash"] if row else None, known=row is not None,
               row=NO_WORDS if need_words else None)


def plan_windows(roots: list[str], index: Index, shard: Shard = Shard(), ocr: bool = False,
                 window: int = 10_000) -> Iterator[Plan]:
    """`plan`, streamed: Plans of at most `window` files each, so memory stays flat however
    large the folders (the cluster runner plans 100M files this way). Each window's files are
    looked up by key (a Milvus server finds a key by its primary-key index; Milvus Lite scans,
    which is why the single-machine `plan` reads a folder's rows once instead); the stored
    rows that `find_pictures` would no longer find are streamed afterwards as removals."""
    for root in roots:
        chunk: list[str] = []
        for path in find_pictures(root):
            if shard.owns(item_id(path)):
                chunk.append(path)
            if len(chunk) >= window:
                yield _plan_chunk(chunk, index, ocr)
                chunk = []
        if chunk:
            yield _plan_chunk(chunk, index, ocr)
        if os.path.isdir(root):
            gone: list[str] = []
            for row in index.iter_rows(("path", "fields"), under_folder(root)):
                if shard.owns(item_id(row["path"])) and not is_scene(row) and \
                        not would_find(row["path"], root):
                    gone.append(row["path"])
                if len(gone) >= window:
                    yield Plan([], gone, 0)
                    gone = []
            if gone:
                yield Plan([], gone, 0)


def _plan_chunk(paths: list[str], index: Index, ocr: bool) -> Plan:
    rows = index.get(paths, PLAN_FIELDS)
    jobs, unchanged = [], 0
    for path in paths:
        job = decide(path, rows.get(path), ocr)
        if job is UNCHANGED:
            unchanged += 1
        elif job is not None:
            jobs.append(job)
    return Plan(jobs, [], unchanged)


class FolderImport(Decoding):
    """The folder importer (see indexer.runner): pictures under `paths`, one item each."""

    unit, desc = "img", "indexing"

    def __init__(self, paths: Iterable[str], encoder: Encoder, shard: Shard = Shard(),
                 reader=None, video: bool = True):
        self.roots = roots_of(paths)
        self.encoder = encoder
        self.shard = shard
        self.reader = reader  # a mmsearch.ocr.TextReader, or None: OCR off
        self.video = video    # videos too (their scenes), or leave them be
        self.index: Index | None = None
        self.summary: Summary | None = None

    def prepare(self, index: Index, summary: Summary) -> list[str]:
        """Before planning: the roots that exist (a missing one is the summary's line),
        recorded as the index's folders."""
        self.index, self.summary = index, summary
        for root in self.roots:
            if not os.path.exists(root):
                summary.errors.append({"path": root, "reason": "no such file or folder"})
        roots = [r for r in self.roots if os.path.exists(r)]
        enable_heif()
        index.add_roots([r if os.path.isdir(r) else os.path.dirname(r) for r in roots])
        return roots

    def plan(self, index: Index, summary: Summary) -> Plan:
        roots = self.prepare(index, summary)
        work = plan(roots, index, self.shard, ocr=self.reader is not None)
        if self.video:
            videos = plan_videos(roots, index, self.shard)
            work = Plan(work.jobs + videos.jobs, work.removed + videos.removed,
                        work.unchanged + videos.unchanged, videos.extra_keys)
        if any(j.row not in (REFRESH, READ_WORDS) for j in work.jobs):
            # an unchanged re-scan never loads the model (nor one that only derives text or
            # reads words); this one loads it here, in this thread, before `read` runs in several
            self._decoding()
        return work

    def for_reading(self) -> "FolderImport":
        """A copy that only reads (for decode workers on other machines): the model's
        preprocessing, its draft size and the OCR reader, without the model or the index.
        Pictures only: a cluster run leaves videos as they are (`plan_windows`)."""
        copy = FolderImport(self.roots, None, self.shard, self.reader, video=False)
        copy._decode = self._decoding()
        return copy

    def read(self, job: Job) -> Picture | SceneStream:
        if isinstance(job.row, VideoWork):
            return open_video(job, self._decoding()[0], self.index)
        if job.row == REFRESH:
            return read_facts(job.path, job.known_hash)
        if job.row == READ_WORDS:
            return read_for_words(job.path, job.known_hash, self.reader)
        return read_picture(job.path, *self._decoding(), job.known_hash, self.reader,
                            words_known=job.row != NO_WORDS)

    def root_of(self, path: str) -> str:
        """The indexed folder (or file) `path` was found under: its words start there."""
        inside = [r for r in self.roots if path == r or path.startswith(r.rstrip(os.sep) + os.sep)]
        return max(inside, key=len) if inside else os.path.dirname(path)

    def items(self, batch: list[tuple[Job, Picture]]) -> list[Item]:
        fresh = [p for _, p in batch if p.pixels is not None]
        touched = [p for _, p in batch if p.pixels is None]
        if self.summary is not None:
            self.summary.ocr_failed += sum(1 for _, p in batch if p.ocr_error)
        items = []
        if fresh:
            import torch  # here: a re-scan with nothing new never imports it (3 s)

            vectors = self.encoder.encode_pixels(torch.stack([p.pixels for p in fresh]))
            items += [self._item(p, v) for p, v in zip(fresh, vectors)]
        if touched:
            # Same content, new mtime (copied, touched): keep the vector, refresh the row.
            # Same content: its words too, unless they were read just now.
            old = self.index.get([_key(p) for p in touched],
                                 ("width", "height", "taken", "fields", IMAGE_VECTOR))
            for p in touched:
                if _key(p) in old:
                    row = old[_key(p)]
                    p.width, p.height, p.taken = row["width"], row["height"], row["taken"]
                    stored = row.get("fields") or {}
                    if p.words is None and stored.get(OCR_DONE):
                        p.words = stored.get(OCR_WORDS, "")
                    items.append(self._item(p, np.asarray(row[IMAGE_VECTOR], np.float32)))
        return items

    def _item(self, p: Picture, vector: np.ndarray) -> Item:
        fields = photo_fields(p.path, self.root_of(p.path), p.camera, p.gps)
        if p.scene is not None:  # a video's scene (the item shape: indexer.videos)
            fields |= {MEDIA: VIDEO, **{k: v for k, v in p.scene.items() if k != "key"}}
        if p.words is not None:  # read (this run or an earlier one), even if none was found
            fields[OCR_DONE] = 1
            if p.words:
                fields[OCR_WORDS] = p.words
        return Item(path=p.path, size=p.size, mtime=p.mtime, hash=p.hash, width=p.width,
                    height=p.height, taken=p.taken, image_vector=vector, fields=fields,
                    key=_key(p))

    @staticmethod
    def outcome(job: Job, picture: Picture) -> str:
        if picture.scene is not None:  # the video itself counts once, in `finish`
            return "scenes"
        if picture.pixels is None:  # same content (its text or words may be new, as REFRESH)
            return "unchanged"
        return "updated" if job.known else "added"

    @staticmethod
    def failed(job: Job, error: BadPicture) -> dict:
        return {"path": job.path, "reason": str(error)}

    def finish(self, job: Job, stream: SceneStream) -> tuple[str | None, dict | None]:
        return finish(job, stream, self.index)


def _key(p: Picture) -> str:
    return p.scene["key"] if p.scene is not None else p.path


def index_paths(paths: Iterable[str], index: Index, encoder: Encoder, batch_size: int = 32,
                workers: int | None = None, progress: bool = True,
                on_progress: Callable[[int, int], None] | None = None,
                shard: Shard = Shard(), ocr=True, video: bool = True) -> Summary:
    """Bring the index in line with the pictures under `paths`. Returns what changed.

    `progress` draws a terminal bar; `on_progress(done, total)` is called as pictures are
    read (the app's progress bar). `ocr`: True reads the words in pictures when the engine
    is installed (the default everywhere: CLI, app, JSON API), False does not, or a
    mmsearch.ocr.TextReader to read with. `video`: videos become scenes (indexer.videos)."""
    if ocr is True:
        from mmsearch.ocr import default_reader

        ocr = default_reader()
    reader = ocr or None
    return run(FolderImport(paths, encoder, shard, reader, video), index, batch_size=batch_size,
               workers=workers, progress=progress, on_progress=on_progress)
