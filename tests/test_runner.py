"""The import runner and each importer's stages on their own (indexer/runner.py): plan reads
no picture, read decodes only changed bytes, the mapper encodes only what changed, and the
runner writes a batch at a time, counts what happened and removes what broke. Real demo
pictures, the real model, a real Milvus Lite index."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from conftest import demo_files
from indexer import catalog as catalog_module
from indexer import pipeline
from indexer.catalog import CatalogImport
from indexer.pipeline import FolderImport, index_paths
from indexer.runner import Job, Plan, Summary, run
from mmsearch.config import IndexLocation
from mmsearch.images import BadPicture
from mmsearch.index import IMAGE_VECTOR, TEXT_VECTOR
from mmsearch.stores import open_index


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for f in demo_files(6):
        shutil.copy2(f, root / f.name)
    return root


def no_reading(*args, **kwargs):
    raise AssertionError("the plan read a picture")


def test_the_folder_plan_compares_without_reading_a_picture(folder, make_index, encoder,
                                                            monkeypatch):
    index = make_index()
    index_paths([str(folder)], index, encoder, progress=False)
    names = sorted(os.listdir(folder))
    os.remove(folder / names[0])                                     # gone
    Image.open(demo_files(20)[-1]).save(folder / names[1])           # new bytes
    later = time.time() + 50
    os.utime(folder / names[2], (later, later))                      # touched only
    shutil.copy2(demo_files(21)[-1], folder / "new.png")             # new
    monkeypatch.setattr(pipeline, "read_picture", no_reading)
    work = FolderImport([str(folder)], encoder).plan(index, Summary())
    assert work.removed == [str(folder / names[0])] and work.unchanged == 3
    jobs = {os.path.basename(j.path): j for j in work.jobs}
    assert set(jobs) == {names[1], names[2], "new.png"}
    assert jobs[names[1]].known and jobs[names[2]].known and not jobs["new.png"].known
    assert jobs[names[2]].known_hash and jobs["new.png"].known_hash is None


def test_folder_read_decodes_only_changed_bytes(folder, make_index, encoder):
    index = make_index()
    importer = FolderImport([str(folder)], encoder)
    work = importer.plan(index, Summary())
    first = importer.read(work.jobs[0])
    assert first.pixels is not None and first.width == first.height == 112  # demo pictures
    same = importer.read(Job(first.path, first.path, first.hash, known=True))
    assert same.pixels is None and same.hash == first.hash  # same bytes: not decoded
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(BadPicture):
        importer.read(Job(str(folder / "broken.jpg"), str(folder / "broken.jpg"), None))


def test_the_folder_mapper_encodes_new_pictures_and_keeps_touched_vectors(folder, make_index,
                                                                          encoder):
    index = make_index()
    index_paths([str(folder)], index, encoder, progress=False)
    importer = FolderImport([str(folder)], encoder)
    importer.plan(index, Summary())
    path = sorted(str(p) for p in folder.iterdir())[0]
    stored = index.get([path], (IMAGE_VECTOR,))[path][IMAGE_VECTOR]
    fresh = importer.read(Job(path, path, None))
    touched = importer.read(Job(path, path, fresh.hash, known=True))
    new_item, kept = importer.items([(Job(path, path, None), fresh),
                                     (Job(path, path, fresh.hash, known=True), touched)])
    expected = encoder.encode_images([Image.open(path).convert("RGB")])[0]
    assert float(np.dot(new_item.image_vector, expected)) > 0.999
    assert np.array_equal(np.asarray(kept.image_vector, np.float32),
                          np.asarray(stored, np.float32))
    assert (importer.outcome(Job(path, path, None), fresh),
            importer.outcome(Job(path, path, fresh.hash, known=True), touched)) == \
        ("added", "unchanged")


class ListImport:
    """A made-up importer over given pictures: the runner's contract, nothing else."""

    unit, desc = "pic", "testing"

    def __init__(self, encoder, jobs, removed=()):
        self.encoder, self.jobs, self.removed, self.batches = encoder, jobs, list(removed), []

    def plan(self, index, summary):
        return Plan(self.jobs, self.removed, 1)

    def read(self, job):
        return pipeline.read_picture(job.path, self.encoder.preprocess,
                                     2 * self.encoder.image_size, job.known_hash)

    def items(self, batch):
        self.batches.append(len(batch))
        return FolderImport([], self.encoder).items(batch)

    def outcome(self, job, picture):
        return "updated" if job.known else "added"

    def failed(self, job, error):
        return {"path": job.path, "reason": str(error)}


