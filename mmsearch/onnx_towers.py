"""CLIP's two towers as ONNX files, and a torch-free runtime for them.

`mmsearch.onnx_export.export_towers(model, folder)` (needs torch, open_clip and the `onnx`
package) writes

    folder/text.onnx      tokens [N, context_length] int64 -> features [N, D] float32
                          (or [N, <= context_length]: towers.json's text_trim)
    folder/visual.onnx    pixels [N, 3, H, W] float32      -> features [N, D] float32
    folder/*.onnx.data    each graph's weights, raw, beside it (older exports hold them inside)
    folder/towers.json    what the runtime needs: model, dim, image size, preprocessing, tokenizer
    folder/bpe_simple_vocab_16e6.txt.gz   the CLIP vocabulary (so the folder stands alone)

Each file holds only its own tower's weights (input name `input`, output `output`, a
dynamic batch axis, opset 17, as rclip's files). The features are not normalised in the
graph; `OnnxTowers` L2-normalises them.

`OnnxTowers(folder)` runs them with onnxruntime, tokenizing with mmsearch.bpe and
preprocessing pictures with Pillow and numpy exactly as open_clip's eval transform does
(resize, center crop, RGB, /255, mean/std). Importing this module, building an OnnxTowers and
encoding never imports torch: a query from a fresh process pays for onnxruntime only.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmsearch.items import unit_rows

__all__ = ["OnnxTowers", "preprocess_image", "trim_padding", "TOWERS_FILE", "TEXT_FILE",
           "VISUAL_FILE", "FORMAT_VERSION"]

TOWERS_FILE = "towers.json"
TEXT_FILE = "text.onnx"
VISUAL_FILE = "visual.onnx"
DATA_SUFFIX = ".data"  # a tower's weights file: its graph's name + this
# Texts whose vectors are kept (encode_texts): a query asked again (the app's next page, its
# words' vectors) or encoded ahead (a cold search, while the engine loads) costs nothing;
# ViT-B-32's text tower takes 15-80 ms a text on these 2 cores (trimmed or not). 64 x 512
# floats: 128 kB.
RECENT_TEXTS = 64
FORMAT_VERSION = 1
OPSET = 17


def trim_padding(tokens: np.ndarray) -> np.ndarray:
    """Tokens [N, context_length] without the padding columns at the end of every row (a
    text tower exported with `text_trim` answers the same for them, ~4x sooner for a short
    query: see onnx_export._Towers.trimmed_text)."""
    used = np.flatnonzero(tokens.any(axis=0))
    return tokens[:, :int(used[-1]) + 1] if used.size else tokens[:, :1]


# ======================================================================================
# Runtime (no torch)
# ======================================================================================
_BICUBIC, _BILINEAR = 3, 2  # PIL.Image.Resampling values


def _pil_resize(img, size_hw: tuple[int, int], resample: int):
    """torchvision F.resize on a PIL image: unchanged when the size already matches."""
    h, w = size_hw
    if (img.height, img.width) == (h, w):
        return img
    return img.resize((w, h), resample)


def _center_crop(img, size_hw: tuple[int, int], fill: int = 0):
    """torchvision's center_crop / open_clip's center_crop_or_pad on a PIL image."""
    from PIL import ImageOps

    ch, cw = size_hw
    if cw > img.width or ch > img.height:
        left = (cw - img.width) // 2 if cw > img.width else 0
        top = (ch - img.height) // 2 if ch > img.height else 0
        right = (cw - img.width + 1) // 2 if cw > img.width else 0
        bottom = (ch - img.height + 1) // 2 if ch > img.height else 0
        bands = len(img.getbands())
        colour: Any = tuple([fill] * bands) if bands > 1 else fill
        if img.mode != "F":
            colour = tuple(int(x) for x in colour) if isinstance(colour, tuple) else int(colour)
        palette = img.getpalette() if img.mode == "P" else None
        img = ImageOps.expand(img, border=(left, top, right, bottom), fill=colour)
        if palette is not None:
            img.putpalette(palette)
        if (img.height, img.width) == (ch, cw):
            return img
    top = int(round((img.height - ch) / 2.0))
    left = int(round((img.width - cw) / 2.0))
    return img.crop((left, top, left + cw, top + ch))


def _keep_ratio_size(img, target_hw: tuple[int, int], longest: float) -> tuple[int, int]:
    """open_clip's ResizeKeepRatio.get_params (no random scale/aspect)."""
    h, w = img.height, img.width
    ratio_h, ratio_w = h / target_hw[0], w / target_hw[1]
    ratio = max(ratio_h, ratio_w) * longest + min(ratio_h, ratio_w) * (1.0 - longest)
    return round(h / ratio), round(w / ratio)


