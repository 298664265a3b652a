"""CLIP's two towers as ONNX files, and a torch-free runtime for them.

`export_towers(model, folder)` (needs torch, open_clip and the `onnx` package) writes

    folder/text.onnx      tokens [N, context_length] int64 -> features [N, D] float32
    folder/visual.onnx    pixels [N, 3, H, W] float32      -> features [N, D] float32
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
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["OnnxTowers", "export_towers", "preprocess_image", "TOWERS_FILE", "TEXT_FILE",
           "VISUAL_FILE", "FORMAT_VERSION"]

TOWERS_FILE = "towers.json"
TEXT_FILE = "text.onnx"
VISUAL_FILE = "visual.onnx"
FORMAT_VERSION = 1
OPSET = 17


# ======================================================================================
# Export (torch side)
# ======================================================================================
def _resolve_model(spec_or_model: Any, arch: str | None, label: str | None):
    """-> (fp32 eval model, open_clip architecture name or None, label or None)."""
    import copy

    import torch

    from mmsearch.config import ModelSpec
    from mmsearch.encoder import Encoder, _arch_and_weights

    if isinstance(spec_or_model, ModelSpec):
        spec_or_model = Encoder(spec_or_model, precision="fp32")
    if isinstance(spec_or_model, Encoder):
        enc = spec_or_model
        if enc.dtype_name != "fp32":  # a bf16 copy: reload fp32 weights, never upcast bf16 ones
            enc = Encoder(enc.spec, precision="fp32")
        model = enc.warm()._model
        return (model, arch or _arch_and_weights(enc.spec)[0], label or enc.spec.label)
    model = spec_or_model
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "visual"):
        raise TypeError("export_towers takes a ModelSpec, an Encoder or an open_clip model, "
                        f"not {type(model).__name__}")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        model = copy.deepcopy(model).float()
    return model.eval(), arch, label


def _text_config(model, arch: str | None) -> dict:
    from mmsearch.bpe import UnsupportedTokenizer, check_text_config, model_text_config

    text = getattr(model, "text", None)
    if text is not None and "HF" in type(text).__name__:
        raise UnsupportedTokenizer(f"{arch or type(model).__name__}: its text tower is a Hugging "
                                   "Face model; mmsearch.bpe supports only CLIP's SimpleTokenizer")
    if arch:
        from mmsearch.encoder import _open_clip

        cfg = _open_clip().get_model_config(arch)
        if cfg is None:
            text_cfg = model_text_config(arch)
        else:
            text_cfg = cfg.get("text_cfg", {})
        args = check_text_config(arch, text_cfg)
    else:
        args = {"context_length": None, "clean": "lower", "additional_special_tokens": None}
    ctx = getattr(model, "context_length", None) or getattr(text, "context_length", None)
    args["context_length"] = int(ctx or args["context_length"] or 77)
    return args


class _Towers:
    """The wrapper modules, built lazily so this file imports without torch."""

    @staticmethod
    def text(model):
        import copy

        import torch

        class TextTower(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                if isinstance(getattr(model, "text", None), torch.nn.Module):  # CustomTextCLIP
                    self.text = model.text
                    self.clip = None
                else:
                    # a shallow copy of the CLIP that shares the text weights and lacks the
                    # visual tower (and the logit scale): only text weights reach the file
                    clip = copy.copy(model)
                    clip._modules = {k: v for k, v in model._modules.items() if k != "visual"}
                    clip._parameters = {k: v for k, v in model._parameters.items()
                                        if not k.startswith("logit_")}
                    self.text = None
                    self.clip = clip

            def forward(self, input):
                return self.text(input) if self.clip is None else self.clip.encode_text(input)

        return TextTower(model).eval()

    @staticmethod
    def visual(model):
        import torch

        class VisualTower(torch.nn.Module):
            def __init__(self, visual):
                super().__init__()
                self.visual = visual

            def forward(self, input):
                return self.visual(input)

        return VisualTower(model.visual).eval()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


def export_towers(spec_or_model: Any, folder: str | os.PathLike, *, arch: str | None = None,
                  label: str | None = None, verify: bool = True) -> dict:
    """Export the text and visual towers of an open_clip model to ONNX files in `folder`.

    spec_or_model: a ModelSpec, an mmsearch Encoder (a bf16 one is reloaded in fp32) or a
    loaded open_clip model (converted to fp32 on a copy if needed; give `arch`, its open_clip
    name, so the tokenizer's options are read from its config). `verify` runs both files on a
    small batch and raises RuntimeError if they drift from torch (cosine < 0.999).
    Returns the towers.json record (plus "export_s", the seconds it took).
    """
    import warnings

    import open_clip
    import torch

    from mmsearch.bpe import BPETokenizer, default_vocab_path

    t0 = time.perf_counter()
    model, arch, label = _resolve_model(spec_or_model, arch, label)
    tok_args = _text_config(model, arch)
    vocab_src = default_vocab_path()
    tokenizer = BPETokenizer(vocab_path=vocab_src, **tok_args)
    if arch:  # our tokenizer must be open_clip's, id for id
        probe = ["a red dress", "Sepatu lari ringan MERAH!", "", "😀 café &amp; naïve",
                 "word " * 100]
        ref = open_clip.get_tokenizer(arch)
        if type(ref).__name__ != "SimpleTokenizer" or \
                not np.array_equal(tokenizer(probe), ref(probe).numpy()):
            raise RuntimeError(f"mmsearch.bpe does not reproduce {arch}'s tokenizer "
                               f"({type(ref).__name__})")

    pp = dict(model.visual.preprocess_cfg)
    size = pp.get("size", 224)
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TOWERS_FILE).unlink(missing_ok=True)  # its presence marks a complete export

    text_tower, visual_tower = _Towers.text(model), _Towers.visual(model)
    tokens = torch.from_numpy(tokenizer(["a photo of a red dress", "sepatu lari"]))
    pixels = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref_text = text_tower(tokens).float().numpy()
        ref_visual = visual_tower(pixels).float().numpy()
    dim = int(ref_text.shape[1])

    common = dict(dynamo=False, opset_version=OPSET, input_names=["input"],
                  output_names=["output"], do_constant_folding=True,
                  dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    # Not under no_grad/inference_mode: there nn.MultiheadAttention (ViT towers) takes its
    # fused fast path, aten::_native_multi_head_attention, which has no ONNX symbolic.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript exporter deprecation / tracer notes
        for tower, example, name in ((text_tower, tokens, TEXT_FILE),
                                     (visual_tower, pixels, VISUAL_FILE)):
            tmp = folder / (name + ".tmp")
            try:
                torch.onnx.export(tower, (example,), str(tmp), **common)
                os.replace(tmp, folder / name)
            finally:
                tmp.unlink(missing_ok=True)
    vocab_dst = folder / vocab_src.name
    if not vocab_dst.exists():
        shutil.copyfile(vocab_src, vocab_dst)

    record = {
        "format": FORMAT_VERSION,
        "model": label,
        "arch": arch,
        "embed_dim": dim,
        "image_size": [h, w],
        "preprocess": {
            "mode": pp.get("mode", "RGB"),
            "mean": [float(x) for x in pp.get("mean")],
            "std": [float(x) for x in pp.get("std")],
            "interpolation": pp.get("interpolation", "bicubic"),
            "resize_mode": pp.get("resize_mode", "shortest"),
            "fill_color": int(pp.get("fill_color", 0)),
        },
        "context_length": tokenizer.context_length,
        "tokenizer": {**tokenizer.config(),
                      "additional_special_tokens": tok_args.get("additional_special_tokens")},
        "text": TEXT_FILE,
        "visual": VISUAL_FILE,
        "normalised": False,
        "inputs": {"text": ["batch", tokenizer.context_length], "visual": ["batch", 3, h, w]},
        "exported_with": {"torch": torch.__version__,
                          "open_clip": getattr(open_clip, "__version__", None),
                          "opset": OPSET},
    }
    if verify:
        towers = OnnxTowers(folder, record=record)
        text_cos = _cosines(towers._run("text", tokens.numpy()), ref_text)
        vis_cos = _cosines(towers._run("visual", pixels.numpy()), ref_visual)
        record["verified"] = {"text_min_cos": float(text_cos.min()),
                              "visual_min_cos": float(vis_cos.min())}
        if min(text_cos.min(), vis_cos.min()) < 0.999:
            raise RuntimeError(f"the exported towers drift from torch: {record['verified']}")
    tmp = folder / (TOWERS_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / TOWERS_FILE)
    return {**record, "export_s": time.perf_counter() - t0}


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


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


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
                                        "(mmsearch.onnx_towers.export_towers)")
            record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("format") != FORMAT_VERSION:
            raise ValueError(f"{self.folder}: towers format {record.get('format')!r}, "
                             f"this mmsearch reads {FORMAT_VERSION}")
        self.record = record
        self.threads = int(threads or os.cpu_count() or 1)
        self._sessions: dict[str, Any] = {}
        self._tokenizer = None
        self._lock = threading.Lock()

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
                    import onnxruntime as ort

                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads = self.threads
                    opts.log_severity_level = 3
                    sess = ort.InferenceSession(str(self.folder / self.record[tower]), opts,
                                                providers=["CPUExecutionProvider"])
                    self._sessions[tower] = sess
        return sess

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            with self._lock:
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
        if text:
            self._session("text")
            _ = self.tokenizer
        if visual:
            self._session("visual")
        return self

    def _run(self, tower: str, x: np.ndarray) -> np.ndarray:
        return self._session(tower).run(["output"], {"input": x})[0]

    # -- encoding -------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        return self.tokenizer(list(texts))

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Strings -> [N, D] unit vectors."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = [self._run("text", self.tokenize(texts[i:i + batch_size]))
               for i in range(0, len(texts), batch_size)]
        return _normalise(np.concatenate(out))

    def preprocess(self, img) -> np.ndarray:
        """A PIL image -> float32 [3, H, W], open_clip's eval preprocessing for this model."""
        pp = self.record["preprocess"]
        return preprocess_image(img, tuple(self.record["image_size"]), pp["mean"], pp["std"],
                                pp.get("interpolation", "bicubic"),
                                pp.get("resize_mode", "shortest"), pp.get("fill_color", 0))

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """A preprocessed batch [N, 3, H, W] -> [N, D] unit vectors."""
        return _normalise(self._run("visual", np.ascontiguousarray(pixels, dtype=np.float32)))

    def encode_images(self, images: Sequence, batch_size: int = 32) -> np.ndarray:
        """PIL images -> [N, D] unit vectors."""
        images = list(images)
        if not images:
            return np.zeros((0, self.dim), np.float32)
        out = [self.encode_pixels(np.stack([self.preprocess(im) for im in images[i:i + batch_size]]))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out)
