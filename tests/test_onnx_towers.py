"""The ONNX towers: exported from the real embedded model, run with onnxruntime, no torch.

Checks that the torch-free path gives what the torch path gives: the same token ids as
open_clip's tokenizer, the same preprocessed pixels as open_clip's eval transform, vectors
within 0.999 cosine of the fp32 torch encoder, and a fresh process that never imports torch.
Timings and sizes are printed, not asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsearch.bpe import BPETokenizer, UnsupportedTokenizer, tokenizer_for_model
from mmsearch.encoder import Encoder, _open_clip
from mmsearch.onnx_export import export_towers
from mmsearch.items import unit_rows
from mmsearch.onnx_towers import OnnxTowers, preprocess_image, trim_padding

from conftest import demo_files

ROOT = Path(__file__).resolve().parents[1]

TEXTS = [
    "a red dress", "A RED DRESS", "  a   red\tdress \n", "sepatu lari ringan merah",
    "gaun biru", "celana panjang", "tas hitam kulit", "kemeja putih lengan panjang",
    "a black bag", "a red sneaker", "an ankle boot", "a pullover, knitted!",
    "T-shirt/top", "trouser's pocket", "it's, they're, we've, I'm, you'll, he'd",
    "don't stop", "hello... world?!", "price: $9.99 (50% off)", "#summer #sale @shop",
    "e-mail me: someone@example.com", "https://example.com/a?b=c&d=e", "12345",
    "3.14159 and 2,718", "1st 2nd 3rd 4th", "naïve café résumé", "Ünïcödé ÄÖÜ ß",
    "&amp; &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot;", "&amp;amp; double escaped",
    "mojibake: cafÃ©", "emoji 😀🎉👗👟", "👍🏽 thumbs", "flags 🇮🇩🇬🇧", "日本語のテキスト",
    "中文 文本", "한국어", "русский текст", "ελληνικά", "عربى", "हिन्दी",
    "tab\tand\nnewline", "<start_of_text>", "<end_of_text> inside", "a <start_of_text> b",
    "", "   ", "!!!", "...", "x", "ok" * 40,
    "a very long description of a lovely red summer dress " * 12,
    " ".join(f"word{i}" for i in range(120)),
    "sepatu lari ringan merah dengan sol karet putih dan tali hitam, cocok untuk jogging "
    "pagi di taman kota maupun lari jarak jauh di akhir pekan bersama teman-teman",
]

QUERIES = [
    "a red dress", "a blue dress", "a black bag", "a red sneaker", "a white shirt",
    "an ankle boot", "a sandal", "a pullover", "a coat", "a t-shirt", "trousers",
    "a green bag", "a yellow sneaker", "a purple coat", "an orange sandal", "a grey pullover",
    "sepatu lari ringan merah", "gaun biru", "celana panjang", "tas hitam", "kemeja putih",
    "sepatu bot", "sandal jepit", "jaket kulit", "kaos merah", "sweater hijau",
    "a photo of a shoe", "something to wear in winter", "a bag for the beach",
    "running shoes", "formal wear", "a small handbag", "long sleeves", "short sleeves",
    "😀", "", "!!!", "a " * 60, "red red red red", "Ünïcödé café",
]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def fp32_encoder(demo_spec) -> Encoder:
    return Encoder(demo_spec, precision="fp32").warm()


@pytest.fixture(scope="module")
def towers_dir(tmp_path_factory, encoder) -> Path:
    """The demo model's towers, exported from the session's (possibly bf16) encoder: the
    export reloads fp32 weights."""
    folder = tmp_path_factory.mktemp("towers")
    _EXPORT.update(export_towers(encoder, folder))
    return folder


_EXPORT: dict = {}  # the record export_towers returned, for the report below


@pytest.fixture(scope="module")
def towers(towers_dir) -> OnnxTowers:
    return OnnxTowers(towers_dir)


# -- the export ------------------------------------------------------------------------
def test_export_writes_each_tower_with_its_own_weights(towers_dir, fp32_encoder, capsys):
    import onnx

    sizes = {p.name: p.stat().st_size for p in sorted(towers_dir.iterdir())}
    with capsys.disabled():
        print(f"\nonnx export (model load included): {_EXPORT['export_s']:.2f} s; "
              + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items())
              + f"; self-check {_EXPORT['verified']}")

    record = OnnxTowers(towers_dir).record
    model = fp32_encoder._model
    assert record["model"] == "demo" and record["arch"] == "mmsearch-demo"
    assert record["embed_dim"] == fp32_encoder.dim
    assert record["image_size"] == [fp32_encoder.image_size] * 2
    assert record["context_length"] == model.context_length
    pp = model.visual.preprocess_cfg
    assert record["preprocess"]["mean"] == list(pp["mean"])
    assert record["preprocess"]["std"] == list(pp["std"])
    assert record["preprocess"]["resize_mode"] == pp["resize_mode"]
    for name, n_params in (("text.onnx", sum(p.numel() for n, p in model.named_parameters()
                                             if not n.startswith(("visual.", "logit_")))),
                           ("visual.onnx", sum(p.numel() for p in model.visual.parameters()))):
        # the weights lie raw beside the graph (ONNX Runtime opens that ~2x sooner)
        assert (towers_dir / (name + ".data")).stat().st_size > \
            20 * (towers_dir / name).stat().st_size
        m = onnx.load(str(towers_dir / name))
        assert [i.name for i in m.graph.input] == ["input"]
        assert [o.name for o in m.graph.output] == ["output"]
        assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
        weights = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
        # its own weights (constant folding may add small derived tensors), never the other's
        assert 0.9 * n_params <= weights <= 1.1 * n_params, (name, weights, n_params)


def test_towers_exported_with_weights_inside_are_rewritten_once(towers_dir, towers, tmp_path,
                                                                 fp32_encoder):
    """An older mmsearch wrote each tower's weights inside its graph; an indexing run that
    finds such towers moves the weights beside the graph, and they encode as before."""
    import shutil

    from mmsearch.towers import _rewrite_older_towers

    onnx = pytest.importorskip("onnx")
    older = tmp_path / "older"
    shutil.copytree(towers_dir, older)
    for name in ("text.onnx", "visual.onnx"):
        onnx.save(onnx.load(str(older / name)), str(older / name))  # weights inside
        (older / (name + ".data")).unlink()
    inside = {n: (older / n).stat().st_size for n in ("text.onnx", "visual.onnx")}
    pictures = [Image.open(f).convert("RGB") for f in demo_files(4)]
    text = OnnxTowers(older).encode_texts(TEXTS)
    seen = OnnxTowers(older).encode_images(pictures)

    _rewrite_older_towers(older, fp32_encoder)
    for name, size in inside.items():
        assert (older / (name + ".data")).stat().st_size > 0.9 * size
        assert (older / name).stat().st_size < 0.1 * size
    rewritten = OnnxTowers(older)
    assert np.array_equal(rewritten.encode_texts(TEXTS), text)
    assert np.array_equal(rewritten.encode_images(pictures), seen)
    assert np.allclose(towers.encode_texts(TEXTS), text, atol=1e-6)
    before = {p.name: p.stat().st_mtime_ns for p in older.iterdir()}
    _rewrite_older_towers(older, fp32_encoder)  # done once: nothing is written again
    assert {p.name: p.stat().st_mtime_ns for p in older.iterdir()} == before


# -- the tokenizer ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mmsearch-demo", "ViT-B-32"])
def test_tokenizer_gives_open_clips_ids(name):
    ref = _open_clip().get_tokenizer(name)
    ours = tokenizer_for_model("demo" if name == "mmsearch-demo" else name)
    expected = ref(TEXTS).numpy()
    got = ours(TEXTS)
    assert got.dtype == np.int64 and got.shape == expected.shape == (len(TEXTS), ref.context_length)
    mismatched = [TEXTS[i] for i in np.flatnonzero((got != expected).any(axis=1))]
    assert not mismatched
    # truncated texts end with <end_of_text> in the last place, as open_clip's do
    long = ours(["word " * 200])[0]
    assert long[0] == ours.sot_token_id and long[-1] == ours.eot_token_id
    assert ours([""])[0, :3].tolist() == [ours.sot_token_id, ours.eot_token_id, 0]
    for text in TEXTS[:20]:
        assert ours.encode(text) == ref.encode(text)


def test_towers_tokenizer_uses_the_models_context_length(towers):
    ref = _open_clip().get_tokenizer("mmsearch-demo")
    assert np.array_equal(towers.tokenize(TEXTS), ref(TEXTS).numpy())


def test_text_the_tokenizer_does_not_give_ftfy_is_text_ftfy_leaves_alone():
    """mmsearch.bpe skips ftfy for printable ASCII without "&": ftfy must return it as is."""
    import random

    import ftfy

    from mmsearch.bpe import _FTFY_CANNOT_CHANGE

    rng = random.Random(7)
    alphabet = [chr(c) for c in range(0x20, 0x7f) if chr(c) != "&"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
             for _ in range(5000)] + [t for t in TEXTS if _FTFY_CANNOT_CHANGE.fullmatch(t)]
    assert all(_FTFY_CANNOT_CHANGE.fullmatch(t) for t in texts)
    assert [t for t in texts if ftfy.fix_text(t) != t] == []
    assert not _FTFY_CANNOT_CHANGE.fullmatch("&amp;") and not _FTFY_CANNOT_CHANGE.fullmatch("café")


@pytest.mark.parametrize("clean", ["lower", "whitespace", "canonicalize"])
def test_tokenizer_clean_modes_match_open_clip(clean):
    from open_clip.tokenizer import SimpleTokenizer

    ref = SimpleTokenizer(context_length=77, clean=clean)
    assert np.array_equal(BPETokenizer(context_length=77, clean=clean)(TEXTS), ref(TEXTS).numpy())


def test_text_graph_runs_on_the_tokens_before_the_padding(towers):
    """The text graph's token axis is dynamic, and a query runs only the columns up to its
    batch's last end-of-text token: the same vectors as the whole context."""
    import onnx

    record = towers.record
    assert record["text_trim"] is True and record["inputs"]["text"] == ["batch", "tokens"]
    graph = onnx.load(str(towers.folder / record["text"]), load_external_data=False)
    assert graph.graph.input[0].type.tensor_type.shape.dim[1].dim_param == "tokens"

    tokens = towers.tokenize(TEXTS)
    full = towers._run("text", tokens)
    cut = [towers._run("text", trim_padding(tokens[i:i + 1]))[0] for i in range(len(TEXTS))]
    assert np.allclose(full, np.stack(cut), atol=1e-4)
    assert trim_padding(towers.tokenize(["a red dress"])).shape == (1, 5)  # SOT a red dress EOT
    assert trim_padding(tokens).shape[1] == towers.context_length  # the long ones fill it

    fresh = OnnxTowers(towers.folder)
    widths = []
    run = fresh._run
    fresh._run = lambda tower, x: widths.append(x.shape[1]) or run(tower, x)
    assert np.allclose(fresh.encode_texts(["a red dress", "gaun biru"]), unit_rows(full[[0, 4]]),
                       atol=1e-5)
    longest = max(len(towers.tokenize([t])[0].nonzero()[0]) for t in ["a red dress", "gaun biru"])
    assert widths == [longest] and longest < towers.context_length


