"""Export an index to one Parquet file and import it elsewhere, without re-embedding.

The file holds every image row (path, file facts and the vector) and, in its schema
metadata, the model that made the vectors and the indexed folders. Importing into an empty
index records that model; importing into an index of another model is refused. Both directions
stream a page of rows at a time, so memory stays flat at any size. This is how an embedded
index moves to a Milvus server (or back).
"""

from __future__ import annotations

import json
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from mmsearch.config import IndexLocation, ModelSpec
from mmsearch.engine import IndexError_
from mmsearch.index import PAGE, SCHEMA_VERSION, ImageRow, Index
from mmsearch.stores import open_index

FORMAT = "mmsearch-export"
ROW_FIELDS = [f.name for f in fields(ImageRow) if f.name != "vector"]


def _schema(dim: int, metadata: dict):
    import pyarrow as pa

    types = {"path": pa.string(), "folder": pa.string(), "size": pa.int64(),
             "mtime": pa.float64(), "taken": pa.float64(), "hash": pa.string(),
             "width": pa.int32(), "height": pa.int32()}
    cols = [pa.field(name, types[name]) for name in ROW_FIELDS]
    cols.append(pa.field("vector", pa.list_(pa.float32(), dim)))
    return pa.schema(cols, metadata={FORMAT: json.dumps(metadata)})


def export_index(index: Index, out: str | Path) -> int:
    """Write every row of `index` to the Parquet file `out`; returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = {"format": FORMAT, "schema": SCHEMA_VERSION, "model": index.model.to_record(),
            "dim": index.dim, "roots": index.roots, "exported": time.time()}
    schema = _schema(index.dim, meta)
    out = Path(out)
    tmp = out.with_name(out.name + ".part")  # a killed export never leaves a half file
    count = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            page: list[dict] = []

            def write() -> None:
                columns = {name: [r[name] for r in page] for name in ROW_FIELDS}
                columns["vector"] = [np.asarray(r["vector"], np.float32) for r in page]
                writer.write_table(pa.table(columns, schema=schema))
                page.clear()

            for row in index.iter_rows([*ROW_FIELDS, "vector"]):
                page.append(row)
                count += 1
                if len(page) >= PAGE:
                    write()
            if page:
                write()
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise IndexError_(f"cannot write {out}: {exc.strerror or exc}") from None
    return count


def read_export_header(path: str | Path) -> dict:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError) as exc:
        raise IndexError_(f"{path} is not an mmsearch export: {exc}") from None
    raw = (schema.metadata or {}).get(FORMAT.encode())
    if raw is None:
        raise IndexError_(f"{path} is not an mmsearch export (no {FORMAT} metadata)")
    return json.loads(raw)


def import_index(path: str | Path, location: IndexLocation) -> tuple[Index, int]:
    """Load an export into the index at `location` (created with the export's model if
    missing). Rows with the same path are replaced. Returns the open index and the row count."""
    import pyarrow.parquet as pq

    header = read_export_header(path)
    model = ModelSpec.from_record(header["model"])
    index = open_index(location, model=model, create_model=model, dim=int(header["dim"]),
                       kind="folder")
    count = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=PAGE):
            table = batch.to_pydict()
            vectors = batch.column("vector").flatten().to_numpy().reshape(-1, index.dim)
            index.upsert([ImageRow(**{name: table[name][i] for name in ROW_FIELDS},
                                   vector=vectors[i]) for i in range(batch.num_rows)])
            count += batch.num_rows
        index.add_roots(header.get("roots", []))
        index.flush()
        index.mark_indexed()
    except BaseException:
        index.close()
        raise
    return index, count
