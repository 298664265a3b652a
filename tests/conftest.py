"""Shared fixtures: the real embedded model, real Milvus Lite indexes in temp dirs, real files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may wait on the network
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# exported ONNX towers, announcements of servers and the default index live in the user's
# data folder: the tests get their own (subprocesses inherit it)
if "MMSEARCH_TEST_DATA" not in os.environ:
    import tempfile

    os.environ["MMSEARCH_TEST_DATA"] = os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(
        prefix="mmsearch-tests-")

import pytest  # noqa: E402

from mmsearch.config import DEMO_PICTURES_DIR, IndexLocation, ModelSpec  # noqa: E402
from mmsearch.encoder import DEMO_WEIGHTS, Encoder  # noqa: E402
from mmsearch.index import Index  # noqa: E402
from mmsearch.stores import open_index  # noqa: E402

LABELS = json.loads((DEMO_PICTURES_DIR / "labels.json").read_text())


@pytest.fixture(scope="session")
def demo_spec() -> ModelSpec:
    assert DEMO_WEIGHTS.exists(), "the embedded model must be committed in assets/model"
    return ModelSpec.parse("demo")


@pytest.fixture(scope="session")
def encoder(demo_spec) -> Encoder:
    return Encoder(demo_spec).warm()


def demo_files(n: int | None = None, cls: str | None = None) -> list[Path]:
    names = sorted(n_ for n_, lab in LABELS.items() if cls is None or lab["class"] == cls)
    return [DEMO_PICTURES_DIR / name for name in names[:n]]


def label_of(path: str | Path) -> dict:
    return LABELS[Path(path).name]


@pytest.fixture
def make_index(tmp_path, encoder):
    """Open (and later close) a fresh embedded index built with the demo model."""
    opened: list[Index] = []

    def make(name: str = "index.db") -> Index:
        loc = IndexLocation.resolve(db=tmp_path / name)
        index = open_index(loc, model=encoder.spec, create_model=encoder.spec, dim=encoder.dim)
        opened.append(index)
        return index

    yield make
    for index in opened:
        index.close()


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory, encoder):
    """All shipped demo pictures, indexed once for the session."""
    from indexer.pipeline import index_paths

    folder = tmp_path_factory.mktemp("demo_pictures")
    for f in demo_files():
        shutil.copy2(f, folder / f.name)
    loc = IndexLocation.resolve(db=tmp_path_factory.mktemp("demo_db") / "demo.db")
    index = open_index(loc, model=encoder.spec, create_model=encoder.spec, dim=encoder.dim)
    summary = index_paths([str(folder)], index, encoder, progress=False)
    assert summary.added == len(LABELS)
    yield index
    index.close()


def picture_folder(folder: Path, n: int) -> Path:
    """A folder holding copies of the first n demo pictures."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in demo_files(n):
        shutil.copy(f, folder / f.name)
    return folder


@pytest.fixture
def indexed(make_index, encoder, tmp_path):
    """make_index, filled with the first n demo pictures copied to tmp_path/name."""
    from indexer.pipeline import index_paths

    def make(name: str, n: int) -> tuple[Index, Path]:
        folder = picture_folder(tmp_path / name, n)
        index = make_index(f"{name}.db")
        index_paths([str(folder)], index, encoder, progress=False)
        return index, folder

    return make
