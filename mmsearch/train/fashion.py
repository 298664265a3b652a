"""Colourised Fashion-MNIST with English and Indonesian captions.

Shared by the training script, the demo-asset builder and the quality benchmark, so the
pictures the model is trained on, the demo folder and the held-out benchmark all come from one
definition. Fashion-MNIST comes from Debian's `dataset-fashion-mnist` package (MIT).
"""

from __future__ import annotations

import gzip
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(os.environ.get("MMSEARCH_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))

# Fashion-MNIST label order. Each class: (English synonyms, Indonesian synonyms); the first of
# each list is the canonical name used for benchmark queries and file labels.
CLASSES: list[tuple[str, list[str], list[str]]] = [
    ("tshirt", ["t-shirt", "top", "tee", "t-shirt top"], ["kaos", "kaos oblong", "atasan"]),
    ("trouser", ["trousers", "pants", "trouser", "long pants"], ["celana panjang", "celana"]),
    ("pullover", ["pullover", "sweater", "jumper"], ["sweter", "baju hangat", "pullover"]),
    ("dress", ["dress", "gown"], ["gaun", "baju terusan"]),
    ("coat", ["coat", "jacket"], ["mantel", "jaket"]),
    ("sandal", ["sandal", "sandals"], ["sandal", "sendal"]),
    ("shirt", ["shirt", "button-up shirt", "blouse"], ["kemeja", "blus"]),
    ("sneaker", ["sneaker", "running shoe", "sneakers", "trainers"],
     ["sepatu lari", "sepatu kets", "sepatu olahraga"]),
    ("bag", ["bag", "handbag"], ["tas", "tas tangan"]),
    ("boot", ["ankle boot", "boot", "boots"], ["sepatu bot", "bot"]),
]

# name -> (English, Indonesian, RGB in 0..1)
COLOURS: dict[str, tuple[str, str, tuple[float, float, float]]] = {
    "red": ("red", "merah", (0.86, 0.10, 0.10)),
    "green": ("green", "hijau", (0.10, 0.62, 0.20)),
    "blue": ("blue", "biru", (0.12, 0.28, 0.88)),
    "yellow": ("yellow", "kuning", (0.97, 0.86, 0.08)),
    "black": ("black", "hitam", (0.07, 0.07, 0.07)),
    "white": ("white", "putih", (1.00, 1.00, 1.00)),
    "purple": ("purple", "ungu", (0.55, 0.18, 0.72)),
    "orange": ("orange", "oranye", (1.00, 0.55, 0.05)),
}
COLOUR_NAMES = list(COLOURS)

# Words with no visual meaning that shoppers type anyway ("sepatu lari ringan"): the model
# learns to look past them instead of being thrown off.
FILLERS_EN = ["light", "comfortable", "new", "casual", "cheap", "stylish"]
FILLERS_ID = ["ringan", "nyaman", "baru", "santai", "murah", "keren"]


def load_split(split: str, data_dir: Path = DATA_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 [N,28,28], labels int64 [N]) for split 'train' or 'test'."""
    prefix = {"train": "train", "test": "t10k"}[split]
    img_path = data_dir / f"{prefix}-images-idx3-ubyte.gz"
    lbl_path = data_dir / f"{prefix}-labels-idx1-ubyte.gz"
    if not img_path.exists():
        raise FileNotFoundError(
            f"{img_path} not found: install Debian's dataset-fashion-mnist package "
            "(apt-get install -y dataset-fashion-mnist)"
        )
    with gzip.open(img_path, "rb") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(lbl_path, "rb") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return images, labels


def colourise(gray: np.ndarray, rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Paint garments (bright on black in Fashion-MNIST) in a colour on a light background.

    gray: [..., 28, 28] uint8; rgb, background: [..., 3] floats in 0..1.
    Returns float32 [..., 28, 28, 3] in 0..1. Works on one image or a batch.
    """
    x = gray.astype(np.float32)[..., None] / 255.0
    alpha = np.clip(x * 2.0, 0.0, 1.0)  # garment interior fully opaque, soft edges
    shade = 0.6 + 0.4 * x  # keep the garment's texture visible
    garment = rgb[..., None, None, :] * shade
    bg = background[..., None, None, :]
    return (bg * (1.0 - alpha) + garment * alpha).astype(np.float32)


def sample_colours(rng: np.random.Generator, n: int, idx: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour index (random unless given), jittered RGB and light background for n pictures."""
    if idx is None:
        idx = rng.integers(0, len(COLOUR_NAMES), size=n)
    base = np.array([COLOURS[c][2] for c in COLOUR_NAMES], dtype=np.float32)[idx]
    rgb = np.clip(base + rng.normal(0, 0.04, size=(n, 3)), 0, 1).astype(np.float32)
    # light backdrop; white garments get a grey one, as in product photos, to stay visible
    white = (idx == COLOUR_NAMES.index("white"))[:, None]
    grey = np.where(white, rng.uniform(0.62, 0.76, size=(n, 1)), rng.uniform(0.86, 0.98, size=(n, 1)))
    background = np.clip(grey + rng.normal(0, 0.01, size=(n, 3)), 0, 1).astype(np.float32)
    return idx, rgb, background


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(label: int, colour: int, rng: random.Random, colour_p: float = 0.8) -> str:
    """One random caption for a (class, colour) picture, English or Indonesian; it names the
    colour with probability colour_p."""
    _, en_names, id_names = CLASSES[label]
    c_en, c_id, _ = COLOURS[COLOUR_NAMES[colour]]
    with_colour = rng.random() < colour_p
    filler = rng.random() < 0.2
    if rng.random() < 0.5:
        g = rng.choice(en_names)
        adj = (rng.choice(FILLERS_EN) + " ") if filler else ""
        if with_colour:
            phrase = f"{adj}{c_en} {g}"
            t = rng.choice(["{p}", "{a} {p}", "a photo of {a} {p}", "a picture of {a} {p}",
                            "{a} {g} in {c}"])
            return t.format(p=phrase, a=_article(phrase), g=adj + g, c=c_en)
        phrase = f"{adj}{g}"
        t = rng.choice(["{p}", "{a} {p}", "a photo of {a} {p}"])
        return t.format(p=phrase, a=_article(phrase))
    g = rng.choice(id_names)
    adj = (" " + rng.choice(FILLERS_ID)) if filler else ""
    if with_colour:
        t = rng.choice(["{g}{adj} {c}", "foto {g}{adj} {c}", "gambar {g}{adj} {c}",
                        "{g}{adj} warna {c}"])
        return t.format(g=g, adj=adj, c=c_id)
    t = rng.choice(["{g}{adj}", "foto {g}{adj}", "gambar {g}{adj}"])
    return t.format(g=g, adj=adj)


@dataclass(frozen=True)
class HeldOut:
    """Deterministically colourised test-split pictures (never seen in training)."""

    images: np.ndarray  # float32 [N,28,28,3] in 0..1
    labels: np.ndarray  # class index [N]
    colours: np.ndarray  # colour index [N]
    source_index: np.ndarray  # row in the Fashion-MNIST test split


def held_out(start: int, count: int, seed: int = 1234) -> HeldOut:
    """Test-split rows [start, start+count), colourised with a fixed seed."""
    gray, labels = load_split("test")
    rows = np.arange(start, start + count)
    rng = np.random.default_rng(seed + start)
    idx, rgb, bg = sample_colours(rng, count)
    return HeldOut(colourise(gray[rows], rgb, bg), labels[rows], idx, rows)


def to_pil(picture: np.ndarray, size: int = 112):
    """A colourised 28×28 float picture as an upscaled RGB PIL image (what users see)."""
    from PIL import Image

    img = Image.fromarray((picture * 255 + 0.5).clip(0, 255).astype(np.uint8), "RGB")
    return img.resize((size, size), Image.Resampling.BICUBIC)
