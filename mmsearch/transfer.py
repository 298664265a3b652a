"""Export an index to one Parquet file and import it elsewhere, without re-embedding.

The file holds every item (its key, the picture file's facts, its text and fields, its
vectors) and, in its schema metadata, the model that made the vectors, the index's kind, the
indexed folders and catalogue files. Importing into an empty
index records that model; importing into an index of another model is refused. Both directions
stream a page of rows at a time, so memory stays flat at any size. This is how an embedded
index moves to a Milvus server (or back).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from mmsearch.config import IndexLocation, ModelSpec
from mmsearch.engine import IndexProblem
from mmsearch.index import IMAGE_VECTOR, PAGE, TEXT_VECTOR, Index
from mmsearch.items import Item
from mmsearch.stores import open_index

FORMAT = "mmsearch-export"
# 2: every item field and the index's kind (1: folder rows only; still read).
FILE_VERSION = 2
# Item fields as Parquet columns (the picture vector travels as `vector`, as in version 1).
COLUMNS = {"key": "string", "path": "string", "folder": "string", "size": "int64",
           "mtime": "float64", "taken": "float64", "hash": "string", "width": "int32",
           "height": "int32", "title": "string", "description": "string", "fields": "string",
           "source": "string"}


def _schema(dim: int, metadata: dict, text_vectors: bool):
    import pyarrow as pa

    cols = [pa.field(name, getattr(pa, kind)()) for name, kind in COLUMNS.items()]
    cols.append(pa.field("vector", pa.list_(pa.float32(), dim)))
    if text_vectors:
        cols.append(pa.field(TEXT_VECTOR, pa.list_(pa.float32(), dim)))
    return pa.schema(cols, metadata={FORMAT: json.dumps(metadata)})


def export_index(index: Index, out: str | Path) -> int:
    """Write every item of `index` to the Parquet file `out`; returns the item count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = index.has_text_vectors
    meta = {"format": FORMAT, "schema": FILE_VERSION, "kind": index.kind,
            "model": index.model.to_record(), "dim": index.dim, "roots": index.roots,
            "catalogs": index.catalogs, "exported": time.time()}
    schema = _schema(index.dim, meta, texts)
    vectors = [IMAGE_VECTOR, *([TEXT_VECTOR] if texts else [])]
    out = Path(out)
    tmp = out.with_name(out.name + ".part")  # a killed export never leaves a half file
    count = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            page: list[dict] = []

            def write() -> None:
                columns = {name: [r.get(name, "") for r in page] for name in COLUMNS}
                columns["fields"] = [json.dumps(f, ensure_ascii=False) for f in columns["fields"]]
                columns["vector"] = [np.asarray(r[IMAGE_VECTOR], np.float32) for r in page]
                if texts:
                    columns[TEXT_VECTOR] = [np.asarray(r[TEXT_VECTOR], np.float32) for r in page]
                writer.write_table(pa.table(columns, schema=schema))
                page.clear()

            stored = [c for c in COLUMNS if c in index.columns()]  # photos lack product columns
            for row in index.iter_rows([*stored, *vectors]):
                page.append(row)
                count += 1
                if len(page) >= PAGE:
                    write()
            if page:
                write()
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise IndexProblem(f"cannot write {out}: {exc.strerror or exc}") from None
    return count


def read_export_header(path: str | Path) -> dict:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError) as exc:
        raise IndexProblem(f"{path} is not an mmsearch export: {exc}") from None
    raw = (schema.metadata or {}).get(FORMAT.encode())
    if raw is None:
        raise IndexProblem(f"{path} is not an mmsearch export (no {FORMAT} metadata)")
    return json.loads(raw)


def import_index(path: str | Path, location: IndexLocation) -> tuple[Index, int]:
    """Load an export into the index at `location` (created with the export's model and kind
    if missing). Items with the same key are replaced. Returns the open index and the count."""
    import pyarrow.parquet as pq

    header = read_export_header(path)
    model = ModelSpec.from_record(header["model"])
    index = open_index(location, model=model, create_model=model, dim=int(header["dim"]),
                       kind=header.get("kind", "folder"))
    count = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=PAGE):
            table = batch.to_pydict()
            vectors = batch.column("vector").flatten().to_numpy().reshape(-1, index.dim)
            texts = batch.column(TEXT_VECTOR).flatten().to_numpy().reshape(-1, index.dim) \
                if TEXT_VECTOR in table else None
            items = []
            for i in range(batch.num_rows):
                values = {name: table[name][i] for name in COLUMNS if name in table}
                values["fields"] = json.loads(values.get("fields") or "{}")
                items.append(Item(**values, image_vector=vectors[i],
                                  text_vector=None if texts is None else texts[i]))
            index.upsert(items)
            count += batch.num_rows
        index.add_roots(header.get("roots", []))
        for catalog in header.get("catalogs", []):
            index.add_catalog(catalog)
        index.flush()
        index.mark_indexed()
    except BaseException:
        index.close()
        raise
    return index, count
