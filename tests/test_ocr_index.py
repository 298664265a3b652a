"""Words printed in pictures, read while indexing a real folder (real RapidOCR, the real demo
model, a real Milvus Lite index): stored as fields["words"], incremental, --no-ocr."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import mmsearch.ocr as ocr
from indexer.pipeline import index_paths
from mmsearch.cli import main
from mmsearch.index import IMAGE_VECTOR

pytestmark = pytest.mark.skipif(not ocr.available(), reason=ocr.available().reason)

FONTS = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
         Path("/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"),
         Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")]


def font(size, mono=False):
    for f in (FONTS[2:] if mono else FONTS[:2]):
        if f.exists():
            return ImageFont.truetype(str(f), size)
    pytest.skip("no TrueType font to render test text with")


def photo(seed, size=(1024, 768)):
    """A photo-like picture without text: smooth colour blobs plus grain."""
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(40, 220, (6, 8, 3)).astype(np.uint8)).resize(size, Image.BICUBIC)
    a = np.asarray(im, dtype=np.float32) + rng.normal(0, 5, (size[1], size[0], 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def with_text(seed, lines, size, panel, fg, mono=False):
    im = photo(seed)
    f = font(size, mono)
    w = max(ImageDraw.Draw(im).textbbox((0, 0), t, font=f)[2] for t in lines) + size
    lay = Image.new("RGB", (w, int(len(lines) * size * 1.4) + size), panel)
    for i, t in enumerate(lines):
        ImageDraw.Draw(lay).text((size // 2, size // 2 + int(i * size * 1.4)), t, font=f, fill=fg)
    im.paste(lay.rotate(2, expand=True, fillcolor=panel), (80, 200))
    return im


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    with_text(1, ["DILARANG MEROKOK"], 64, (200, 30, 30), (255, 255, 255)).save(root / "a.jpg", quality=90)
    with_text(2, ["PHARMACY"], 80, (20, 110, 40), (255, 255, 255)).save(root / "b.jpg", quality=90)
    with_text(3, ["NASI GORENG 25000", "TERIMA KASIH"], 30, (245, 242, 230), (30, 30, 30),
              mono=True).save(root / "c.jpg", quality=90)
    photo(4).save(root / "d.jpg", quality=90)
    return root


def stored(index, root):
    return {Path(r["path"]).name: r for r in index.rows_under(str(root))}


def vectors(index, root):
    rows = index.get([r["path"] for r in index.rows_under(str(root))], (IMAGE_VECTOR,))
    return {Path(k).name: np.asarray(v[IMAGE_VECTOR]) for k, v in rows.items()}


def words(row):
    return set((row["fields"].get("words") or "").lower().split())


def test_words_printed_in_pictures_are_stored(folder, make_index, encoder):
    index = make_index()
    summary = index_paths([str(folder)], index, encoder, progress=False)
    assert summary.added == 4 and summary.ocr_failed == 0
    rows = stored(index, folder)
    assert {"dilarang", "merokok"} <= words(rows["a.jpg"])
    assert "pharmacy" in words(rows["b.jpg"])
    assert {"nasi", "goreng", "terima", "kasih"} <= words(rows["c.jpg"])
    assert "words" not in rows["d.jpg"]["fields"]           # no text: no words field
    assert all(r["fields"].get("ocr") == 1 for r in rows.values())   # but read, all four
    # a second run reads nothing again
    again = index_paths([str(folder)], index, encoder, progress=False)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 4)


def test_no_ocr_then_ocr_adds_words_without_reembedding(folder, make_index, encoder,
                                                        monkeypatch):
    index = make_index()
    first = index_paths([str(folder)], index, encoder, progress=False, ocr=False)
    assert first.added == 4
    rows = stored(index, folder)
    assert not any("words" in r["fields"] or "ocr" in r["fields"] for r in rows.values())
    before = vectors(index, folder)

    calls = []
    real = encoder.encode_pixels
    monkeypatch.setattr(encoder, "encode_pixels", lambda px: calls.append(len(px)) or real(px))
    second = index_paths([str(folder)], index, encoder, progress=False)
    assert (second.added, second.updated, second.unchanged) == (0, 0, 4)
    assert calls == []                                        # nothing embedded again
    rows = stored(index, folder)
    assert "merokok" in words(rows["a.jpg"]) and "pharmacy" in words(rows["b.jpg"])
    after = vectors(index, folder)
    assert all(np.array_equal(before[k], after[k]) for k in before)

    # --no-ocr on a changed picture drops its (stale) words; unchanged ones keep theirs
    with_text(5, ["KELUAR"], 90, (30, 60, 160), (255, 255, 255)).save(folder / "b.jpg", quality=90)
    third = index_paths([str(folder)], index, encoder, progress=False, ocr=False)
    rows = stored(index, folder)
    assert third.updated == 1 and "words" not in rows["b.jpg"]["fields"]
    assert "ocr" not in rows["b.jpg"]["fields"] and "merokok" in words(rows["a.jpg"])
    fourth = index_paths([str(folder)], index, encoder, progress=False)
    assert "keluar" in words(stored(index, folder)["b.jpg"]) and fourth.unchanged == 4


class Broken(ocr.TextReader):
    def read(self, image, larger=None):
        raise RuntimeError("engine crashed")


def test_a_picture_ocr_fails_on_is_indexed_and_counted(folder, make_index, encoder):
    index = make_index()
    summary = index_paths([str(folder)], index, encoder, progress=False, ocr=Broken())
    assert summary.added == 4 and summary.ocr_failed == 4 and not summary.errors
    assert summary.to_json()["ocr_failed"] == 4 and "OCR failed" in summary.line()
    rows = stored(index, folder)
    assert not any("ocr" in r["fields"] for r in rows.values())   # so the next run retries
    retry = index_paths([str(folder)], index, encoder, progress=False)
    assert retry.unchanged == 4 and "merokok" in words(stored(index, folder)["a.jpg"])


def test_cli_flags(folder, tmp_path, capsys):
    db = tmp_path / "cli.db"
    assert main(["index", str(folder), "--db", str(db), "--model", "demo", "--no-ocr",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 4
    assert main(["index", str(folder), "--db", str(db), "--ocr-lang", "id", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] == 4
    assert main(["search", "x", "--db", str(db), "--json"]) == 0   # the index still answers
    code = main(["index", str(folder), "--db", str(db), "--ocr-lang", "zh"])
    err = capsys.readouterr().err
    assert code != 0 and "unsupported OCR languages" in err and "Traceback" not in err