def test_text_towers_it_cannot_trim_are_exported_whole(fp32_encoder):
    """A tower pooled at its last position (or with no causal mask) would answer otherwise
    without its padding: it is not written out for trimming."""
    import copy

    from mmsearch.onnx_export import _Towers

    model = fp32_encoder._model
    assert _Towers.trimmed_text(model) is not None
    last = copy.copy(model)
    last.text_pool_type = "last"
    assert _Towers.trimmed_text(last) is None
    bidirectional = copy.copy(model)
    bidirectional._buffers = {k: v for k, v in model._buffers.items() if k != "attn_mask"}
    bidirectional.attn_mask = None
    assert _Towers.trimmed_text(bidirectional) is None


def test_an_older_text_graph_is_exported_again_to_run_trimmed(towers_dir, fp32_encoder, tmp_path):
    """Towers an older mmsearch exported take context_length tokens; an indexing run that
    finds them exports the text graph again under a new name, swaps towers.json, removes the
    old graph, and the vectors stay the same. A reader that read the older record before
    the swap opens the new graph."""
    import json
    import shutil
    import warnings

    import torch

    from mmsearch.onnx_export import _Towers, _weights_apart
    from mmsearch.towers import _rewrite_older_towers

    older = tmp_path / "older"
    shutil.copytree(towers_dir, older)
    tokens = torch.from_numpy(OnnxTowers(older).tokenize(["a red dress", "gaun"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Towers.text(fp32_encoder._model), (tokens,), str(older / "whole.onnx"),
                          dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    _weights_apart(older / "whole.onnx", older / "text.onnx")
    (older / "whole.onnx").unlink()
    record = json.loads((older / "towers.json").read_text())
    del record["text_trim"]
    record["inputs"]["text"] = ["batch", record["context_length"]]
    (older / "towers.json").write_text(json.dumps(record))
    before = OnnxTowers(older)
    with pytest.raises(Exception):  # the whole-context graph: it refuses fewer tokens
        before._run("text", trim_padding(before.tokenize(["a red dress"])))
    vectors = before.encode_texts(TEXTS)
    reader = OnnxTowers(older)  # the older record read, no session opened yet

    _rewrite_older_towers(older, fp32_encoder)
    after = json.loads((older / "towers.json").read_text())
    assert after["text_trim"] is True and after["text"] == "text-trim.onnx"
    assert not (older / "text.onnx").exists() and not (older / "text.onnx.data").exists()
    assert np.allclose(OnnxTowers(older).encode_texts(TEXTS), vectors, atol=1e-5)
    assert np.allclose(reader.encode_texts(TEXTS[:5]), vectors[:5], atol=1e-5)
    assert reader.record["text"] == "text-trim.onnx"
    before_files = {p.name: p.stat().st_mtime_ns for p in older.iterdir()}
    _rewrite_older_towers(older, fp32_encoder)  # once: nothing is written again
    assert {p.name: p.stat().st_mtime_ns for p in older.iterdir()} == before_files


@pytest.mark.parametrize("name", ["xlm-roberta-base-ViT-B-32", "ViT-B-16-SigLIP", "no-such-model"])
def test_tokenizer_refuses_models_it_does_not_reproduce(name):
    with pytest.raises(UnsupportedTokenizer):
        tokenizer_for_model(name)


# -- the vectors -----------------------------------------------------------------------
def test_text_vectors_match_torch_fp32(towers, fp32_encoder, capsys):
    assert len(QUERIES) == 40
    ours = towers.encode_texts(QUERIES)
    ref = fp32_encoder.encode_texts(QUERIES)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    cos = _cos(ours, ref)
    towers.encode_texts(["warm-up"])
    t0 = time.perf_counter()
    towers.encode_texts([f"a red dress {time.time()}"])  # not encoded before (RECENT_TEXTS)
    one = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\nonnx text vs torch fp32 ({len(QUERIES)} queries): min {cos.min():.7f}, "
              f"mean {cos.mean():.7f}; one text encode {one * 1000:.2f} ms")
    assert cos.min() >= 0.999, [(q, c) for q, c in zip(QUERIES, cos) if c < 0.999]
    assert towers.encode_texts([]).shape == (0, towers.dim)


def test_texts_encoded_again_are_not_run_again(towers_dir):
    """The towers keep the last RECENT_TEXTS texts' vectors (a cold search encodes its query
    while the engine loads; an app's next page asks again): the same vectors, in any batch,
    without running the tower for a text they have; the oldest is forgotten first, and what
    a caller does to the vectors it got does not reach them."""
    from mmsearch.onnx_towers import RECENT_TEXTS

    towers = OnnxTowers(towers_dir)
    batches = []
    run = towers._run

    def counted(tower, x):
        batches.append(len(x))
        return run(tower, x)

    towers._run = counted
    first = towers.encode_texts(["a red dress", "a dog"])
    again = towers.encode_texts(["a dog", "a cat", "a red dress", "a dog"])
    assert batches == [2, 1]  # only "a cat" was new
    assert np.array_equal(again[0], first[1]) and np.array_equal(again[2], first[0])
    assert np.array_equal(again[3], again[0])
    fresh = OnnxTowers(towers_dir).encode_texts(["a dog", "a cat", "a red dress"])
    assert np.allclose(again[:3], fresh, atol=1e-5)
    again[:] = 0
    assert np.array_equal(towers.encode_texts(["a dog"])[0], first[1])
    towers.encode_texts([f"text number {i}" for i in range(RECENT_TEXTS)])
    batches.clear()
    towers.encode_texts(["text number 3", "a red dress"])
    assert batches == [1]  # "a red dress" was the oldest: forgotten


def test_image_vectors_match_torch_fp32(towers, fp32_encoder, capsys):
    files = demo_files(30)
    assert len(files) == 30
    images = [Image.open(f) for f in files]
    for im in images:
        im.load()
    # the preprocessing itself: the very pixels open_clip's transform gives
    for im in images[:10]:
        assert np.array_equal(towers.preprocess(im), fp32_encoder.preprocess(im).numpy())
    ours = towers.encode_images(images, batch_size=8)
    ref = fp32_encoder.encode_images(images)
    cos = _cos(ours, ref)
    with capsys.disabled():
        print(f"\nonnx images vs torch fp32 ({len(images)} demo pictures): "
              f"min {cos.min():.7f}, mean {cos.mean():.7f}")
    assert cos.min() >= 0.999
    assert towers.encode_images([]).shape == (0, towers.dim)


def _odd_pictures() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (37, 61, 3), dtype=np.uint8))
    pics = [rgb, rgb.transpose(Image.Transpose.TRANSPOSE), rgb.resize((300, 200)),
            rgb.resize((13, 9)), rgb.resize((32, 32)), rgb.resize((33, 1000)),
            rgb.convert("L"), rgb.convert("P"), rgb.convert("1"), rgb.convert("CMYK")]
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.integers(0, 256, (37, 61), dtype=np.uint8)))
    return pics + [rgba, rgb.convert("LA")]


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("size", [32, 224, (32, 48)])
def test_preprocessing_matches_open_clip_transform(resize_mode, size):
    from open_clip.transform import image_transform

    from open_clip.constants import OPENAI_DATASET_MEAN as MEAN, OPENAI_DATASET_STD as STD

    ref = image_transform(size, is_train=False, mean=MEAN, std=STD, resize_mode=resize_mode,
                          fill_color=7)
    for im in _odd_pictures():
        got = preprocess_image(im, size, MEAN, STD, resize_mode=resize_mode, fill_color=7)
        expected = ref(im).numpy()
        assert got.shape == expected.shape, (im.mode, im.size)
        assert np.array_equal(got, expected), (im.mode, im.size)


