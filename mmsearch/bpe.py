"""CLIP's byte-pair-encoding tokenizer without torch: numpy, regex and ftfy only.

A re-implementation of open_clip's default `SimpleTokenizer` (open_clip/tokenizer.py, itself
OpenAI CLIP's): the same vocabulary file (`bpe_simple_vocab_16e6.txt.gz`, which open_clip
ships and which is found here without importing open_clip, since that imports torch), the same
cleaning (ftfy.fix_text, html.unescape twice, whitespace collapsed, lower case by default),
the same pre-tokenising regex, `<start_of_text>`/`<end_of_text>` around every text, zero
padding, and truncation that keeps the first `context_length - 1` tokens and ends with
`<end_of_text>`. It gives the ids `open_clip.get_tokenizer(name)` gives for models that use
the SimpleTokenizer (the OpenAI-style CLIPs: ViT-B-32, the embedded `demo` model...).

Models whose text tower uses another tokenizer (a Hugging Face one such as xlm-roberta, or
SigLIP's sentencepiece) are not supported: `tokenizer_for_model` raises UnsupportedTokenizer.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import string
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import regex as re

__all__ = ["BPETokenizer", "UnsupportedTokenizer", "default_vocab_path", "model_text_config",
           "tokenizer_for_model", "DEFAULT_CONTEXT_LENGTH", "VOCAB_FILE", "CLEAN_MODES"]

DEFAULT_CONTEXT_LENGTH = 77
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
CLEAN_MODES = ("lower", "whitespace", "canonicalize")
SOT, EOT = "<start_of_text>", "<end_of_text>"


class UnsupportedTokenizer(ValueError):
    """The model's text tower does not use CLIP's SimpleTokenizer (or uses an option of it,
    such as a random reduction mask, that this module does not reproduce)."""


# -- the vocabulary ---------------------------------------------------------------------
def default_vocab_path() -> Path:
    """open_clip's vocabulary file, found through the import system without importing open_clip."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the CLIP vocabulary {VOCAB_FILE} ships with open_clip_torch, which is not "
            "installed; pass vocab_path= (a copy sits in each exported towers folder)")
    for base in spec.submodule_search_locations:
        path = Path(base) / VOCAB_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{VOCAB_FILE} not found in the open_clip package "
                            f"({', '.join(spec.submodule_search_locations)})")


@lru_cache()
def _bytes_to_unicode() -> dict[int, str]:
    """utf-8 bytes -> printable unicode characters (CLIP's reversible byte mapping)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


@lru_cache(maxsize=4)
def _load_merges(path: str) -> tuple[tuple[str, str], ...]:
    with gzip.open(path) as f:
        lines = f.read().decode("utf-8").split("\n")
    lines = lines[1:49152 - 256 - 2 + 1]  # the same slice open_clip takes: 48894 merges
    return tuple(tuple(line.split()) for line in lines)


# -- cleaning ---------------------------------------------------------------------------
# Text ftfy.fix_text returns unchanged: printable ASCII without "&" (no mojibake, entity,
# control, wide or curly character to fix; tests/test_onnx_towers.py checks 5,000 strings).
# Most queries are such text, and skipping ftfy's import saves ~37 ms of a cold search.
_FTFY_CANNOT_CHANGE = re.compile(r"[\x20-\x25\x27-\x7e]*")


def _fix_text(text: str) -> str:
    if _FTFY_CANNOT_CHANGE.fullmatch(text):
        return text
    import ftfy

    return ftfy.fix_text(text)


def _basic_clean(text: str) -> str:
    text = _fix_text(text)
    text = html.unescape(html.unescape(text))
    return text.strip()


def _whitespace_clean(text: str) -> str:
    return " ".join(text.split()).strip()


_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _canonicalize(text: str) -> str:
    text = text.replace("_", " ").translate(_PUNCTUATION).lower()
    return " ".join(text.split()).strip()


_CLEANERS = {
    "lower": lambda t: _whitespace_clean(_basic_clean(t)).lower(),
    "whitespace": lambda t: _whitespace_clean(_basic_clean(t)),
    "canonicalize": lambda t: _canonicalize(_basic_clean(t)),
}


def _pairs(word: tuple[str, ...]) -> set[tuple[str, str]]:
    return {(a, b) for a, b in zip(word, word[1:])}


# -- the tokenizer ----------------------------------------------------------------------
class BPETokenizer:
    """texts -> int64 array [N, context_length] of CLIP token ids, as open_clip's SimpleTokenizer."""

    def __init__(self, vocab_path: str | Path | None = None,
                 context_length: int = DEFAULT_CONTEXT_LENGTH, clean: str = "lower",
                 additional_special_tokens: Sequence[str] | None = None):
        if clean not in _CLEANERS:
            raise UnsupportedTokenizer(f"clean must be one of {', '.join(CLEAN_MODES)}, "
                                       f"not {clean!r}")
        if not context_length or int(context_length) < 2:
            raise ValueError(f"context_length must be at least 2, not {context_length!r}")
        self.vocab_path = Path(vocab_path) if vocab_path else default_vocab_path()
        self.context_length = int(context_length)
        self.clean = clean
        self._clean_fn = _CLEANERS[clean]
        self.byte_encoder = _bytes_to_unicode()
        merges = _load_merges(str(self.vocab_path))
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab.extend("".join(m) for m in merges)
        special = [SOT, EOT] + list(additional_special_tokens or [])
        vocab.extend(special)
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {t: t for t in special}
        self.pat = re.compile("|".join(special) +
                              r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                              re.IGNORECASE)
        self.vocab_size = len(self.encoder)
        self.sot_token_id = self.encoder[SOT]
        self.eot_token_id = self.encoder[EOT]

    def bpe(self, token: str) -> str:
        cached = self.cache.get(token)
        if cached is not None:
            return cached
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = _pairs(word)
        if not pairs:
            return token + "</w>"
        ranks = self.bpe_ranks
        inf = float("inf")
        while True:
            bigram = min(pairs, key=lambda p: ranks.get(p, inf))
            if bigram not in ranks:
                break
            first, second = bigram
            new_word: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        """One text -> its BPE ids, without start/end tokens or truncation."""
        ids: list[int] = []
        for token in re.findall(self.pat, self._clean_fn(text)):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return ids

    @cached_property
    def decoder(self) -> dict[int, str]:  # only `decode` needs it: not built for queries
        return {v: k for k, v in self.encoder.items()}

    @cached_property
    def byte_decoder(self) -> dict[str, int]:
        return {v: k for k, v in self.byte_encoder.items()}

    def decode(self, ids: Iterable[int]) -> str:
        text = "".join(self.decoder[int(i)] for i in ids)
        return bytearray(self.byte_decoder[c] for c in text).decode(
            "utf-8", errors="replace").replace("</w>", " ")

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        n_ctx = int(context_length or self.context_length)
        out = np.zeros((len(texts), n_ctx), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot_token_id] + self.encode(text) + [self.eot_token_id]
            if len(ids) > n_ctx:
                ids = ids[:n_ctx]
                ids[-1] = self.eot_token_id
            out[row, :len(ids)] = ids
        return out

    def config(self) -> dict:
        """What towers.json records to rebuild this tokenizer."""
        return {"kind": "clip-bpe", "vocab": VOCAB_FILE, "context_length": self.context_length,
                "clean": self.clean}


