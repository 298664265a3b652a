"""Index folders or a catalogue on a Ray cluster into a Milvus server or cluster
(`mmsearch index PATH... --ray` / `mmsearch index --catalog FILE --ray`).

The same importers as on one machine (indexer.pipeline.FolderImport, indexer.catalog.
CatalogImport: their plan decisions, `read`, `items` and `outcome`; the runner's tally,
indexer.runner.count / unreadable), with the work spread by Ray Data. A source
(FolderSource, CatalogSource) says how its importer plans; the pipeline is one:

- the driver plans against the index (folders: streamed a window of files at a time,
  pipeline.plan_windows, so memory stays flat at any folder size; a catalogue: as the plain
  import plans it), removes what is gone and draws the one progress bar;
- each window's jobs become a Dataset; decoding runs as CPU tasks (`map_batches` with a
  function: one picture at a time per task, as many tasks as the cluster has CPUs);
- encoding and writing run in a pool of actors (`map_batches` with a class) that each open
  the index and load the model once; every batch is upserted by key (items.item_id of the
  path, or of the product id), so a batch redone after a worker died replaces its rows
  and never duplicates them.

Ray retries a task whose worker died and restarts a dead actor elsewhere; a driver killed
mid-run loses nothing written, and the next run plans only the rest. Every node (the driver
too) must see the pictures at the same absolute path (one mount point) and have mmsearch
installed.
`ray` is imported here only, and only when a run starts (`pip install 'mmsearch[ray]'`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import sys
import warnings
from typing import Iterable, Iterator

from indexer.catalog import CatalogImport
from indexer.pipeline import FolderImport, plan_windows
from indexer.runner import Job, Plan, Summary, count, unreadable
from indexer.walk import find_pictures
from mmsearch.config import IndexLocation, Shard
from mmsearch.encoder import Encoder
from mmsearch.images import BadPicture
from mmsearch.index import Index
from mmsearch.items import item_id

# Files planned (and jobs handed to Ray) at a time: 10k Jobs are ~3 MB on the driver, and a
# window's actor pool loads the model once per window (~3 s for ViT-B-32; a 10k window takes
# ~8 min per 2-core worker at the measured 20 img/s), so the reload costs < 1%.
WINDOW = 10_000


def refuse_embedded(location: IndexLocation) -> None:
    """The one-line refusal of an embedded index for a cluster run."""
    if location.is_embedded:
        raise ValueError("--ray writes from every node into one index: give a Milvus server "
                         "or cluster with --uri (workers on other machines cannot write into "
                         "a local --db)")


def connect(address: str):
    """ray.init against an existing cluster (`auto`, `host:port`, `ray://host:port`), quietly;
    a one-line ValueError when Ray is missing or the cluster is not there."""
    # the driver's Ray core logs a line per actor whose arguments sit in the object store
    # (core_worker.cc, "max_restarts > 0"): every actor here; keep its real failures only
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    warnings.filterwarnings("ignore", module=r"ray\.")
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs Ray: pip install 'mmsearch[ray]'") from None
    from ray.data import DataContext

    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                 configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ValueError(f"could not join the Ray cluster at {address}: {first}") from None
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver draws one bar of its own
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return ray


def encoder_slots(ray, gpus_per_worker: float) -> int | tuple[int, int]:
    """The encoding actors: one per GPU share when asked; on CPUs one per node, and Ray Data
    may add more, up to one per 4 CPUs of the cluster, while encoding is the bottleneck (each
    actor runs torch on one thread; ViT-B-32 bf16 at ~28 ms a picture a thread against ~42 ms
    to decode a 12 MP JPEG, so ~2 decoding CPUs per encoder, each actor ~1.3 GB of RSS)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if gpus_per_worker > 0:
        gpus = sum(n["Resources"].get("GPU", 0) for n in nodes)
        if gpus < gpus_per_worker:
            raise ValueError(f"--gpus-per-worker {gpus_per_worker:g}: the cluster has "
                             f"{gpus:g} GPUs")
        return max(1, int(gpus // gpus_per_worker))
    least = max(1, sum(1 for n in nodes if n["Resources"].get("CPU", 0) > 0))
    most = max(least, int(sum(n["Resources"].get("CPU", 0) for n in nodes) // 4))
    return least if most == least else (least, most)


def decode(batch: dict, reading) -> dict:
    """A Ray task: read (hash, decode, preprocess; OCR for folders) each job's picture, with
    the importer's reading-only copy (FolderImport / CatalogImport `for_reading`)."""
    out: dict[str, list] = {"job": [], "picture": [], "error": []}
    for raw in batch["job"]:
        job = pickle.loads(raw)
        try:
            picture, error = pickle.dumps(reading.read(job)), ""
        except BadPicture as exc:
            picture, error = b"", str(exc) or "unreadable"
        out["job"].append(raw)
        out["picture"].append(picture)
        out["error"].append(error)
    return out


class EncodeWrite:
    """A Ray actor: the model loaded once, the index opened once; maps a batch of read
    pictures to items (the importer's own `items`), upserts them and answers each job's
    outcome. `reading` is the importer's reading-only copy; it gets the model and the index
    here, on the worker."""

    def __init__(self, location: IndexLocation, kind: str, reading, device: str):
        from mmsearch.stores import open_index

        index = open_index(location, kind=kind)
        reading.encoder, reading.index = Encoder(index.model, device=device).warm(), index
        self.importer = reading

    def __call__(self, batch: dict) -> dict:
        jobs = [pickle.loads(raw) for raw in batch["job"]]
        read = [(job, pickle.loads(p)) for job, p, e in zip(jobs, batch["picture"],
                                                            batch["error"]) if not e]
        self.importer.index.upsert(self.importer.items(read))
        outcome = {job.key: self.importer.outcome(job, p) for job, p in read}
        no_words = {job.key for job, p in read if p.ocr_error}
        return {"key": [j.key for j in jobs], "error": list(batch["error"]),
                "outcome": [outcome.get(j.key, "") for j in jobs],
                "ocr_failed": [j.key in no_words for j in jobs]}


class FolderSource:
    """Pictures under folders, planned a window of files at a time (pipeline.plan_windows:
    memory stays flat at any folder size); videos are left as they are."""

    kind = "folder"

    def __init__(self, paths: Iterable[str], encoder: Encoder, shard: Shard = Shard(),
                 reader=None):
        self.importer = FolderImport(paths, encoder, shard, reader)
        self.shard = shard

    def plans(self, index: Index, summary: Summary, window: int) -> tuple[int, Iterator[Plan]]:
        """(files to go through, for the bar; the Plans, a window at a time)."""
        roots = self.importer.prepare(index, summary)
        total = sum(1 for r in roots for p in find_pictures(r) if self.shard.owns(item_id(p)))
        return total, plan_windows(roots, index, self.shard, window=window,
                                   ocr=self.importer.reader is not None)


class CatalogSource:
    """The items of a catalogue file, planned exactly as the plain import plans them
    (CatalogImport.plan: new, changed and gone ids; rows of other files, bad rows and missing
    pictures left alone). That reads the whole file and the file's stored rows at once, as
    the plain import does, so the driver holds what `mmsearch index --catalog` holds; the
    jobs then go to the cluster a window at a time."""

    kind = "catalog"

    def __init__(self, file: str, encoder: Encoder):
        self.importer = CatalogImport(file, encoder)

    def plans(self, index: Index, summary: Summary, window: int) -> tuple[int, Iterator[Plan]]:
        work = self.importer.plan(index, summary)
        parts = [Plan([], work.removed, work.unchanged)]
        parts += [Plan(work.jobs[i:i + window], [], 0) for i in range(0, len(work.jobs), window)]
        return len(work.jobs) + work.unchanged, iter(parts)


def index_on_ray(source: FolderSource | CatalogSource, index: Index, location: IndexLocation,
                 address: str, *, batch_size: int = 32, gpus_per_worker: float = 0,
                 progress: bool = True, window: int = WINDOW) -> Summary:
    """`indexer.runner.run` on a Ray cluster for a FolderSource or a CatalogSource: the same
    plan, the same items, the same Summary as the plain import of the same source."""
    refuse_embedded(location)
    # Ray's driver prints cluster events to stdout (a node that died: "(raylet) Raylet is
    # terminated ..." and its log's last lines), where --json's summary alone must go
    with contextlib.redirect_stdout(sys.stderr):
        ray = connect(address)
        try:
            return _index(ray, source, index, location, batch_size, gpus_per_worker,
                          progress, window)
        finally:
            ray.shutdown()


def _index(ray, source, index, location, batch_size, gpus_per_worker, progress,
           window) -> Summary:
    """Plan window by window on the driver, run each window's jobs on the cluster, tally."""
    from tqdm import tqdm

    summary = Summary()
    importer = source.importer
    total, parts = source.plans(index, summary, window)
    bar = tqdm(total=total, unit=importer.unit, desc=importer.desc + " (ray)",
               disable=not progress, dynamic_ncols=True, leave=False)
    slots = encoder_slots(ray, gpus_per_worker)
    reading = None
    with bar:
        for part in parts:
            index.delete(part.removed)
            summary.removed += len(part.removed)
            summary.unchanged += part.unchanged
            bar.update(part.unchanged)
            if not part.jobs:
                continue
            reading = reading or importer.for_reading()  # the model loads once, here
            jobs = {job.key: job for job in part.jobs}
            for row in _run_window(ray, part.jobs, reading, location, source.kind,
                                   batch_size, gpus_per_worker, slots):
                _tally(importer, index, summary, jobs[str(row["key"])], row)
                bar.update(1)
    index.flush()
    index.mark_indexed()
    return summary


def _run_window(ray, jobs: list[Job], reading, location, kind: str, batch_size: int,
                gpus: float, slots):
    """Decode, encode and write one window of jobs on the cluster; yields each job's row."""
    # one block per batch: Ray runs a block's decoding as one task, so fewer blocks than CPUs
    # would leave CPUs idle (from_items made a single block of a 300-job window)
    ds = ray.data.from_items([{"job": pickle.dumps(j)} for j in jobs],
                             override_num_blocks=max(1, -(-len(jobs) // batch_size)))
    ds = ds.map_batches(decode, fn_kwargs={"reading": reading}, batch_size=batch_size,
                        num_cpus=1, batch_format="numpy")
    # Encoders reserve no CPU: a CPU-only pool would otherwise hold the CPUs the decode tasks
    # need (on 1-CPU nodes, none would be left); the OS shares the cores as the single-machine
    # indexer's threads do. Ray Data's defaults do the fault handling: a task is retried
    # without limit (max_retries=-1), a dead actor restarted (max_restarts=-1) and its batch
    # given again (max_task_retries=-1), wherever resources are left.
    ds = ds.map_batches(
        EncodeWrite, batch_size=batch_size, batch_format="numpy", concurrency=slots,
        fn_constructor_kwargs={"location": location, "kind": kind, "reading": reading,
                               "device": "cuda" if gpus > 0 else "cpu"},
        num_cpus=0, num_gpus=gpus or None)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for i in range(len(batch["key"])):
            yield {name: column[i] for name, column in batch.items()}


def _tally(importer, index: Index, summary: Summary, job: Job, row: dict) -> None:
    """One job's row from the cluster counted as the plain runner counts it."""
    if row["error"]:
        unreadable(importer, index, summary, job, BadPicture(str(row["error"])))
    else:
        count(summary, str(row["outcome"]))
        summary.ocr_failed += bool(row["ocr_failed"])
