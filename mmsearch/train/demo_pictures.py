"""Write the demo folder: colourised Fashion-MNIST *test* pictures as real PNG files.

    python -m mmsearch.train.demo_pictures [--count 300] [--out assets/demo]

File names carry no label (search must find them by their pixels); the labels sit in
labels.json for tests and benchmarks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmsearch.config import DEMO_PICTURES_DIR
from mmsearch.train import fashion


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--out", type=Path, default=DEMO_PICTURES_DIR)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    pics = fashion.held_out(0, args.count)
    labels = {}
    for i, (img, label, colour, row) in enumerate(zip(pics.images, pics.labels, pics.colours,
                                                      pics.source_index)):
        name = f"item-{i:04d}.png"
        fashion.to_pil(img).save(args.out / name, optimize=True)
        labels[name] = {"class": fashion.CLASSES[label][0], "colour": fashion.COLOUR_NAMES[colour],
                        "fashion_mnist_test_row": int(row)}
    (args.out / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    print(f"wrote {len(labels)} pictures to {args.out}")


if __name__ == "__main__":
    main()
