"""A model's ONNX query towers: where they live, exporting them once, and answering queries.

Above both `mmsearch.encoder` (the torch model) and `mmsearch.onnx_towers` (the towers
themselves, whose export loads the torch model): the choice between the two lives here, so
neither of them imports the other's side.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmsearch.config import ModelSpec
from mmsearch.encoder import Encoder


def towers_dir(spec: ModelSpec) -> Path:
    """Where this model's ONNX query towers live: one folder per model in the user's data
    folder, shared by every index of that model."""
    import hashlib
    import re

    from mmsearch.config import data_home

    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.label)[:60]
    digest = hashlib.blake2b(json.dumps(spec.to_record()).encode(), digest_size=6).hexdigest()
    return data_home() / "towers" / f"{slug}-{digest}"


def query_encoder(spec: ModelSpec):
    """What encodes queries in a fresh process: the model's ONNX towers when they have been
    exported (mmsearch.onnx_towers, no torch: a fresh `mmsearch search` skips the ~4 s of
    importing torch and open_clip and loading the model), else the torch Encoder."""
    folder = towers_dir(spec)
    if _readable_file(folder / "towers.json"):
        try:
            from mmsearch.onnx_towers import OnnxTowers

            towers = OnnxTowers(folder)
            if towers.model == spec.label:
                return towers
        except (ImportError, ValueError, OSError):
            pass  # no onnxruntime, or towers of another format: the torch model answers
    return Encoder(spec)


# How many indexes `remember_model` keeps: one person's indexes, with room to spare.
REMEMBERED = 64


def _remembered_path() -> Path:
    from mmsearch.config import data_home

    return data_home() / "towers" / "indexes.json"


def remembered_model(location) -> ModelSpec | None:
    """The model an index was last searched with in a fresh process, so the next cold search
    opens that model's towers before the index is open (the towers take 0.5-1 s; the engine
    and pymilvus ~0.6 s meanwhile). A hint only: the index's own record decides."""
    try:
        record = json.loads(_remembered_path().read_text(encoding="utf-8")).get(str(location))
        return ModelSpec.from_record(record) if record else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def remember_model(location, spec: ModelSpec) -> None:
    """Note which model `location` holds (replacing the file whole: a reader never sees half
    of it); a folder that cannot be written only loses the head start."""
    import os

    path = _remembered_path()
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    known.pop(str(location), None)
    known[str(location)] = spec.to_record()
    known = dict(list(known.items())[-REMEMBERED:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}")
        part.write_text(json.dumps(known), encoding="utf-8")
        os.replace(part, path)
    except OSError:
        pass


def _rewrite_older_towers(folder: Path, encoder: "Encoder") -> None:
    """Towers an older mmsearch exported, on an indexing run that has loaded the model
    anyway: graphs that hold their weights inside open in twice the time, so `weights_apart`
    rewrites those once (~1-2 s for ViT-B-32); a text graph that takes context_length tokens
    only is exported again to run trimmed (`retrim_text_tower`, ~5 s, ~4x quicker queries).
    Towers of this mmsearch are passed over without importing onnx."""
    try:
        from mmsearch.onnx_export import retrim_text_tower, weights_apart

        weights_apart(folder)
        retrim_text_tower(encoder, folder)
    except Exception:  # noqa: BLE001 - a speed-up only: the towers work as they are
        pass


def _readable_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def export_query_towers(encoder: "Encoder") -> str | None:
    """Export the loaded model's towers for later queries, once per model; None when done
    (or there already), else the one-line reason they could not be (the torch model then
    answers queries, only slower)."""
    folder = towers_dir(encoder.spec)
    try:
        if (folder / "towers.json").is_file():
            _rewrite_older_towers(folder, encoder)
            return None
        if encoder.spec.is_random:
            return None
    except OSError:  # a data folder this user cannot read: nothing to export into
        return None
    try:
        from mmsearch.onnx_export import export_towers

        export_towers(encoder, folder)
    except Exception as exc:  # noqa: BLE001 (an optional speed-up must never fail indexing)
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        return f"queries will use the torch model ({type(exc).__name__}: " \
               f"{str(exc).splitlines()[0][:160] if str(exc) else ''})"
    return None
