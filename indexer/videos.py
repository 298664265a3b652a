"""Videos in the folder importer: each video is cut into scenes, each scene one item.

A video found under an indexed folder (mmsearch.video: its scenes, each with a start, an end
and a representative frame) becomes one item per scene, the same `Item` a photo is:

- key: `f"{path}#t={start:.2f}"` (a media fragment: the same file always gives the same
  scenes, so the same keys, and a resumed run overwrites instead of duplicating);
- path: the video's path; size, mtime and hash: the video file's; width, height: the video's;
  taken: the file's mtime; the picture vector: the scene's frame's;
- fields: the photo fields of its path (mmsearch.photo_text: name, folder words) and
  `{"media": "video", "time": start, "end": end}` (seconds); the video's last scene also
  holds `"scenes": N`, the number of its scenes: the mark that the video was written whole.

Incremental and crash-safe as pictures are: a video whose stored scenes all have its size and
mtime, and whose mark counts them all, is unchanged and not decoded. Any other stored video is
read again: same bytes (content hash) -> its scenes are rewritten from the stored vectors,
else it is decoded; its scenes are written in batches as they are found (a long video is never
held in memory), the mark last, and only then are its stored scenes that this run did not
write removed. A run killed half-way leaves a video without its mark, which the next run
redoes; its keys are the same, so nothing is duplicated. A video gone from disk loses its
scenes; a bad one is one line of the summary and loses only its own.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Callable, Iterator

from indexer.decode import Picture, read_failure
from indexer.runner import Job, Plan
from indexer.walk import find_videos
from mmsearch.config import Shard
from mmsearch.filters import IS_SCENE, quote, under_folder
from mmsearch.images import BadPicture
from mmsearch.items import file_content_hash, item_id
from mmsearch.moments import END, SCENES, TIME, scene_key


@dataclass(frozen=True)
class VideoWork:
    """Job.row of a video to read: how it stands in the index."""

    whole: bool  # its stored scenes are all there (marked), though its size or mtime moved


def stored_scenes(index, root: str) -> dict[str, list[dict]]:
    """The stored scenes of the videos under `root` (a folder or one file), by path."""
    where = under_folder(root) if os.path.isdir(root) else f"path == {quote(root)}"
    found: dict[str, list[dict]] = {}
    for row in index.iter_rows(("key", "path", "size", "mtime", "hash", "fields"),
                               f"({where}) and ({IS_SCENE})"):
        found.setdefault(row["path"], []).append(row)
    return found


def _whole(rows: list[dict]) -> bool:
    return any((r.get("fields") or {}).get(SCENES) == len(rows) for r in rows) and \
        len({r["hash"] for r in rows}) == 1


def plan_videos(roots: list[str], index, shard: Shard = Shard()) -> Plan:
    """The videos to (re)read, the stored scenes to remove, how many videos are unchanged."""
    jobs: list[Job] = []
    removed: list[str] = []
    unchanged = extra = 0
    for root in roots:
        known = {p: rows for p, rows in stored_scenes(index, root).items()
                 if shard.owns(item_id(p))}
        for path in find_videos(root):
            if not shard.owns(item_id(path)):
                continue
            rows = known.pop(path, [])
            try:
                st = os.stat(path)
            except OSError:
                continue
            whole = bool(rows) and _whole(rows)
            if whole and all(r["size"] == st.st_size and r["mtime"] == st.st_mtime for r in rows):
                unchanged += 1
                continue
            jobs.append(Job(path, path, rows[0]["hash"] if whole else None, known=bool(rows),
                            row=VideoWork(whole), stored=tuple(r["key"] for r in rows)))
        gone = [r["key"] for rows in known.values() for r in rows]
        removed.extend(gone)
        extra += len(gone) - len(known)
    return Plan(jobs, removed, unchanged, extra)


def file_hash(path: str) -> tuple[os.stat_result, str]:
    """The file's stat and content hash (mmsearch.items.file_content_hash)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise BadPicture("not a regular file")
        with open(path, "rb") as f:
            digest = file_content_hash(f)
    except OSError as exc:
        raise read_failure(exc) from None
    return st, digest


class SceneStream:
    """The scenes of one video as Pictures, found as they are iterated (indexer.runner writes
    them in batches). Each Picture's `scene` is {"key", "time", "end"}, the last one's also
    "scenes": N. Pictures of an unchanged content (`same`) carry no pixels: the runner's
    importer keeps their stored vectors. `error`: why decoding stopped early, if it did."""

    def __init__(self, job: Job, st: os.stat_result, digest: str, width: int, height: int,
                 preprocess: Callable, index, same: bool):
        self.job, self.st, self.hash = job, st, digest
        self.width, self.height = width, height
        self.preprocess, self.index, self.same = preprocess, index, same
        self.keys: set[str] = set()
        self.error = ""

    def _found(self) -> Iterator[tuple[float, float, object]]:
        """(start, end, preprocessed frame or None) of each scene, in time order."""
        from mmsearch.video import BadVideo, scenes

        if self.same:
            rows = self.index.get(self.job.stored, ("fields",)).values()
            for f in sorted((r["fields"] for r in rows), key=lambda f: f[TIME]):
                yield f[TIME], f[END], None
            return
        try:
            for scene in scenes(self.job.path):
                yield scene.start, scene.end, self.preprocess(scene.frame)
        except BadVideo as exc:
            self.error = str(exc)

    def __iter__(self) -> Iterator[Picture]:
        held = None  # one scene held back, so the last one can carry the mark
        count = 0
        for start, end, pixels in self._found():
            if held is not None:
                yield held
            count += 1
            held = self._picture(start, end, pixels)
        if held is not None:
            held.scene[SCENES] = count
            yield held

    def _picture(self, start: float, end: float, pixels) -> Picture:
        key = scene_key(self.job.path, start)
        self.keys.add(key)
        return Picture(self.job.path, self.st.st_size, self.st.st_mtime, self.hash,
                       self.width, self.height, taken=self.st.st_mtime, pixels=pixels,
                       scene={"key": key, TIME: round(float(start), 3),
                              END: round(float(end), 3)})


def open_video(job: Job, preprocess: Callable, index) -> SceneStream:
    """Hash and probe a video (in the runner's reading threads); BadPicture when it cannot be
    read as one. Its scenes are decoded as the stream is iterated."""
    from mmsearch.video import BadVideo, probe

    st, digest = file_hash(job.path)
    if st.st_size == 0:
        raise BadPicture("empty file")
    same = job.known_hash == digest and job.row.whole
    try:
        info = probe(job.path)
    except BadVideo as exc:
        raise BadPicture(str(exc)) from None
    return SceneStream(job, st, digest, info.width, info.height, preprocess, index, same)


def finish(job: Job, stream: SceneStream, index) -> tuple[str | None, dict | None]:
    """After a video's scenes are all written: remove its stored scenes this run did not
    write; (what it counts as, the summary's error line or None)."""
    stale = [k for k in job.stored if k not in stream.keys]
    index.delete(stale)
    error = {"path": job.path, "reason": stream.error} if stream.error else None
    if not stream.keys:
        return ("removed" if job.stored else None), error or \
            {"path": job.path, "reason": "no scenes found"}
    if error:
        error["reason"] += f" ({len(stream.keys)} scenes before it indexed)"
    if stream.same:
        return "unchanged", error
    return ("updated" if job.known else "added"), error
