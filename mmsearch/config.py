"""Typed configuration: which model, which index. Everything user-settable lives here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
DEMO_MODEL = "demo"
# `--pretrained random`: the real architecture with untrained weights. For speed
# benchmarks only; its search results mean nothing.
RANDOM_WEIGHTS = "random"

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
DEMO_MODEL_DIR = ASSETS_DIR / "model"
DEMO_PICTURES_DIR = ASSETS_DIR / "demo"
DEMO_CATALOG = ASSETS_DIR / "catalog" / "products.jsonl"

# The weight a `--not` part is given: only its sign counts now, for a search removes what
# matches it (mmsearch.cutoff); Searcher.vector still sums it, at half weight because a
# negative part at full weight cancels what two CLIP vectors share ("a dress" without "red"
# turned to boots at 1.0 on the demo).
NOT_WEIGHT = 0.5

MAX_QUERY_BYTES = 100 * 2**20  # a query picture file this big is no photo to search by

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif"})


@dataclass(frozen=True)
class ModelSpec:
    """An open_clip architecture plus its weights: a hub tag, a local checkpoint or 'random'.

    `demo` is the small CLIP trained on colourised Fashion-MNIST and shipped in assets/model.
    """

    name: str = DEFAULT_MODEL
    pretrained: str | None = DEFAULT_PRETRAINED

    @classmethod
    def parse(cls, model: str | None, pretrained: str | None = None) -> "ModelSpec":
        model = model or DEFAULT_MODEL
        if model == DEMO_MODEL:
            return cls(DEMO_MODEL, None)
        if pretrained is None and model == DEFAULT_MODEL:
            pretrained = DEFAULT_PRETRAINED
        if pretrained and pretrained != RANDOM_WEIGHTS and os.path.isfile(pretrained):
            pretrained = str(Path(pretrained).resolve())
        return cls(model, pretrained)

    @property
    def is_random(self) -> bool:
        return self.pretrained == RANDOM_WEIGHTS

    @property
    def label(self) -> str:
        """Human- and JSON-friendly spelling, e.g. 'ViT-B-32/laion2b_s34b_b79k' or 'demo'."""
        if self.name == DEMO_MODEL:
            return DEMO_MODEL
        label = f"{self.name}/{self.pretrained}" if self.pretrained else self.name
        return label + " (untrained weights: for speed tests only)" if self.is_random else label

    def to_record(self) -> dict:
        return {"name": self.name, "pretrained": self.pretrained}

    @classmethod
    def from_record(cls, record: dict) -> "ModelSpec":
        return cls(record["name"], record.get("pretrained"))


def data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "mmsearch"


@dataclass(frozen=True)
class IndexLocation:
    """Where vectors live: an embedded Milvus Lite directory, or a Milvus server URI."""

    db: Path | None = None
    uri: str | None = None
    token: str | None = None

    @classmethod
    def resolve(cls, db: str | os.PathLike | None = None, uri: str | None = None,
                token: str | None = None) -> "IndexLocation":
        """Command-line values first, then MMSEARCH_URI / MMSEARCH_TOKEN / MMSEARCH_DB, then
        the default embedded index in the user's data directory."""
        if db and uri:
            raise ValueError("give either --db (embedded index) or --uri (Milvus server), not both")
        token = token or os.environ.get("MMSEARCH_TOKEN") or None
        if uri:
            return cls(uri=uri, token=token)
        if db:
            return cls(db=Path(db).expanduser().resolve())
        if os.environ.get("MMSEARCH_URI"):
            return cls(uri=os.environ["MMSEARCH_URI"], token=token)
        if os.environ.get("MMSEARCH_DB"):
            return cls(db=Path(os.environ["MMSEARCH_DB"]).expanduser().resolve())
        return cls(db=data_home() / "index.db")

    @property
    def is_embedded(self) -> bool:
        return self.uri is None

    def server_database(self) -> tuple[str, str | None]:
        """(server address, database name): `http://host:19530/photos` -> database `photos`
        (several indexes on one server); no path -> Milvus's default database."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.uri or "")
        name = parts.path.strip("/") or None
        return urlunsplit(parts._replace(path="")), name

    def __str__(self) -> str:
        return str(self.db) if self.is_embedded else str(self.uri)


@dataclass(frozen=True)
class Shard:
    """`--shard i/N`: this process indexes the files whose path hashes to i modulo N
    (0 <= i < N), so N indexers share one folder with no overlap and no gaps."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> "Shard":
        if not text:
            return cls()
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            i, n = -1, 0
        if not 0 <= i < n:
            raise ValueError(f"--shard takes i/N with 0 <= i < N (e.g. 0/2 and 1/2), not {text!r}")
        return cls(i, n)

    def owns(self, path_id: int) -> bool:
        return self.count == 1 or path_id % self.count == self.index
