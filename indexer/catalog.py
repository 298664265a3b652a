"""Import a product catalogue (JSON Lines or CSV) as items of a catalogue index, incrementally.

`read_catalog` reads the file (rows, with one-line errors per bad row); `CatalogImport` is
its importer for `indexer.runner`: plan (what changed since the last import) -> read the
pictures that changed -> encode what changed -> write in batches. New ids are
added, rows whose picture or text changed are updated (only the changed half is re-embedded),
ids gone from the file are removed; the summary has the same keys as folder indexing.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from indexer.decode import Picture, read_picture
from indexer.runner import Decoding, Job, Plan, Summary, run
from mmsearch.index import IMAGE_VECTOR, TEXT_VECTOR, Index
from mmsearch.items import MAX_ID, Item, text_hash
from mmsearch.encoder import Encoder
from mmsearch.images import BadPicture, enable_heif

REQUIRED = ("id", "image")
KNOWN = ("id", "image", "title", "description")


@dataclass
class CatalogRow:
    row: int            # 1-based line (JSONL) or data row (CSV) number, for messages
    id: str
    image: str          # absolute path
    title: str = ""
    description: str = ""
    fields: dict = field(default_factory=dict)
    allowed: bool = True  # False: its picture lies outside the folders this import may read


def _number(text: str):
    """CSV cells that are numbers become numbers ("199000" -> 199000, "4.5" -> 4.5)."""
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:
        value = float(t)
    except ValueError:
        return text
    return value if value == value and abs(value) != float("inf") else text


def _records(path: Path):
    """(row number, dict or error text) for each row of a .jsonl/.json or .csv file."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            for n, rec in enumerate(csv.DictReader(f), 1):
                if None in rec:
                    yield n, "more cells than columns"
                    continue
                yield n, {k.strip(): _number(v) if isinstance(v, str) and k.strip() not in KNOWN
                          else (v or "") for k, v in rec.items() if k}
        return
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, f"not valid JSON ({exc.msg})"
                continue
            yield n, rec if isinstance(rec, dict) else "not a JSON object"


