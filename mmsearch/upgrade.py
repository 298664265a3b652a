"""Moving an index of schema 1 (before every kind held items) to the item schema, in place.

Schema 1 kept a folder's pictures in a collection `images` (an integer id of the path, the
vector in `vector`) and a catalogue's products in `items` (the product id as the primary key).
Both become items (`mmsearch.items`): every stored row is copied, vectors and all (nothing is
decoded or encoded again), a page at a time; only when the copy is whole is the schema
recorded as 2 and the old collection dropped. A run killed half-way leaves the old collection
and the meta row as they were, and the next open copies again (writes replace by key).
"""

from __future__ import annotations

import sys

import numpy as np

from mmsearch.engine import OutdatedIndexError
from mmsearch.items import SCHEMA_VERSION, Item

OLD_COLLECTION = {"folder": "images", "catalog": "items"}
OLD_FOLDER_FIELDS = ("path", "folder", "size", "mtime", "taken", "hash", "width", "height",
                     "vector")
OLD_CATALOG_FIELDS = ("id", "path", "title", "description", "fields", "hash", "size", "mtime",
                      "source", "image_vector", "text_vector")


def _item(kind: str, row: dict) -> Item:
    if kind == "folder":
        return Item(row["path"], row["size"], row["mtime"], row["hash"], row["width"],
                    row["height"], row["folder"], row["taken"],
                    image_vector=np.asarray(row["vector"], np.float32))
    return Item(row["path"], row["size"], row["mtime"], row["hash"], key=str(row["id"]),
                title=row["title"], description=row["description"],
                fields=row.get("fields") or {}, source=row["source"],
                image_vector=np.asarray(row["image_vector"], np.float32),
                text_vector=np.asarray(row["text_vector"], np.float32))


def upgrade(index, recorded: dict) -> int:
    """Copy the schema-1 collection of `index` into its item collection; returns the rows
    copied. Raises OutdatedIndexError for a catalogue too old to be moved."""
    client, kind = index.client, index.kind
    old = OLD_COLLECTION[kind]
    copied = 0
    if client.has_collection(old):
        names = {f["name"] for f in client.describe_collection(old)["fields"]}
        if kind == "catalog" and "source" not in names:
            raise OutdatedIndexError(
                f"the catalogue at {index.location} was made by an older mmsearch that did not "
                "record which file each item came from; import the catalogue file again into "
                "a new --db (or delete this one)")
        client.load_collection(old)
        client.load_collection(index.COLLECTION)
        total = int(client.query(old, filter="", output_fields=["count(*)"])[0]["count(*)"])
        if total:
            print(f"mmsearch: moving the index at {index.location} to the item schema "
                  f"({total} rows, once)", file=sys.stderr, flush=True)
        fields = OLD_FOLDER_FIELDS if kind == "folder" else OLD_CATALOG_FIELDS
        it = client.query_iterator(old, batch_size=1000, filter="", output_fields=list(fields))
        try:
            while batch := it.next():
                index.upsert([_item(kind, row) for row in batch])
                copied += len(batch)
        finally:
            it.close()
        index.flush()
    index._put_meta("index", {**recorded, "schema": SCHEMA_VERSION})
    if client.has_collection(old):
        client.drop_collection(old)
    return copied
