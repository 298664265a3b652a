"""The Encoder: one open_clip model that turns pictures and sentences into unit vectors.

The model loads lazily on first use (or `warm()`), never at import, so `mmsearch --help`
and index maintenance stay instant and nothing is downloaded before it is needed.
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

import numpy as np

from mmsearch.config import DEMO_MODEL, DEMO_MODEL_DIR, RANDOM_WEIGHTS, ModelSpec
from mmsearch.errors import ModelLoadError
from mmsearch.items import unit_rows

DEMO_CONFIG = DEMO_MODEL_DIR / "mmsearch-demo.json"
DEMO_WEIGHTS = DEMO_MODEL_DIR / "mmsearch-demo.pt"
DEMO_ARCH = "mmsearch-demo"


def _open_clip():
    import open_clip

    if DEMO_ARCH not in open_clip.list_models():
        open_clip.add_model_config(DEMO_CONFIG)  # idempotent registry of a shipped config
    return open_clip


def _arch_and_weights(spec: ModelSpec) -> tuple[str, str | None]:
    if spec.name == DEMO_MODEL:
        return DEMO_ARCH, str(DEMO_WEIGHTS)
    return spec.name, None if spec.pretrained in (None, RANDOM_WEIGHTS) else spec.pretrained


def native_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX): there bf16
    inference is several times faster than fp32, with vectors within 0.995 cosine of fp32
    (measured by bench/fidelity.py)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


PRECISIONS = ("auto", "fp32", "bf16")


def check_spec(spec: ModelSpec) -> None:
    """Refuse, before an index is created with it, a model that cannot be what the user meant:
    an unknown architecture, or one given without weights (open_clip would silently build
    untrained weights)."""
    arch = spec.name
    # demo and random need no weights; hub/local-dir names carry their own weights
    if arch == DEMO_MODEL or spec.is_random or arch.startswith(("hf-hub:", "local-dir:")):
        return
    open_clip = _open_clip()
    if arch not in open_clip.list_models():
        raise ModelLoadError(f"unknown open_clip model {arch!r}; see open_clip.list_models()")
    if spec.pretrained is None:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none published"
        raise ModelLoadError(f"--model {arch} needs --pretrained: a tag ({tags}), a checkpoint "
                             "file, or 'random' for speed tests")


class Encoder:
    """Encodes PIL images and strings into L2-normalised float32 vectors in one space.

    precision: "fp32", "bf16", or "auto" (bf16 on CPUs with native bf16, else fp32). The
    returned vectors are float32 either way.
    """

    def __init__(self, spec: ModelSpec, device: str = "cpu", precision: str = "auto"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.spec = spec
        self.device = device
        self.precision = precision
        # resolved once: encode_pixels runs per batch and per query
        self.dtype_name = ("bf16" if device == "cpu" and native_bf16() else "fp32") \
            if precision == "auto" else precision
        self._model = None
        self._preprocess: Callable | None = None
        self._tokenizer: Callable | None = None
        self._lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._model is not None

    def warm(self) -> "Encoder":
        """Load the model now (the app and the indexer call this at start-up)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._load()
        return self

    def _load(self) -> None:
        import logging
        import os
        import pickle

        open_clip = _open_clip()
        arch, weights = _arch_and_weights(self.spec)
        try:
            # weights_only: a checkpoint is data, never code. A .pt file is a pickle, and
            # unpickling can run anything it names; torch>=2.10 (our floor) restricts it to
            # tensors and plain containers.
            root = logging.getLogger()
            level, root.level = root.level, logging.CRITICAL  # open_clip logs its own failure
            try:
                model, _, preprocess = open_clip.create_model_and_transforms(
                    arch, pretrained=weights, device=self.device, weights_only=True)
            finally:
                root.setLevel(level)
        except pickle.UnpicklingError:
            raise ModelLoadError(
                f"refused the checkpoint {weights}: it is not a plain weights file (loading it "
                "would run code stored in it); use one saved with "
                "torch.save(model.state_dict(), ...) or a .safetensors file") from None
        except (RuntimeError, OSError, EOFError, KeyError, ValueError) as exc:
            hint = ""
            if weights and not weights.startswith("/"):
                hint = (" The weights download once into the Hugging Face cache; this needs the "
                        "internet (HF_HUB_OFFLINE="
                        f"{os.environ.get('HF_HUB_OFFLINE', 'unset')}). "
                        "Offline, use the embedded model: --model demo.")
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:400]
            raise ModelLoadError(f"could not load model {self.spec.label}: {reason}.{hint}") \
                from None
        model.eval()
        if self.dtype_name == "bf16":
            import torch

            model = model.to(torch.bfloat16)
        self._tokenizer = open_clip.get_tokenizer(arch)
        self._preprocess = preprocess
        self._model = model

    @property
    def dim(self) -> int:
        """Vector size, read from the architecture's config without loading weights."""
        arch, _ = _arch_and_weights(self.spec)
        cfg = _open_clip().get_model_config(arch)
        if cfg is not None:
            return int(cfg["embed_dim"])
        self.warm()
        return int(self._model.text_projection.shape[1])

    @property
    def preprocess(self) -> Callable:
        """PIL image -> model input tensor (picklable; decode workers run it)."""
        self.warm()
        return self._preprocess

    @property
    def image_size(self) -> int:
        self.warm()
        size = self._model.visual.preprocess_cfg.get("size", 224)
        return int(size if isinstance(size, int) else max(size))

    # -- encoding ------------------------------------------------------------------------
    def encode_pixels(self, pixels) -> np.ndarray:
        """A preprocessed batch tensor [N,3,H,W] -> [N,D] unit vectors."""
        import torch

        self.warm()
        dtype = torch.bfloat16 if self.dtype_name == "bf16" else torch.float32
        with torch.inference_mode():
            feats = self._model.encode_image(pixels.to(self.device, dtype))
        return _normalise(feats)

    def encode_images(self, images: Sequence, batch_size: int = 32) -> np.ndarray:
        import torch

        self.warm()
        out = [self.encode_pixels(torch.stack([self._preprocess(img) for img in
                                               images[i:i + batch_size]]))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        self.warm()
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            feats = self._model.encode_text(self._tokenizer(list(texts)).to(self.device))
        return _normalise(feats)


def _normalise(feats) -> np.ndarray:
    return unit_rows(feats.float().cpu().numpy())