def _inside(path: str, folders: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return any(real == f or real.startswith(f.rstrip(os.sep) + os.sep)
               for f in (os.path.realpath(g) for g in folders))


def read_catalog(path: str | Path, picture_roots: tuple[str, ...] | None = None
                 ) -> tuple[list[CatalogRow], list[dict]]:
    """The valid rows and, one per bad row, {"path", "row", "reason"}. With `picture_roots`
    (imports asked for over HTTP) a row whose picture does not resolve inside one of those
    folders is marked not `allowed`: the import reports it as missing (so a caller cannot
    learn what exists elsewhere) and leaves the item's stored row as it was."""
    path = Path(path).expanduser().resolve()
    try:
        records = list(_records(path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read the catalogue {path}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    rows: list[CatalogRow] = []
    errors: list[dict] = []
    first_row: dict[str, int] = {}
    for n, rec in records:
        def bad(reason: str, n: int = n) -> None:
            errors.append({"path": str(path), "row": n, "reason": reason})

        if isinstance(rec, str):
            bad(rec)
            continue
        item_id = str(rec.get("id", "")).strip()
        if not item_id or rec.get("id") is None:
            bad("missing id")
            continue
        if len(item_id) > MAX_ID:
            bad(f"id {item_id[:40]!r}... is longer than {MAX_ID} characters")
            continue
        if item_id in first_row:
            bad(f"duplicate id {item_id!r} (first on row {first_row[item_id]})")
            continue
        first_row[item_id] = n
        image = str(rec.get("image") or "").strip()
        if not image:
            bad(f"item {item_id!r} has no image")
            continue
        image = os.path.normpath(os.path.join(path.parent, os.path.expanduser(image)))
        rows.append(CatalogRow(n, item_id, image, str(rec.get("title") or ""),
                               str(rec.get("description") or ""),
                               {k: v for k, v in rec.items() if k not in KNOWN},
                               picture_roots is None or _inside(image, picture_roots)))
    return rows, errors


@dataclass(frozen=True)
class _Change:
    item: CatalogRow
    new_image: bool        # the picture must be (re)read
    new_text: bool         # the title or description changed: its text vector is encoded again


class CatalogImport(Decoding):
    """The catalogue importer (see indexer.runner): the items of one catalogue file."""

    unit, desc = "item", "importing"

    def __init__(self, file: str | Path, encoder: Encoder,
                 picture_roots: tuple[str, ...] | None = None):
        self.file = file
        self.source = str(Path(file).expanduser().resolve())
        self.encoder = encoder
        self.picture_roots = picture_roots
        self.index: Index | None = None

    def plan(self, index: Index, summary: Summary) -> Plan:
        """Items of other catalogue files in the same index are never touched; a file with no
        valid row changes nothing (CatalogFileError; it is not added to the index's list)."""
        self.index = index
        items, errors = read_catalog(self.file, self.picture_roots)
        summary.errors.extend(errors)
        if not any(it.allowed for it in items):
            first = errors[0] if errors else \
                {"row": items[0].row, "reason": f"item {items[0].id!r}: no such picture"} \
                if items else None
            why = f" (row {first['row']}: {first['reason']})" if first else " (it is empty)"
            raise CatalogFileError(f"{Path(self.source).name} has no valid catalogue row{why}; "
                                   "nothing was changed")
        enable_heif()
        fields = ["path", "hash", "text_hash", "size", "mtime", "source"]
        known = index.rows_from(self.source, fields)
        others = index.get([it.id for it in items if it.id not in known], fields)
        listed = {it.id for it in items}
        jobs, unchanged = [], 0
        for it in items:
            if it.id in others:  # an item of another catalogue file: never taken over
                summary.errors.append({"path": it.image, "row": it.row, "reason":
                                       f"id {it.id!r} belongs to another catalogue "
                                       f"({Path(others[it.id]['source']).name or 'unknown'})"})
                continue
            prev = known.get(it.id)
            if not it.allowed:  # told apart from a missing picture nowhere but here: kept as is
                summary.errors.append({"path": it.image, "row": it.row,
                                       "reason": f"item {it.id!r}: no such picture"})
                continue
            try:
                st = os.stat(it.image)
            except OSError:
                summary.errors.append({"path": it.image, "row": it.row,
                                       "reason": f"item {it.id!r}: no such picture"})
                listed.discard(it.id)  # its old row goes: the item has no picture now
                continue
            same_path = bool(prev) and prev["path"] == it.image
            same_image = same_path and prev["size"] == st.st_size and prev["mtime"] == st.st_mtime
            same_text = bool(prev) and prev["text_hash"] == text_hash(it.title, it.description,
                                                                      it.fields)
            if same_image and same_text:
                unchanged += 1
            else:
                jobs.append(Job(it.id, it.image, prev["hash"] if same_path else None,
                                known=prev is not None,
                                row=_Change(it, not same_image, not same_text)))
        index.add_catalog(self.source)
        index.add_roots(_picture_folders([it for it in items if it.allowed]))
        return Plan(jobs, [i for i in known if i not in listed], unchanged)

    def for_reading(self) -> "CatalogImport":
        """A copy that only reads (for decode tasks on other machines): the model's
        preprocessing and draft size, without the model or the index."""
        copy = CatalogImport(self.source, None, self.picture_roots)
        copy._decode = self._decoding()
        return copy

    def read(self, job: Job) -> Picture:
        if not job.row.new_image:
            return Picture(job.path, 0, 0.0, job.known_hash)
        return read_picture(job.path, *self._decoding(), job.known_hash)

    def items(self, batch: list[tuple[Job, Picture]]) -> list[Item]:
        """Only the half that changed is encoded again; the other comes from the stored row."""
        stored = self.index.get([j.key for j, p in batch
                                 if j.known and (p.pixels is None or not j.row.new_text)],
                                (IMAGE_VECTOR, TEXT_VECTOR))
        fresh = [(j, p) for j, p in batch if p.pixels is not None]
        image_vecs = {}
        if fresh:
            import torch

            image_vecs = dict(zip([j.key for j, _ in fresh], self.encoder.encode_pixels(
                torch.stack([p.pixels for _, p in fresh]))))
        retitled = [j for j, _ in batch if j.row.new_text]
        text_vecs = dict(zip([j.key for j in retitled], self.encoder.encode_texts(
            [_title_text(j.row.item) for j in retitled]))) if retitled else {}
        items = []
        for job, pic in batch:
            it, old = job.row.item, stored.get(job.key, {})
            st = os.stat(it.image) if pic.size == 0 else None
            items.append(Item(
                it.image, size=st.st_size if st else pic.size,
                mtime=st.st_mtime if st else pic.mtime, hash=pic.hash, key=it.id,
                title=it.title, description=it.description, fields=it.fields,
                source=self.source,
                image_vector=image_vecs.get(it.id, old.get(IMAGE_VECTOR)),
                text_vector=text_vecs.get(it.id, old.get(TEXT_VECTOR))))
        return items

    @staticmethod
    def outcome(job: Job, picture: Picture) -> str:
        return "updated" if job.known else "added"

    @staticmethod
    def failed(job: Job, error: BadPicture) -> dict:
        return {"path": job.path, "row": job.row.item.row,
                "reason": f"item {job.key!r}: {error}"}


def import_catalog(file: str | Path, index: Index, encoder: Encoder, batch_size: int = 32,
                   workers: int | None = None, progress: bool = True,
                   on_progress: Callable[[int, int], None] | None = None,
                   picture_roots: tuple[str, ...] | None = None) -> Summary:
    """Bring the items that came from `file` in line with it (see CatalogImport.plan)."""
    return run(CatalogImport(file, encoder, picture_roots), index, batch_size=batch_size,
               workers=workers, progress=progress, on_progress=on_progress)


class CatalogFileError(ValueError):
    """A catalogue file that cannot be imported at all; nothing in the index was changed."""


def _picture_folders(items: list[CatalogRow]) -> list[str]:
    """The folders holding the items' pictures, nested ones folded: where the app may make
    previews from (mmsearch.thumbnails)."""
    folders: list[str] = []
    for folder in sorted({os.path.dirname(it.image) for it in items}):
        if not any(folder == f or folder.startswith(f.rstrip(os.sep) + os.sep) for f in folders):
            folders.append(folder)
    # pictures spread over many folders: their common folder (the index keeps its roots in
    # one meta row; previews also need the indexed content hash, so nothing else is served)
    return folders if len(folders) <= 100 else [os.path.commonpath(folders)]


def _title_text(item: CatalogRow) -> str:
    """What the CLIP text vector of an item embeds (the tokenizer cuts it at 77 tokens)."""
    return f"{item.title}. {item.description}" if item.description else item.title
