"""Export CLIP's two towers to ONNX files (the torch side of mmsearch.onnx_towers).

Needs torch, open_clip and the `onnx` package; the files it writes and the torch-free runtime
that reads them are described in mmsearch.onnx_towers. Kept apart from that runtime so that
a query in a fresh process never even reads the export code.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.onnx_towers import (DATA_SUFFIX, FORMAT_VERSION, OPSET, TEXT_FILE, TOWERS_FILE,
                                  VISUAL_FILE, OnnxTowers, trim_padding)

__all__ = ["export_towers", "weights_apart", "retrim_text_tower"]


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
    def trimmed_text(model):
        """The text tower, its attention written out so that the token axis stays dynamic
        (torch.nn.MultiheadAttention traces its sequence length as a constant), or None for a
        tower this does not cover. The runtime then cuts the padding off a batch before it
        runs: CLIP's text attention is causal and it pools at the end-of-text token, so the
        padding after that token changes nothing. ViT-B-32, one text here: 77 tokens
        55.5 ms, the 9 of "a red dress number 3" 13.5 ms (same vector, cosine 1.0)."""
        import torch
        import torch.nn.functional as F

        tower = model.text if isinstance(getattr(model, "text", None), torch.nn.Module) \
            else model
        pool = getattr(tower, "pool_type", getattr(tower, "text_pool_type", None))
        eos = getattr(tower, "eos_id", getattr(tower, "text_eos_id", None))
        blocks = list(getattr(getattr(tower, "transformer", None), "resblocks", []))
        if pool not in ("argmax", "eos") or (pool == "eos" and eos is None) \
                or getattr(tower, "attn_mask", None) is None \
                or getattr(tower, "cls_emb", None) is not None \
                or getattr(tower, "use_pad_mask", False) \
                or not blocks or not getattr(tower.transformer, "batch_first", False) \
                or not all(_plain_block(b) for b in blocks):
            return None

        def block(r, x, mask):
            a = r.attn
            q, k, v = F.linear(r.ln_1(x), a.in_proj_weight, a.in_proj_bias).chunk(3, dim=-1)
            q, k, v = (t.unflatten(-1, (a.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + r.ls_1(a.out_proj(o.transpose(1, 2).flatten(2)))
            return x + r.ls_2(r.mlp(r.ln_2(x)))

        class TrimmedTextTower(torch.nn.Module):
            def __init__(self, tower):
                super().__init__()
                self.tower = tower

            def forward(self, input):
                t = self.tower
                at = torch.arange(input.shape[1])
                x = t.token_embedding(input) + t.positional_embedding.index_select(0, at)
                mask = t.attn_mask.index_select(0, at).index_select(1, at)
                for r in t.transformer.resblocks:
                    x = block(r, x, mask)
                x = t.ln_final(x)  # pooled as open_clip's text_global_pool does
                at = input.argmax(dim=-1) if pool == "argmax" else \
                    (input == eos).int().argmax(dim=-1)
                x = x[torch.arange(x.shape[0]), at]
                proj = t.text_projection
                if proj is None:
                    return x
                return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj

        inner = _Towers.text(model)  # without the visual tower's weights
        return TrimmedTextTower(inner.clip if inner.text is None else inner.text).eval()

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


def _plain_block(block) -> bool:
    """An open_clip ResidualAttentionBlock that `_Towers.trimmed_text` writes out exactly:
    one packed self-attention, no key/value norms, no extra bias or zero-attention rows."""
    import torch

    a = getattr(block, "attn", None)
    return isinstance(a, torch.nn.MultiheadAttention) and a.batch_first \
        and a.in_proj_weight is not None and a.bias_k is None and not a.add_zero_attn \
        and not hasattr(block, "ln_1_kv") \
        and all(hasattr(block, n) for n in ("ln_1", "ln_2", "mlp", "ls_1", "ls_2"))


TRIMMED_TEXT_FILE = "text-trim.onnx"  # an older export's text tower, exported again


def retrim_text_tower(encoder, folder: str | os.PathLike) -> bool:
    """Export again the text tower of towers an older mmsearch wrote for `encoder`'s model,
    whose graph takes context_length tokens only, so that its queries run trimmed (ViT-B-32:
    ~55 -> ~14 ms a query). Under a new name, then towers.json replaced in one step, then
    the old graph removed: a reader holds either record whole (OnnxTowers looks again if the
    file it was told of has gone). False when there was nothing to do."""
    folder = Path(folder)
    record = json.loads((folder / TOWERS_FILE).read_text(encoding="utf-8"))
    if "text_trim" in record:
        return False
    import warnings

    import torch

    model, _, _ = _resolve_model(encoder, None, None)
    trimmed = _Towers.trimmed_text(model)
    old = record["text"]
    name = TRIMMED_TEXT_FILE if old != TRIMMED_TEXT_FILE else TEXT_FILE
    if trimmed is not None:
        towers = OnnxTowers(folder, record=record)
        tokens = towers.tokenize(["a photo of a red dress", "sepatu lari"])
        ref = towers._run("text", tokens)  # the older graph: what the index's vectors are
        tmp = folder / (name + ".tmp")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(trimmed, (torch.from_numpy(tokens),), str(tmp), dynamo=False,
                                  opset_version=OPSET, input_names=["input"],
                                  output_names=["output"], do_constant_folding=True,
                                  dynamic_axes={"input": {0: "batch", 1: "tokens"},
                                                "output": {0: "batch"}})
            _weights_apart(tmp, folder / name)
        finally:
            tmp.unlink(missing_ok=True)
        check = OnnxTowers(folder, record={**record, "text": name, "text_trim": True})
        cos = _cosines(check._run("text", trim_padding(tokens)), ref).min()
        if cos < 0.999:
            for path in (folder / name, folder / (name + DATA_SUFFIX)):
                path.unlink(missing_ok=True)
            raise RuntimeError(f"the trimmed text tower drifts from the older one: {cos:.6f}")
        record.update(text=name, inputs={**record["inputs"], "text": ["batch", "tokens"]})
    record["text_trim"] = trimmed is not None  # asked once: False stays as it is
    staged = folder / (TOWERS_FILE + ".tmp")
    staged.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(staged, folder / TOWERS_FILE)
    if trimmed is not None:
        for path in (folder / old, folder / (old + DATA_SUFFIX)):
            path.unlink(missing_ok=True)
    return trimmed is not None


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


def _weights_apart(exported: Path, final: Path) -> None:
    """Write the exported graph to `final` with its weights in one raw file beside it
    (`final`.data): ONNX Runtime then reads them straight from that file where a graph that
    holds them has its 254 MB protobuf parsed and copied. Opening ViT-B-32's text tower (the
    first thing a cold search waits on): 0.55-0.59 s -> 0.22-0.25 s, 3 rounds each, here."""
    import onnx

    data = final.with_name(final.name + DATA_SUFFIX)
    model = onnx.load(str(exported))
    data.unlink(missing_ok=True)  # onnx appends to an existing data file
    staged = final.with_name(final.name + ".staged")
    try:
        onnx.save_model(model, str(staged), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=data.name, size_threshold=1024)
        os.chmod(data, os.stat(staged).st_mode & 0o777)  # onnx makes it private (0600)
        os.replace(staged, final)
    finally:
        staged.unlink(missing_ok=True)


def weights_apart(folder: str | os.PathLike) -> None:
    """Rewrite the towers in `folder` whose weights an older mmsearch exported inside the
    graph (no `.data` beside it), so that they open as quickly as new ones. Safe beside a
    reader: the weights file is written first, then the graph replaced in one step."""
    for name in (TEXT_FILE, VISUAL_FILE):
        graph = Path(folder) / name
        if graph.is_file() and not graph.with_name(name + DATA_SUFFIX).is_file():
            _weights_apart(graph, graph)


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

    trimmed = _Towers.trimmed_text(model)
    text_tower, visual_tower = trimmed or _Towers.text(model), _Towers.visual(model)
    tokens = torch.from_numpy(tokenizer(["a photo of a red dress", "sepatu lari"]))
    pixels = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref_text = text_tower(tokens).float().numpy()
        ref_visual = visual_tower(pixels).float().numpy()
    dim = int(ref_text.shape[1])

    common = dict(dynamo=False, opset_version=OPSET, input_names=["input"],
                  output_names=["output"], do_constant_folding=True)
    batch = {"input": {0: "batch"}, "output": {0: "batch"}}
    text_axes = {"input": {0: "batch", 1: "tokens"}, "output": {0: "batch"}} if trimmed \
        else batch
    # Not under no_grad/inference_mode: there nn.MultiheadAttention (ViT towers) takes its
    # fused fast path, aten::_native_multi_head_attention, which has no ONNX symbolic.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript exporter deprecation / tracer notes
        for tower, example, name, axes in ((text_tower, tokens, TEXT_FILE, text_axes),
                                           (visual_tower, pixels, VISUAL_FILE, batch)):
            tmp = folder / (name + ".tmp")
            try:
                torch.onnx.export(tower, (example,), str(tmp), dynamic_axes=axes, **common)
                _weights_apart(tmp, folder / name)
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
        # the text graph takes [batch, 1..context_length] tokens, and the runtime cuts the
        # padding off (onnx_towers.trim_padding); older exports take context_length only
        "text_trim": trimmed is not None,
        "inputs": {"text": ["batch", "tokens" if trimmed else tokenizer.context_length],
                   "visual": ["batch", 3, h, w]},
        "exported_with": {"torch": torch.__version__,
                          "open_clip": getattr(open_clip, "__version__", None),
                          "opset": OPSET},
    }
    if verify:
        towers = OnnxTowers(folder, record=record)
        text_cos = _cosines(towers._run("text", tokens.numpy()), ref_text)
        if trimmed is not None:  # and cut as a query is: the same vectors
            text_cos = np.minimum(text_cos, _cosines(
                towers._run("text", trim_padding(tokens.numpy())), ref_text))
        vis_cos = _cosines(towers._run("visual", pixels.numpy()), ref_visual)
        record["verified"] = {"text_min_cos": float(text_cos.min()),
                              "visual_min_cos": float(vis_cos.min())}
        if min(text_cos.min(), vis_cos.min()) < 0.999:
            raise RuntimeError(f"the exported towers drift from torch: {record['verified']}")
    tmp = folder / (TOWERS_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / TOWERS_FILE)
    return {**record, "export_s": time.perf_counter() - t0}