def preprocess_image(img, image_size: tuple[int, int] | int, mean: Sequence[float],
                     std: Sequence[float], interpolation: str = "bicubic",
                     resize_mode: str = "shortest", fill_color: int = 0) -> np.ndarray:
    """A PIL image -> float32 [3, H, W], as open_clip.transform.image_transform(is_train=False):
    the resize and crop happen in the picture's own mode, RGB conversion after them."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    resample = _BILINEAR if interpolation == "bilinear" else _BICUBIC
    if resize_mode == "longest":
        img = _pil_resize(img, _keep_ratio_size(img, size, 1.0), resample)
        img = _center_crop(img, size, fill=fill_color)
    elif resize_mode == "squash":
        img = _pil_resize(img, size, resample)
    elif resize_mode == "shortest":
        if size[0] == size[1]:  # torchvision Resize(int): the short side to size, long floored
            w, h = img.width, img.height
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = size[0], int(size[0] * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
            img = _pil_resize(img, (new_h, new_w), resample)
        else:  # open_clip uses ResizeKeepRatio(size) here: always bicubic
            img = _pil_resize(img, _keep_ratio_size(img, size, 0.0), _BICUBIC)
        img = _center_crop(img, size)
    else:
        raise ValueError(f"unknown resize_mode {resize_mode!r}")
    img = img.convert("RGB")
    x = np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(255)
    x = x.transpose(2, 0, 1)
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    s = np.asarray(std, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((x - m) / s, dtype=np.float32)


class OnnxTowers:
    """Encodes strings and PIL images into L2-normalised float32 vectors with the ONNX towers
    in `folder` (written by export_towers). Sessions load lazily, each tower on its first use.
    Thread-safe; never imports torch."""

    def __init__(self, folder: str | os.PathLike, threads: int | None = None,
                 record: dict | None = None):
        self.folder = Path(folder)
        if record is None:
            path = self.folder / TOWERS_FILE
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: export the towers first "
                                        "(mmsearch.onnx_export.export_towers)")
            record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("format") != FORMAT_VERSION:
            raise ValueError(f"{self.folder}: towers format {record.get('format')!r}, "
                             f"this mmsearch reads {FORMAT_VERSION}")
        self.record = record
        self.threads = int(threads or os.cpu_count() or 1)
        self._sessions: dict[str, Any] = {}
        self._tokenizer = None
        self._lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()  # apart: it is built while a session opens
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()  # RECENT_TEXTS
        self._recent_lock = threading.Lock()

    # -- facts from towers.json ---------------------------------------------------------
    @property
    def model(self) -> str | None:
        return self.record.get("model")

    @property
    def dim(self) -> int:
        return int(self.record["embed_dim"])

    @property
    def image_size(self) -> int:
        return int(max(self.record["image_size"]))

    @property
    def context_length(self) -> int:
        return int(self.record["context_length"])

    # -- loading --------------------------------------------------------------------------
    def _session(self, tower: str):
        sess = self._sessions.get(tower)
        if sess is None:
            with self._lock:
                sess = self._sessions.get(tower)
                if sess is None:
                    sess = self._sessions[tower] = self._new_session(tower)
        return sess

    def _new_session(self, tower: str):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.log_severity_level = 3
        # No busy-waiting between runs: the threads spun on the cores the engine's search
        # needs next. A resident app's text query at 100k, 60 in-process taking turns:
        # p50 122.6 ms spinning, 78.0 ms not.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        graph = self.folder / self.record[tower]
        if not graph.is_file():  # exported again since this record was read (retrim_text_tower)
            newer = json.loads((self.folder / TOWERS_FILE).read_text(encoding="utf-8"))
            if newer.get("format") == FORMAT_VERSION and newer.get("model") == self.model:
                self.record = newer
                graph = self.folder / newer[tower]
        return ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            with self._tokenizer_lock:
                if self._tokenizer is None:
                    from mmsearch.bpe import BPETokenizer

                    cfg = self.record["tokenizer"]
                    if cfg.get("kind") != "clip-bpe":
                        raise ValueError(f"unsupported tokenizer kind {cfg.get('kind')!r}")
                    local = self.folder / cfg.get("vocab", "")
                    self._tokenizer = BPETokenizer(
                        vocab_path=local if local.is_file() else None,
                        context_length=int(cfg["context_length"]), clean=cfg.get("clean", "lower"),
                        additional_special_tokens=cfg.get("additional_special_tokens"))
        return self._tokenizer

    def warm(self, text: bool = True, visual: bool = True) -> "OnnxTowers":
        """Open the towers' sessions and build the tokenizer, now."""
        opening = self.warm_meanwhile(text, visual)
        if opening is not None:
            opening.join()
        return self

    def warm_meanwhile(self, text: bool = True, visual: bool = True, tokenizer: bool = True):
        """Start opening the towers' sessions in a thread and build the tokenizer here (unless
        `tokenizer` is False: the caller builds it later); the thread is returned (a query
        waits for its session anyway: `_session` holds the lock while one opens). ONNX
        Runtime reads a tower (ViT-B-32's text tower: 0.2-0.25 s) without holding the GIL, so
        the tokenizer's Python (~0.15-0.5 s) and a cold search's other start-up run beside it.
        The thread imports nothing: two threads importing at once can get a partly
        initialised module."""
        towers = [t for t, wanted in (("text", text), ("visual", visual)) if wanted]
        if not towers:
            return None
        import onnxruntime  # noqa: F401 - here, not in the thread

        opened = threading.Event()

        def open_sessions() -> None:
            with self._lock:
                opened.set()  # the lock is taken: a query now waits for these sessions
                try:
                    for tower in towers:
                        if tower not in self._sessions:
                            self._sessions[tower] = self._new_session(tower)
                except Exception:  # noqa: BLE001 - the query opens it again and says why
                    pass

        opening = threading.Thread(target=open_sessions, name="towers", daemon=True)
        opening.start()
        opened.wait()
        if text and tokenizer:
            _ = self.tokenizer
        return opening

    def _run(self, tower: str, x: np.ndarray) -> np.ndarray:
        return self._session(tower).run(["output"], {"input": x})[0]

    # -- encoding -------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        return self.tokenizer(list(texts))

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Strings -> [N, D] unit vectors (the RECENT_TEXTS last ones are kept)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._recent_lock:
            known = {t: self._recent[t] for t in texts if t in self._recent}
            for t in known:
                self._recent.move_to_end(t)
        todo = [t for t in dict.fromkeys(texts) if t not in known]
        if todo:
            trim = trim_padding if self.record.get("text_trim") else (lambda tokens: tokens)
            out = unit_rows(np.concatenate([
                self._run("text", trim(self.tokenize(todo[i:i + batch_size])))
                for i in range(0, len(todo), batch_size)]))
            new = dict(zip(todo, out))
            known |= new
            with self._recent_lock:
                self._recent.update(new)
                while len(self._recent) > RECENT_TEXTS:
                    self._recent.popitem(last=False)
        return np.stack([known[t] for t in texts])

    def preprocess(self, img) -> np.ndarray:
        """A PIL image -> float32 [3, H, W], open_clip's eval preprocessing for this model."""
        pp = self.record["preprocess"]
        return preprocess_image(img, tuple(self.record["image_size"]), pp["mean"], pp["std"],
                                pp.get("interpolation", "bicubic"),
                                pp.get("resize_mode", "shortest"), pp.get("fill_color", 0))

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """A preprocessed batch [N, 3, H, W] -> [N, D] unit vectors."""
        return unit_rows(self._run("visual", np.ascontiguousarray(pixels, dtype=np.float32)))

    def encode_images(self, images: Sequence, batch_size: int = 32) -> np.ndarray:
        """PIL images -> [N, D] unit vectors."""
        images = list(images)
        if not images:
            return np.zeros((0, self.dim), np.float32)
        out = [self.encode_pixels(np.stack([self.preprocess(im) for im in images[i:i + batch_size]]))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out)
