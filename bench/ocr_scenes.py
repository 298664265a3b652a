"""Rendered test pictures for bench/ocr.py: printed words over real photos, with their truth.

Backgrounds are real photos: scikit-image's bundled samples when it is installed, else the
demo pictures in assets/demo (112x112 product photos), scaled up to 1024x768 with a little
grain and a JPEG round trip so that the text sits on photo-like pixels, not on a clean canvas.
Each text picture carries one main phrase (its main word is unique in the whole set, so it can
be a query with exactly one right answer) in one of five styles, sometimes a second filler line;
the pictures without text are other backgrounds, treated the same way.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
FONTS = {
    "bold": ["DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "DejaVuSansCondensed-Bold.ttf",
             "LiberationSansNarrow-Bold.ttf", "LiberationSerif-Bold.ttf", "DejaVuSerif-Bold.ttf"],
    "regular": ["DejaVuSans.ttf", "LiberationSans-Regular.ttf", "DejaVuSerif.ttf",
                "LiberationSerif-Regular.ttf", "DejaVuSansCondensed.ttf"],
    "mono": ["DejaVuSansMono.ttf", "LiberationMono-Regular.ttf", "DejaVuSansMono-Bold.ttf"],
}

# (phrase, main word, language). Main words are unique across every phrase in the set.
SIGNS = [
    ("TOKO ROTI", "ROTI", "id"), ("DILARANG MEROKOK", "MEROKOK", "id"), ("BUS STOP", "BUS", "en"),
    ("KELUAR", "KELUAR", "id"), ("OPEN 24 HOURS", "HOURS", "en"), ("APOTEK", "APOTEK", "id"),
    ("PARKIR MOTOR", "PARKIR", "id"), ("NO PARKING", "PARKING", "en"), ("EMERGENCY EXIT", "EMERGENCY", "en"),
    ("AWAS ANJING GALAK", "ANJING", "id"), ("PINTU DARURAT", "DARURAT", "id"), ("FRESH COFFEE", "COFFEE", "en"),
    ("BENGKEL", "BENGKEL", "id"), ("TUTUP", "TUTUP", "id"), ("WARUNG MAKAN", "WARUNG", "id"),
    ("HATI HATI LANTAI LICIN", "LICIN", "id"), ("SELAMAT DATANG", "SELAMAT", "id"), ("PHARMACY", "PHARMACY", "en"),
    ("PASAR IKAN", "IKAN", "id"), ("STASIUN KERETA", "STASIUN", "id"), ("HOTEL MELATI", "MELATI", "id"),
    ("ICE CREAM", "CREAM", "en"), ("BAKERY", "BAKERY", "en"), ("LIBRARY", "LIBRARY", "en"),
]
RECEIPTS = [
    (["NASI GORENG 25000", "ES TEH MANIS 5000", "TOTAL 30000", "TERIMA KASIH"], "GORENG", "id"),
    (["CAPPUCCINO 4.50", "BAGEL 2.75", "TOTAL 7.25", "THANK YOU"], "CAPPUCCINO", "en"),
    (["SATE AYAM 30000", "KERUPUK 3000", "JUMLAH 33000", "TUNAI"], "SATE", "id"),
    (["MILK 1.99", "BREAD 2.49", "EGGS 3.10", "SUBTOTAL 7.58"], "MILK", "en"),
    (["BAKSO URAT 20000", "JERUK HANGAT 6000", "KEMBALI 4000"], "BAKSO", "id"),
    (["HAMBURGER 5.90", "FRIES 2.10", "CASH 10.00", "CHANGE 2.00"], "HAMBURGER", "en"),
]
SCREENS = [
    ("Download complete", "Download", "en"), ("Pesan baru dari Budi", "Pesan", "id"),
    ("Battery low", "Battery", "en"), ("Pengaturan jaringan", "Pengaturan", "id"),
    ("Meeting starts in 5 minutes", "Meeting", "en"), ("Pembayaran berhasil", "Pembayaran", "id"),
]
CAPTIONS = [
    ("Happy Birthday", "Birthday", "en"), ("Liburan ke Bali", "Liburan", "id"),
    ("Sunset Beach", "Sunset", "en"), ("Kopi Susu Gula Aren", "Aren", "id"),
    ("Summer Sale", "Summer", "en"), ("Jalan Jalan Sore", "Sore", "id"),
]
FILLERS = ["JL SUDIRMAN NO 12", "SINCE 1998", "BUKA SETIAP HARI", "CALL 0812 3456",
           "lantai 2", "free wifi", "harga murah", "best price"]


@dataclass
class Scene:
    name: str
    image: Image.Image
    words: list[str]          # every printed word, as printed
    main: str | None          # the query word (None: a picture without text)
    lang: str | None
    style: str
    meta: dict = field(default_factory=dict)


def _font(kind: str, size: int, rng: random.Random) -> ImageFont.FreeTypeFont:
    name = rng.choice(FONTS[kind])
    for d in FONT_DIRS:
        p = Path(d) / name
        if p.exists():
            return ImageFont.truetype(str(p), size)
    raise FileNotFoundError(name)


# scikit-image's bundled sample photos (files inside its wheel, read with Pillow: importing
# skimage.data needs scipy). None of these shows text (text.png, page.png, logo.png do: left out).
SKIMAGE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg",
                  "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png", "brick.png",
                  "grass.png", "gravel.png", "camera.png", "moon.png", "coins.png", "retina.jpg",
                  "color.png", "horse.png")


def skimage_photos() -> list[Path]:
    """The sample photo files of an installed scikit-image ([] when it is not installed)."""
    import importlib.util
    try:
        spec = importlib.util.find_spec("skimage")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.origin:
        return []
    data = Path(spec.origin).parent / "data"
    return [data / n for n in SKIMAGE_PHOTOS if (data / n).exists()]


def backgrounds(n: int, seed: int = 0) -> list[Image.Image]:
    """n photo-like 1024x768 RGB backgrounds."""
    rng = random.Random(seed)
    srcs = [Image.open(f).convert("RGB") for f in skimage_photos()]
    if not srcs:
        files = sorted((ROOT / "assets" / "demo").glob("*.png"))
        srcs = [Image.open(f).convert("RGB") for f in rng.sample(files, min(n, len(files)))]
    out = []
    for i in range(n):
        im = srcs[i % len(srcs)]
        w, h = im.size
        s = max(1024 / w, 768 / h) * (1 + 0.3 * rng.random())
        im = im.resize((int(w * s) + 1, int(h * s) + 1), Image.BICUBIC)
        x0, y0 = rng.randint(0, im.width - 1024), rng.randint(0, im.height - 768)
        im = im.crop((x0, y0, x0 + 1024, y0 + 768))
        out.append(_photo_like(im, rng))
    return out


def _photo_like(im: Image.Image, rng: random.Random) -> Image.Image:
    a = np.asarray(im, dtype=np.float32)
    a = a + np.random.default_rng(rng.randint(0, 2**31)).normal(0, 4.0, a.shape)
    im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=rng.randint(80, 92))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _contrast(rgb) -> tuple:
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (20, 20, 20) if lum > 140 else (250, 250, 250)


def _layer(lines, font, fg, pad, panel, line_gap=1.25):
    """An RGBA layer: optional panel colour behind lines of text."""
    d = ImageDraw.Draw(Image.new("RGBA", (8, 8)))
    sizes = [d.textbbox((0, 0), t, font=font) for t in lines]
    lh = int(font.size * line_gap)
    w = max(b[2] - b[0] for b in sizes) + 2 * pad
    h = lh * len(lines) + 2 * pad
    lay = Image.new("RGBA", (w, h), panel + (255,) if panel else (0, 0, 0, 0))
    dr = ImageDraw.Draw(lay)
    for i, t in enumerate(lines):
        dr.text((pad, pad + i * lh), t, font=font, fill=fg + (255,),
                stroke_width=0 if panel else max(2, font.size // 18),
                stroke_fill=_contrast(fg) + (255,))
    return lay


def _paste(bg: Image.Image, lay: Image.Image, rng: random.Random, angle: float,
           half: int) -> Image.Image:
    """Paste lay, rotated by angle, at a random place inside the top (0) or bottom (1) half."""
    lay = lay.rotate(angle, resample=Image.BICUBIC, expand=True)
    if lay.width > bg.width - 20:
        s = (bg.width - 20) / lay.width
        lay = lay.resize((int(lay.width * s), int(lay.height * s)), Image.LANCZOS)
    x = rng.randint(10, max(10, bg.width - lay.width - 10))
    y0, y1 = (10, bg.height // 2) if half == 0 else (bg.height // 2, bg.height - 10)
    y = rng.randint(y0, max(y0, y1 - lay.height))
    bg.paste(lay, (x, y), lay)
    return bg


def scenes(seed: int = 0, n_blank: int = 24) -> list[Scene]:
    rng = random.Random(seed)
    specs = ([("sign",) + s for s in SIGNS] + [("receipt",) + s for s in RECEIPTS]
             + [("screen",) + s for s in SCREENS] + [("caption",) + s for s in CAPTIONS])
    bgs = backgrounds(len(specs) + n_blank, seed)
    out = []
    for i, (style, text, main, lang) in enumerate(specs):
        im = bgs[i].copy()
        angle = rng.uniform(-4, 4)
        half = rng.randint(0, 1)
        words = []
        if style == "sign":
            size = rng.choice([34, 48, 64, 80, 100])
            panel = tuple(rng.randint(0, 255) for _ in range(3))
            lay = _layer([text], _font("bold", size, rng), _contrast(panel), size // 3, panel)
            words += text.split()
        elif style == "receipt":
            size = rng.choice([22, 26, 30])
            lay = _layer(text, _font("mono", size, rng), (30, 30, 30), 24, (245, 242, 230))
            words += " ".join(text).split()
        elif style == "screen":
            size = rng.choice([22, 26, 32])
            font = _font("regular", size, rng)
            bar = Image.new("RGBA", (1024, int(size * 2.2)), (rng.choice([33, 240]),) * 3 + (255,))
            ImageDraw.Draw(bar).text((int(size * 1.5), int(size * 0.5)), text, font=font,
                                     fill=_contrast(bar.getpixel((0, 0))[:3]) + (255,))
            im.paste(bar, (0, rng.choice([0, 768 - bar.height])), bar)
            angle, lay = 0.0, None
            words += text.split()
        else:  # caption: text straight over the photo, with a stroke
            size = rng.choice([44, 60, 76])
            fg = rng.choice([(255, 255, 255), (255, 220, 0), (20, 20, 20)])
            lay = _layer([text], _font(rng.choice(["bold", "regular"]), size, rng), fg, 8, None)
            words += text.split()
        if lay is not None:
            im = _paste(im, lay, rng, angle, half)
        if style in ("sign", "caption") and rng.random() < 0.5:
            filler = FILLERS[i % len(FILLERS)]
            fs = rng.choice([24, 30, 36])
            panel = tuple(rng.randint(0, 255) for _ in range(3))
            im = _paste(im, _layer([filler], _font("regular", fs, rng), _contrast(panel), fs // 3, panel),
                        rng, rng.uniform(-3, 3), 1 - half)
            words += filler.split()
        out.append(Scene(f"{style}-{i:02d}", im, words, main, lang, style,
                         {"size": size, "angle": round(angle, 2)}))
    for j in range(n_blank):
        out.append(Scene(f"blank-{j:02d}", bgs[len(specs) + j], [], None, None, "none"))
    return out


if __name__ == "__main__":
    import sys
    d = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ocr-scenes")
    d.mkdir(parents=True, exist_ok=True)
    for s in scenes():
        s.image.save(d / f"{s.name}.png")
        print(s.name, s.main, s.words)
