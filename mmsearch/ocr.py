"""Words inside the picture: an offline OCR reader (issue 16).

Engine: RapidOCR 1.4.4 (`rapidocr-onnxruntime`, PP-OCRv4 detector + recogniser as ONNX files
inside the wheel; nothing is downloaded). Chosen by measurement (bench/ocr.py ->
bench/results/ocr.json; 42 rendered pictures with 165 printed EN/ID tokens on signs, receipts,
screenshot bars and captions over photos, 24 without text; 2 threads, engines interleaved on a
shared machine, load ~5 on 2 cores, so absolute ms are inflated, compare them side by side):

    engine                 recall  P@1   main word found  ms text  ms no text
    RapidOCR + this split  1.000   1.000 42/42             805      574
    RapidOCR raw lines     0.933   0.929 39/42             805      574
    Tesseract 5.3 psm 3    0.715   0.571 24/42             928      541
    Tesseract 5.3 psm 11   0.600   0.476 20/42            1107      842  (junk on 11/24 blanks)

Tesseract reads clean receipts (1.0) but misses most signs (0.49) and captions (0.48) over
photos; RapidOCR is as fast or faster and needs no system package.

Languages: the PP-OCRv4 recogniser bundled with 1.4.4 is one model for Chinese and Latin
letters/digits, with no per-language switch. English and Indonesian are both plain Latin
script, so `langs` accepts "en" and "id" (any mix) and refuses anything else rather than
pretend. (Tesseract selects per language with eng/ind traineddata; not used.)

Joined words. The recogniser sometimes drops a space ("EMERGENCYEXIT", "TOTAL30000", "NO12";
4 of ~50 lines in the bench set, 7% of tokens lost). What is done, and why:
  * letter<->digit boundaries are split ("TOTAL30000" -> "TOTAL 30000"), and a 0 between
    letters is read as O ("G0RENG" -> "GORENG": mono fonts' dotted zero).
  * letter<->letter joins are split where the *pixels* show a word gap: the line is cut out of
    the picture along its detected box, binarised (Otsu), and a run of ink-free columns of at
    least GAP x the line height between two recognised characters counts as a space. Measured
    on the bench lines: ink-free run / height is <= 0.25 between letters of one word (mono
    fonts), 0.33-0.73 at the 4 joins, >= 0.23 at 81 of 84 real spaces. The recogniser's own character
    positions (CTC columns) were tried first and cannot decide it (gap / median gap: spaces
    1.2-3.1, inside words up to 2.0, the join "YE" in EMERGENCYEXIT 1.4); they only place it.
    GAP was set on the bench set itself; the test pictures (other photos) are a second check.
A word list was not used: none ships with the engine, and EN+ID lists are extra data to carry.

Gate. Most photos hold no text and the full-size detector is most of the cost (574 of 805
ms), far more than indexing a photo costs without OCR (a 12 MP JPEG: ~36 ms of CPU to read,
hash, decode at 1/8 and preprocess, ~7 ms to encode with the demo model). Two steps, cheapest
first (measured by bench/ocr_speed.py -> bench/results/ocr_speed.json on the scenes of
bench/ocr_scenes.py over scikit-image photos, seeds 0-2: 126 text pictures and 72 without,
plus 32 12 MP photos without text, all decoded as indexing decodes them):
  1. edge_density (OpenCV, ~1 ms on the ~500 px picture indexing decodes anyway): printed
     text is a small area packed with strong edges. It is the share of pixels whose 3x3
     max-min contrast is >= EDGE_CONTRAST in the densest EDGE_BLOCK x EDGE_BLOCK block. Every
     text picture scored >= 0.224; photos without text ~0.11 (median), textures (brick,
     gravel, coins) up to 0.34. EDGE_DENSITY = 0.2 kept all 126 text pictures and stopped 82
     of 104 photos. Tried and dropped: the total edge share (AUC 0.64-0.85), MSER (14 ms, no
     separation), Canny "letter" components side by side (3 ms, missed 7 of 42), the demo CLIP
     vector (AUC 0.49-0.51 for "text", "a sign", "a screenshot", "a receipt": it was trained
     on garments).
  2. the detector on the picture shrunk to a 480 px long side (gate=480; ~45 ms of CPU): no
     box -> "" at once. It let 1 of the 22 photos that pass step 1 through and dropped 1 of 126
     text pictures (a caption); at 320 px it missed 4 of 6 screenshot bars.
Only a picture that passes both is read, at the size `read(larger=...)` supplies (indexing
decodes the same bytes again at ~1000 px for it). Pictures larger than 2000 px are shrunk to
that by the engine itself.
"""
from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Callable

