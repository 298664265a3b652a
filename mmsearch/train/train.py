"""Train mmsearch's embedded CLIP (`--model demo`) on colourised Fashion-MNIST.

A maintainer's tool, not run at install:

    python -m mmsearch.train.train [--epochs N] [--seed S] [--out assets/model]

Uses open_clip's own CLIP class (from the custom config in assets/model/) and its ClipLoss.
Only the Fashion-MNIST *train* split is used; metrics are measured on the test split.
Writes the fp16 checkpoint and a JSON record of how it was made next to the config.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmsearch.train import fashion
from mmsearch.train.evaluate import evaluate

MODEL_NAME = "mmsearch-demo"
ASSETS = Path(__file__).resolve().parents[2] / "assets" / "model"


def build_model(config_dir: Path):
    import open_clip

    open_clip.add_model_config(config_dir / f"{MODEL_NAME}.json")
    model, _, preprocess = open_clip.create_model_and_transforms(MODEL_NAME, pretrained=None)
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    return model, preprocess, tokenizer


class Batches:
    """Endless stream of (pixels, tokens): new colours and captions every epoch."""

    def __init__(self, gray, labels, tokenizer, image_size, mean, std, batch_size, seed,
                 partner_any_colour=False, colour_p=0.8):
        self.partner_any_colour = partner_any_colour
        self.colour_p = colour_p
        self.gray, self.labels = gray, labels
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.batch_size = batch_size
        self.np_rng = np.random.default_rng(seed)
        self.py_rng = random.Random(seed)
        self._token_cache: dict[str, torch.Tensor] = {}
        self.by_class = [np.flatnonzero(labels == c) for c in range(len(fashion.CLASSES))]

    def tokens(self, captions: list[str]) -> torch.Tensor:
        missing = [c for c in dict.fromkeys(captions) if c not in self._token_cache]
        if missing:
            for c, t in zip(missing, self.tokenizer(missing)):
                self._token_cache[c] = t
        return torch.stack([self._token_cache[c] for c in captions])

    def pixels(self, rows: np.ndarray, rgb, bg) -> torch.Tensor:
        gray = self.gray[rows]
        # small random shifts: users' pictures are not perfectly centred
        shifts = self.np_rng.integers(-2, 3, size=(len(rows), 2))
        gray = np.stack([np.roll(g, tuple(s), axis=(0, 1)) for g, s in zip(gray, shifts)])
        flip = self.np_rng.random(len(rows)) < 0.5
        gray[flip] = gray[flip, :, ::-1]
        img = torch.from_numpy(fashion.colourise(gray, rgb, bg)).permute(0, 3, 1, 2)
        img = F.interpolate(img, size=self.image_size, mode="bicubic", align_corners=False)
        img = img.clamp(0, 1)
        return (img - self.mean) / self.std

    def epoch(self):
        """One pass over the pictures in batches of distinct (class, colour) pairs.

        ClipLoss treats every other caption in the batch as wrong. Two "red dress" pictures in
        one batch would teach the model to tell them apart by irrelevant details; with one
        picture per (class, colour) the only negatives are real differences.
        """
        n_classes, n_colours = len(fashion.CLASSES), len(fashion.COLOUR_NAMES)
        queues = {c: list(self.np_rng.permutation(np.flatnonzero(self.labels == c)))
                  for c in range(n_classes)}
        pairs = np.array([(c, k) for c in range(n_classes) for k in range(n_colours)])
        per_batch = min(self.batch_size, len(pairs))
        for _ in range(len(self.labels) // per_batch):
            chosen = pairs[self.np_rng.permutation(len(pairs))[:per_batch]]
            rows = np.array([queues[c].pop() if queues[c] else
                             self.np_rng.choice(np.flatnonzero(self.labels == c))
                             for c in chosen[:, 0]])
            colour_idx = chosen[:, 1]
            _, rgb, bg = fashion.sample_colours(self.np_rng, len(rows), colour_idx)
            captions = [fashion.caption(int(l), int(c), self.py_rng, self.colour_p)
                        for l, c in zip(self.labels[rows], colour_idx)]
            # a second, different picture of the same (class, colour): the image-image
            # positive, so picture-to-picture similarity is led by what the garment is.
            # ("any" colour is worse: the other 7 pictures of that class in the batch then
            # act as negatives.)
            partners = np.array([self.np_rng.choice(self.by_class[c]) for c in chosen[:, 0]])
            _, rgb2, bg2 = fashion.sample_colours(
                self.np_rng, len(rows), None if self.partner_any_colour else colour_idx)
            yield (self.pixels(rows, rgb, bg), self.tokens(captions),
                   self.pixels(partners, rgb2, bg2))


def save(model, out: Path) -> dict:
    """fp16 weights: half the size, and the demo's quality is unchanged (measured below)."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, out / f"{MODEL_NAME}.pt")
    return state


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=80,
                    help="at most 80: one picture per (class, colour) pair")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--image-loss", type=float, default=1.0,
                    help="weight of the image-image ClipLoss term (0 turns it off)")
    ap.add_argument("--partner-colour", choices=["any", "same"], default="same",
                    help="colour of the image-image positive: any, or the anchor's")
    ap.add_argument("--colour-caption-p", type=float, default=0.8,
                    help="share of captions that name the colour")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ASSETS)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N rows only (smoke runs)")
    ap.add_argument("--device", default="cpu", help="cpu (what ships) or cuda (config search)")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, preprocess, tokenizer = build_model(args.out)
    model = model.to(args.device)
    pp = model.visual.preprocess_cfg
    gray, labels = fashion.load_split("train")
    if args.limit:
        gray, labels = gray[: args.limit], labels[: args.limit]
    batches = Batches(gray, labels, tokenizer, pp["size"], pp["mean"], pp["std"],
                      args.batch_size, args.seed, args.partner_colour == "any",
                      args.colour_caption_p)

    from open_clip.loss import ClipLoss

    loss_fn = ClipLoss()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps_per_epoch = len(labels) // min(args.batch_size, 80)
    total = steps_per_epoch * args.epochs
    warmup = min(200, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else
        0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup))))

    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {MODEL_NAME}: {n_params / 1e6:.2f}M parameters, {total} steps")
    t0 = time.time()
    step = 0
    for epoch in range(args.epochs):
        model.train()
        running = 0.0
        for pixels, tokens, partner_pixels in batches.epoch():
            pixels, tokens = pixels.to(args.device), tokens.to(args.device)
            partner_pixels = partner_pixels.to(args.device)
            image_features, text_features, logit_scale = model(pixels, tokens)[:3]
            loss = loss_fn(image_features, text_features, logit_scale)
            if args.image_loss:
                # The same ClipLoss between two pictures of each (class, colour): makes
                # picture-to-picture search ("find similar") rank by what the garment is,
                # not by incidental pixels.
                partner_features = model.encode_image(partner_pixels, normalize=True)
                loss = loss + args.image_loss * loss_fn(image_features, partner_features,
                                                        logit_scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            running += loss.item()
            step += 1
            if step % 100 == 0:
                print(f"  step {step}/{total} loss {running / 100:.3f} "
                      f"({time.time() - t0:.0f}s)", flush=True)
                running = 0.0
        model.eval()
        metrics = evaluate(model, preprocess, tokenizer)
        print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()), flush=True)
        running = 0.0
        save(model, args.out)  # usable after every epoch; the last one is what ships

    train_seconds = time.time() - t0
    state = save(model, args.out)
    # metrics of the weights as shipped (fp16 round-trip)
    model.load_state_dict(state)
    model = model.cpu()
    metrics = evaluate(model, preprocess, tokenizer)
    record = {
        "model": MODEL_NAME,
        "script": "python -m mmsearch.train.train",
        "args": {k: os.path.relpath(v, ASSETS.parents[1]) if isinstance(v, Path) else v
                 for k, v in vars(args).items()},
        "data": "Fashion-MNIST train split (Debian dataset-fashion-mnist, MIT), colourised",
        "parameters": n_params,
        "train_seconds": round(train_seconds, 1),
        "torch": torch.__version__,
        "device": args.device,
        "metrics_test_split": {k: round(v, 4) for k, v in metrics.items()},
    }
    (args.out / "TRAINING.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