# -- a fresh process -------------------------------------------------------------------
def test_query_path_never_imports_torch(towers_dir, capsys):
    code = ("import sys, time; t0 = time.perf_counter()\n"
            "from mmsearch.onnx_towers import OnnxTowers\n"
            f"t = OnnxTowers({str(towers_dir)!r})\n"
            "v = t.encode_texts(['a red dress'])\n"
            "assert v.shape == (1, t.dim), v.shape\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "assert not [m for m in sys.modules if m.startswith(('torch', 'open_clip'))]\n"
            "print(f'{time.perf_counter() - t0:.3f}')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    with capsys.disabled():
        print(f"\nfresh process (python start + import + load + one text encode): {wall:.2f} s "
              f"wall, {float(proc.stdout.strip()):.2f} s inside")


def test_a_resident_app_answers_with_the_towers_and_indexes_with_torch(
        towers_dir, fp32_encoder, tmp_path, monkeypatch):
    """`open_searcher` (the app, `mmsearch serve`) readies the model's ONNX towers where they
    were exported, while the engine loads; its first indexing job loads the torch model,
    once, and the towers' answers are the torch model's."""
    import shutil

    from indexer.pipeline import index_paths
    from mmsearch import towers
    from mmsearch.config import IndexLocation
    from mmsearch.search import Query, Searcher
    from mmsearch.stores import open_index, open_searcher

    monkeypatch.setattr(towers, "towers_dir", lambda spec: towers_dir)
    location = IndexLocation.resolve(db=tmp_path / "resident.db")
    open_index(location, model=fp32_encoder.spec, create_model=fp32_encoder.spec,
               dim=fp32_encoder.dim).close()
    folder = tmp_path / "pictures"
    folder.mkdir()
    for f in demo_files(40):
        shutil.copy2(f, folder / f.name)
    searcher = open_searcher(location)
    with searcher.index as index:
        assert isinstance(searcher.encoder, OnnxTowers)
        writer = searcher.indexing_encoder()
        assert isinstance(writer, Encoder) and searcher.indexing_encoder() is writer
        assert index_paths([str(folder)], index, writer, progress=False).added == 40
        query = Query.of(texts=["a dress"])
        ours = [h.path for h in searcher.search(query, k=5)]
        theirs = [h.path for h in Searcher(index, fp32_encoder).search(query, k=5)]
        assert ours[0] == theirs[0] and len(set(ours) & set(theirs)) >= 4