SUPPORTED_LANGS = ("en", "id")
GAP = 0.3               # ink-free run / line height that counts as a word gap (bench "split")
MIN_SCORE = 0.5         # recogniser confidence below which a line is dropped (engine default)
# The edge gate (see "Gate" above; measured by bench/ocr_speed.py):
EDGE_CONTRAST = 120     # 3x3 max-min grey contrast of a text edge (80: AUC 0.90, 160: 0.97 but 0 on some text)
EDGE_BLOCK = 24         # px of the ~500 px picture; a block about one or two letters wide
EDGE_DENSITY = 0.2      # below every text picture seen (lowest 0.224 of 126); stops ~4/5 of photos
EDGE_SIDE = 512         # the gate looks at the picture shrunk to this long side (what a 1/8 JPEG
                        # decode of 12 MP gives), so its numbers do not depend on the file's size
_ENGINE_LOCK = threading.Lock()   # two decode threads must not both build the engine (~4 s)


class Availability:
    """Falsy when OCR cannot run; .reason says why in one line."""

    def __init__(self, ok: bool, reason: str = ""):
        self.ok, self.reason = ok, reason

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"Availability({self.ok}, {self.reason!r})"


def available() -> Availability:
    """Whether the OCR engine is installed (checked without importing it)."""
    import importlib.util
    for mod, pkg in (("rapidocr_onnxruntime", "rapidocr-onnxruntime>=1.4.4"),
                     ("onnxruntime", "onnxruntime"), ("cv2", "opencv-python")):
        if importlib.util.find_spec(mod) is None:
            return Availability(False, f"OCR off: {mod} is not installed (pip install {pkg})")
    return Availability(True)


def _engine(threads: int, det_side: int | None = None):
    """One RapidOCR per (threads, detector size), built on first use (~16 MB of ONNX models).
    det_side: run the detector on pictures at most that long (the gate); None: engine default."""
    with _ENGINE_LOCK:
        return _build_engine(threads, det_side)


@lru_cache(maxsize=4)
def _build_engine(threads: int, det_side: int | None):
    from rapidocr_onnxruntime import RapidOCR
    det = {} if det_side is None else {"det_limit_type": "max", "det_limit_side_len": det_side}
    return RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1, **det)


def edge_density(image) -> float:
    """Share of strong-contrast pixels in the picture's densest EDGE_BLOCK block (step 1 of the
    gate): >= EDGE_DENSITY where printed text may be."""
    import cv2
    import numpy as np
    gray = np.asarray(image.convert("L"))
    h, w = gray.shape
    if max(h, w) > EDGE_SIDE:
        s = EDGE_SIDE / max(h, w)
        gray = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))),
                          interpolation=cv2.INTER_AREA)
        h, w = gray.shape
    grad = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    strong = (grad >= EDGE_CONTRAST).astype(np.float32)
    bw, bh = max(1, w // EDGE_BLOCK), max(1, h // EDGE_BLOCK)
    return float(cv2.resize(strong, (bw, bh), interpolation=cv2.INTER_AREA).max())


def _fix_token(tok: str) -> str:
    """0 between letters -> O, then split at letter/digit boundaries."""
    tok = re.sub(r"(?<=[^\W\d_])0(?=[^\W\d_]|$)|(?<=[^\W\d_]{2})0\b", "O", tok)
    return re.sub(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])", " ", tok)