def test_the_runner_writes_in_batches_counts_and_removes_what_broke(folder, make_index,
                                                                   encoder):
    index = make_index()
    paths = sorted(str(p) for p in folder.iterdir())
    index_paths([paths[0], paths[1]], index, encoder, progress=False)
    (folder / "broken.jpg").write_bytes(b"not a picture")
    os.replace(folder / "broken.jpg", paths[1])  # an indexed picture that broke since
    jobs = [Job(p, p, None) for p in paths[2:]] + [Job(paths[1], paths[1], None, known=True)]
    importer = ListImport(encoder, jobs, removed=[paths[0]])
    seen = []
    summary = run(importer, index, batch_size=3, progress=False,
                  on_progress=lambda done, total: seen.append((done, total)))
    assert importer.batches == [3, 1]  # a write every 3 pictures, then the rest
    assert (summary.added, summary.updated, summary.removed, summary.unchanged,
            summary.skipped) == (4, 0, 2, 1, 1)
    assert summary.errors[0]["path"] == paths[1]
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)
    assert set(index.get(paths, ("hash",))) == set(paths[2:])  # removed and broken are gone
    assert index.last_indexed is not None


def test_the_catalogue_plan_sends_only_the_changed_half(tmp_path, encoder, monkeypatch):
    (tmp_path / "img").mkdir()
    rows = []
    for i, f in enumerate(demo_files(3)):
        shutil.copy2(f, tmp_path / "img" / f.name)
        rows.append({"id": f"A{i}", "image": f"img/{f.name}", "title": f"Tas {i}", "price": i})
    shop = tmp_path / "shop.jsonl"
    shop.write_text("".join(json.dumps(r) + "\n" for r in rows))
    index = open_index(IndexLocation.resolve(db=tmp_path / "c.db"), model=encoder.spec,
                       create_model=encoder.spec, dim=encoder.dim, kind="catalog")
    try:
        run(CatalogImport(shop, encoder), index, progress=False)
        before = index.get(["A0"], (IMAGE_VECTOR, TEXT_VECTOR))["A0"]
        rows[0]["title"] = "Tas Kulit Baru"
        shop.write_text("".join(json.dumps(r) + "\n" for r in rows))
        monkeypatch.setattr(catalog_module, "read_picture", no_reading)
        importer = CatalogImport(shop, encoder)
        work = importer.plan(index, Summary())
        assert work.unchanged == 2 and not work.removed and len(work.jobs) == 1
        job = work.jobs[0]
        assert (job.key, job.known, job.row.new_image, job.row.new_text) == \
            ("A0", True, False, True)
        (item,) = importer.items([(job, importer.read(job))])  # no picture read here either
        assert np.allclose(item.image_vector, before[IMAGE_VECTOR])
        assert not np.allclose(item.text_vector, before[TEXT_VECTOR])
        assert item.title == "Tas Kulit Baru" and item.fields == {"price": 0}
    finally:
        index.close()



def test_the_streamed_plan_decides_as_the_plan_does(tmp_path, make_index, encoder):
    """pipeline.plan_windows (what --ray runs, a window of files at a time, gone rows tested
    one by one with walk.would_find) against pipeline.plan on the same folder and index:
    new, changed, touched, gone, and stored files the walk leaves out (hidden, NAS
    thumbnails, under a folder now a symlink), whose rows must go."""
    from mmsearch.items import Item

    files = demo_files(12)
    root = tmp_path / "lib"
    for i, f in enumerate(files[:8]):
        (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, root / f"d{i % 3}" / f.name)
    (root / "real").mkdir()
    shutil.copy2(files[8], root / "real" / files[8].name)
    index = make_index()
    index_paths([str(root)], index, encoder, progress=False, ocr=False)
    skipped = [root / ".hidden" / "x.png", root / "@eaDir" / "y.png"]
    for path in skipped:  # on disk and stored (an older mmsearch, say), never walked
        path.parent.mkdir()
        shutil.copy2(files[9], path)
    vector = np.ones(encoder.dim, np.float32) / np.sqrt(encoder.dim)
    index.upsert([Item(path=str(p), size=1, mtime=1.0, hash="x", image_vector=vector)
                  for p in skipped])
    os.rename(root / "real", tmp_path / "elsewhere")           # the folder is now a symlink
    os.symlink(tmp_path / "elsewhere", root / "real")
    (root / "d1" / files[1].name).unlink()                    # gone
    os.utime(root / "d2" / files[2].name, (1, 1))             # touched
    shutil.copy2(files[10], root / "d0" / "new.png")          # new
    Image.open(files[3]).convert("L").save(root / "d0" / files[3].name)  # changed

    def jobs(plans):
        return sorted((j.key, j.known_hash, j.known, j.row) for p in plans for j in p.jobs)

    whole = pipeline.plan([str(root)], index)
    parts = list(pipeline.plan_windows([str(root)], index, window=3))
    assert len(parts) > 2  # it did stream
    assert jobs(parts) == jobs([whole]) and len(whole.jobs) == 3
    assert sorted(k for p in parts for k in p.removed) == sorted(whole.removed)
    assert sum(p.unchanged for p in parts) == whole.unchanged == 5
    assert set(whole.removed) == {str(p) for p in skipped} | {
        str(root / "d1" / files[1].name), str(root / "real" / files[8].name)}
