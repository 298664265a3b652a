"""mmsearch.ocr with the real engine on pictures rendered here (Pillow, a real TrueType font)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import mmsearch.ocr as ocr

pytestmark = pytest.mark.skipif(not ocr.available(), reason=ocr.available().reason)

FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"),
             Path(ImageFont.__file__).parent / "fonts"]


def font(size, names=("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf")):
    for d in FONT_DIRS:
        for n in names:
            if (d / n).exists():
                return ImageFont.truetype(str(d / n), size)
    try:                                   # Pillow >= 10.1 bundles a scalable default font
        return ImageFont.load_default(size)
    except TypeError:
        pytest.skip("no TrueType font to render test text with")


def photo(seed=0, size=(1024, 768)):
    """A photo-like background: smooth colour blobs plus grain."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 220, (6, 8, 3)).astype(np.uint8)
    im = Image.fromarray(small).resize(size, Image.BICUBIC)
    a = np.asarray(im, dtype=np.float32) + rng.normal(0, 5, (size[1], size[0], 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def sign(im, xy, text, size, panel, fg, angle=0.0, names=("DejaVuSans-Bold.ttf",
                                                         "LiberationSans-Bold.ttf")):
    f = font(size, names)
    box = ImageDraw.Draw(im).textbbox((0, 0), text, font=f)
    pad = size // 3
    lay = Image.new("RGBA", (box[2] + 2 * pad, box[3] + 2 * pad), panel + (255,))
    ImageDraw.Draw(lay).text((pad, pad), text, font=f, fill=fg + (255,))
    lay = lay.rotate(angle, resample=Image.BICUBIC, expand=True)
    im.paste(lay, xy, lay)
    return im


@pytest.fixture(scope="module")
def reader():
    return ocr.TextReader(langs=("en", "id"))


def tokens(text):
    return set(text.lower().split())


def test_reads_english_and_indonesian_signs(reader):
    im = photo(1)
    sign(im, (60, 60), "DILARANG MEROKOK", 64, (200, 30, 30), (255, 255, 255), 2.5)
    sign(im, (120, 330), "OPEN 24 HOURS", 56, (250, 240, 200), (20, 20, 20), -3)
    sign(im, (500, 560), "APOTEK", 72, (20, 120, 40), (255, 255, 255))
    got = tokens(reader.read(im))
    assert {"dilarang", "merokok", "open", "24", "hours", "apotek"} <= got, got


def test_reads_small_receipt_lines(reader):
    im = photo(2)
    paper = Image.new("RGB", (460, 170), (245, 242, 230))
    d = ImageDraw.Draw(paper)
    f = font(28, ("DejaVuSansMono.ttf", "LiberationMono-Regular.ttf"))
    for i, line in enumerate(["NASI GORENG 25000", "TOTAL 30000", "TERIMA KASIH"]):
        d.text((20, 15 + i * 50), line, font=f, fill=(30, 30, 30))
    im.paste(paper, (300, 250))
    got = tokens(reader.read(im))
    assert {"nasi", "goreng", "total", "30000", "terima", "kasih"} <= got, got


def test_joined_words_are_split(reader):
    # RapidOCR 1.4.4 reads the first as "EMERGENCYEXIT" (no space; the second only sometimes
    # glues): the reader must find the word gap in the pixels and give each word as a token.
    for text, size in (("EMERGENCY EXIT", 64), ("BUS STOP", 90)):
        im = sign(photo(3), (40, 300), text, size, (30, 60, 160), (255, 255, 255),
                  names=("LiberationSans-Bold.ttf", "DejaVuSans-Bold.ttf"))
        got = tokens(reader.read(im))
        assert set(text.lower().split()) <= got, (text, got)
    assert ocr._fix_token("TOTAL30000") == "TOTAL 30000"
    assert ocr._fix_token("G0RENG") == "GORENG"
    assert ocr._fix_token("25000") == "25000"


def test_picture_without_text_reads_nothing(reader):
    for seed in (4, 5):
        assert len(reader.read(photo(seed)).split()) <= 1


def test_languages_are_checked():
    with pytest.raises(ValueError):
        ocr.TextReader(langs=("zh",))
    assert ocr.TextReader(langs=("id",)).langs == ("id",)


def test_import_loads_no_engine():
    code = ("import sys, mmsearch.ocr as o; o.available(); o.TextReader(); "
            "bad = [m for m in ('onnxruntime', 'rapidocr_onnxruntime', 'cv2') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