def _gap_spaces(gray, box, char_boxes, chars, gap: float) -> list[int]:
    """Indexes i such that a word gap lies between chars[i] and the next non-space char."""
    import cv2
    import numpy as np
    q = np.asarray(box, dtype=np.float32)
    w = int(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[2] - q[3])))
    h = int(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))
    if w < 8 or h < 8 or h > w or len(char_boxes) != len(chars):
        return []
    m = cv2.getPerspectiveTransform(q, np.float32([[0, 0], [w, 0], [w, h], [0, h]]))
    crop = cv2.warpPerspective(gray, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    band = crop[int(h * 0.05): int(h * 0.95) + 1]
    _, ink = cv2.threshold(band, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if ink.mean() > 0.5:                       # ink is the minority class
        ink = 1 - ink
    blank = ink.sum(axis=0) <= max(1, 0.03 * band.shape[0])
    centres = np.asarray(char_boxes, dtype=np.float32).mean(axis=1)
    xs = cv2.perspectiveTransform(centres[None], m)[0][:, 0]
    idx = [i for i, c in enumerate(chars) if not c.isspace()]
    out = []
    for a, b in zip(idx, idx[1:]):
        if b != a + 1 or not (chars[a].isalnum() and chars[b].isalnum()):
            continue                           # a space is there already, or punctuation
        lo, hi = int(max(xs[a], 0)), int(min(xs[b], w))
        run = best = 0
        for v in blank[lo:hi]:
            run = run + 1 if v else 0
            best = max(best, run)
        if best >= gap * h:
            out.append(a)
    return out


class TextReader:
    """Reads the words printed in a picture: TextReader().read(img) -> "TOKO ROTI 24"."""

    def __init__(self, langs=("en", "id"), threads: int = 2, split_gaps: bool = True,
                 gap: float = GAP, gate: int | None = 480, edge_gate: float | None = EDGE_DENSITY):
        bad = [x for x in langs if x not in SUPPORTED_LANGS]
        if bad or not langs:
            raise ValueError(f"unsupported OCR languages {bad or langs}; RapidOCR reads "
                             f"Latin-script {SUPPORTED_LANGS} (one model for both)")
        self.langs, self.threads = tuple(langs), threads
        self.split_gaps, self.gap, self.gate = split_gaps, gap, gate
        self.edge_gate = edge_gate

    def has_text(self, image) -> bool:
        """The gate: dense strong edges somewhere, then a text box on a small copy?"""
        import numpy as np
        if self.edge_gate and edge_density(image) < self.edge_gate:
            return False
        if not self.gate:
            return True
        small = image.convert("RGB")
        small.thumbnail((self.gate, self.gate))
        boxes, _ = _engine(self.threads, self.gate)(np.asarray(small)[:, :, ::-1], use_det=True,
                                                    use_cls=False, use_rec=False)
        return bool(boxes)

    def lines(self, image):
        """The engine's lines: [(text, score, box, char_boxes, chars)], score >= MIN_SCORE."""
        import numpy as np
        rgb = np.asarray(image.convert("RGB"))
        res, _ = _engine(self.threads)(rgb[:, :, ::-1], return_word_box=True,
                                       text_score=MIN_SCORE)
        return [(r[1], r[2], r[0], r[3], r[4]) for r in (res or []) if len(r) >= 5]

    def read(self, image, larger: Callable | None = None) -> str:
        """The words read, space-separated ("" when the picture has none). The gate looks at
        `image`; `larger()`, when given, supplies the picture to read (a small decode is enough
        to tell, not always to read)."""
        if not self.has_text(image):
            return ""
        if larger is not None:
            image = larger()
        return self.words(image, self.lines(image))

    def words(self, image, lines) -> str:
        """read() for lines already got from self.lines(image)."""
        import numpy as np
        gray = np.asarray(image.convert("L")) if self.split_gaps and lines else None
        words = []
        for text, _score, box, cboxes, chars in lines:
            chars = list(chars)
            if gray is not None:
                for i in reversed(_gap_spaces(gray, box, cboxes, chars, self.gap)):
                    chars.insert(i + 1, " ")
            text = "".join(chars) if chars else text
            words += [_fix_token(t) for t in re.findall(r"\w+(?:[.,]\d+)*", text)]
        return " ".join(" ".join(words).split())


def parse_langs(text: str | None) -> tuple[str, ...]:
    """"en,id" -> ("en", "id"); refuses what the engine cannot read (ValueError, one line)."""
    langs = tuple(x.strip().lower() for x in (text or "en,id").split(",") if x.strip())
    TextReader(langs)  # the one check
    return langs


def reader_for(enabled: bool = True, langs=("en", "id")) -> TextReader | None:
    """The reader indexing uses (CLI, app, JSON API alike): None when OCR is off or the engine
    is not installed. One ONNX thread per call: indexing already reads a picture per core."""
    if not enabled or not available():
        return None
    return TextReader(parse_langs(",".join(langs)) if langs else ("en", "id"), threads=1)


def default_reader() -> TextReader | None:
    return reader_for()