# -- which tokenizer a model uses -------------------------------------------------------
def _demo_config_path() -> Path:
    from mmsearch.config import DEMO_MODEL_DIR  # plain paths; imports no model code

    return DEMO_MODEL_DIR / "mmsearch-demo.json"


def model_text_config(model_name: str) -> dict:
    """The `text_cfg` of an open_clip model config, read from its JSON file (open_clip's
    model_configs folder, or the embedded demo model's), without importing open_clip."""
    if model_name.startswith("hf-hub:"):
        raise UnsupportedTokenizer(f"{model_name}: hub model configs are not read offline here; "
                                   "export the model's towers and use their towers.json")
    if model_name.startswith("local-dir:"):
        path = Path(model_name[len("local-dir:"):]) / "open_clip_config.json"
        return json.loads(path.read_text(encoding="utf-8"))["model_cfg"].get("text_cfg", {})
    if model_name in ("demo", "mmsearch-demo"):
        path = _demo_config_path()
    else:
        spec = importlib.util.find_spec("open_clip")
        locations = list(spec.submodule_search_locations or []) if spec else []
        path = next((Path(b) / "model_configs" / f"{model_name}.json" for b in locations
                     if (Path(b) / "model_configs" / f"{model_name}.json").is_file()), None)
        if path is None:
            raise UnsupportedTokenizer(f"no open_clip model config named {model_name!r}")
    return json.loads(path.read_text(encoding="utf-8")).get("text_cfg", {})


def check_text_config(model_name: str, text_cfg: dict) -> dict:
    """The SimpleTokenizer arguments for a model's text_cfg, or UnsupportedTokenizer, following
    the choice open_clip.get_tokenizer makes."""
    if text_cfg.get("hf_tokenizer_name"):
        raise UnsupportedTokenizer(
            f"{model_name} uses the Hugging Face tokenizer {text_cfg['hf_tokenizer_name']!r}; "
            "mmsearch.bpe supports only the models that use CLIP's SimpleTokenizer")
    if "siglip" in model_name.lower():
        raise UnsupportedTokenizer(f"{model_name} uses SigLIP's sentencepiece tokenizer; "
                                   "mmsearch.bpe supports only CLIP's SimpleTokenizer models")
    kwargs = dict(text_cfg.get("tokenizer_kwargs") or {})
    if kwargs.pop("reduction_mask", ""):
        raise UnsupportedTokenizer(f"{model_name} tokenizes with a reduction mask, which "
                                   "mmsearch.bpe does not reproduce")
    unknown = set(kwargs) - {"clean", "additional_special_tokens"}
    if unknown:
        raise UnsupportedTokenizer(f"{model_name}: unsupported tokenizer options {sorted(unknown)}")
    return {"context_length": int(text_cfg.get("context_length", DEFAULT_CONTEXT_LENGTH)),
            "clean": kwargs.get("clean", "lower"),
            "additional_special_tokens": kwargs.get("additional_special_tokens")}


def tokenizer_for_model(model_name: str, context_length: int | None = None,
                        vocab_path: str | Path | None = None) -> BPETokenizer:
    """The torch-free equivalent of open_clip.get_tokenizer(model_name) ("demo" and
    "mmsearch-demo" name the embedded model)."""
    args = check_text_config(model_name, model_text_config(model_name))
    if context_length:
        args["context_length"] = int(context_length)
    return BPETokenizer(vocab_path=vocab_path, **args)
