"""Retrieval quality of a CLIP on held-out colourised Fashion-MNIST pictures.

Used by the training script (on the in-memory model) and by bench/quality.py (through
mmsearch's Encoder). Everything here is measured on the Fashion-MNIST *test* split:
rows 1000..4999 form the searched collection, rows 5000..6999 are query pictures that are
not in it. (Rows 0..299 are the demo pictures shipped in assets/demo.) Picture queries were
200 until 2026-11-26: a 200-query P@10 has a 95% interval about ±0.04 wide, too loose to
decide a floor; the first 200 of today's 2,000 are those same pictures.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from mmsearch.train import fashion

POOL = (1000, 4000)  # (start, count) of the searched collection
IMAGE_QUERIES = (5000, 2000)
K = 10


def text_queries() -> dict[str, list[tuple[str, int, int | None]]]:
    """Query sets: name -> [(query text, class, colour or None)]."""
    en_class, id_class, en_colour, id_colour = [], [], [], []
    for label, (_, en, ind) in enumerate(fashion.CLASSES):
        en_class += [(name, label, None) for name in en]
        id_class += [(name, label, None) for name in ind]
        for colour, name in enumerate(fashion.COLOUR_NAMES):
            c_en, c_id, _ = fashion.COLOURS[name]
            en_colour.append((f"{c_en} {en[0]}", label, colour))
            id_colour.append((f"{ind[0]} {c_id}", label, colour))
    return {"en_class": en_class, "id_class": id_class,
            "en_colour_class": en_colour, "id_colour_class": id_colour}


def hits_at_k(scores: np.ndarray, relevant: np.ndarray, k: int = K) -> np.ndarray:
    """Each query's share of relevant items in its top k. scores, relevant: [Q, N]."""
    top = np.argsort(-scores, axis=1)[:, :k]
    return np.take_along_axis(relevant, top, axis=1).mean(axis=1)


def precision_at_k(scores: np.ndarray, relevant: np.ndarray, k: int = K) -> float:
    """Mean over queries of the share of relevant items in the top k. scores: [Q, N]."""
    return float(hits_at_k(scores, relevant, k).mean())


def evaluate_encoders(encode_images: Callable[[Sequence], np.ndarray],
                      encode_texts: Callable[[list[str]], np.ndarray],
                      detail: dict | None = None) -> dict[str, float]:
    """P@10 for every query set; encoders return L2-normalised rows.

    If `detail` is given it receives picture-to-picture P@10 per garment class and a 95%
    bootstrap interval of the mean (what the benchmark prints beside the table)."""
    pool = fashion.held_out(*POOL)
    pool_vecs = encode_images([fashion.to_pil(p) for p in pool.images])
    out: dict[str, float] = {}
    for name, queries in text_queries().items():
        q = encode_texts([t for t, _, _ in queries])
        labels = np.array([c for _, c, _ in queries])
        relevant = pool.labels[None, :] == labels[:, None]
        colours = [c for _, _, c in queries]
        if colours[0] is not None:
            relevant &= pool.colours[None, :] == np.array(colours)[:, None]
        out[name] = precision_at_k(q @ pool_vecs.T, relevant)
    queries = fashion.held_out(*IMAGE_QUERIES)
    q = encode_images([fashion.to_pil(p) for p in queries.images])
    hits = hits_at_k(q @ pool_vecs.T, pool.labels[None, :] == queries.labels[:, None])
    out["image_to_image_class"] = float(hits.mean())
    if detail is not None:
        rng = np.random.default_rng(0)
        means = hits[rng.integers(0, len(hits), size=(2000, len(hits)))].mean(axis=1)
        detail["image_to_image_ci95"] = [round(float(v), 4) for v in np.percentile(means, [2.5, 97.5])]
        detail["image_to_image_by_class"] = {
            name: round(float(hits[queries.labels == c].mean()), 4)
            for c, (name, _, _) in enumerate(fashion.CLASSES)}
    # an indexed picture searched by itself must come back first
    self_q = pool_vecs[:200]
    out["self_top1"] = float((np.argmax(self_q @ pool_vecs.T, axis=1) == np.arange(200)).mean())
    return out


def evaluate(model, preprocess, tokenizer, batch_size: int = 256) -> dict[str, float]:
    """Evaluate an in-memory open_clip model (used while training)."""
    import torch

    device = next(model.parameters()).device

    def norm(x: torch.Tensor) -> np.ndarray:
        return torch.nn.functional.normalize(x.float(), dim=-1).cpu().numpy()

    @torch.no_grad()
    def images(pils):
        return np.concatenate([norm(model.encode_image(torch.stack(
            [preprocess(p) for p in pils[i:i + batch_size]]).to(device)))
            for i in range(0, len(pils), batch_size)])

    @torch.no_grad()
    def texts(strings):
        return norm(model.encode_text(tokenizer(strings).to(device)))

    return evaluate_encoders(images, texts)
