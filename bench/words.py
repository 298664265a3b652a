"""What searching a folder's words with BM25 costs (mmsearch/words.py), side by side.

Two folder indexes of the same synthetic library, written in one run, interleaved:
`words` (as mmsearch makes them: the item collection plus `mmsearch_words`, one row per
distinct text) and `plain` (the same items, no words collection: `Index._create` is kept
from making it, so `has_words` is False and a folder search is the picture search). Measured:

- upsert rate: `Index.upsert` of pages of 1,000 (what `mmsearch import` writes), arms taking
  turns page by page; then pages of 32 (the indexer's default batch), a rewrite of photos
  whose words changed, and a delete;
- a fresh process: imports, `open_index` (load) and the first answer, arms alternating, medians;
- queries, end to end through `mmsearch.search.Searcher` in one process holding both indexes:
  words matching nothing, a folder word of ~1% of the photos, a country of ~20%, and words
  with a picture meaning plus a folder word. The text encoder is replaced by a fixed vector per
  query (the same in both arms), so the encode (ViT-B-32 ~40 ms on 2 cores) is left out;
- disk;
- with `--before DIR` (a checkout of older code) and `--keep DIR`: the same queries through
  the older code and this one, in fresh processes taking turns on one words index (reused
  from `--keep` when it is there), with the picture search alone (`--mode picture`) as the
  yardstick in each.

The library: paths under ~2,000 trip/event folders (`Pictures/2019/Liburan Bali/...`), 65% of
names without words (IMG_1234), five cameras, GPS for half the photos at ~300 GeoNames towns
(mmsearch.places), 4% with OCR-like text of 5-60 words; picture vectors are clustered unit
vectors (bench/query.py's clip_like), 512-d.

    nice python bench/words.py [--size 100000] [--rounds 5] [--out bench/results/words.json]
    nice python bench/words.py --keep /tmp/wb --before /tmp/old-checkout --label 100000_before_after
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

DIM = 512
MODEL = "ViT-B-32/random"
K = 20
EVENTS = ("liburan", "trip", "holiday", "wedding", "pernikahan", "birthday", "ulang tahun",
          "wisuda", "graduation", "lebaran", "natal", "christmas", "arisan", "reuni", "outing",
          "camping", "hiking", "pantai", "konser", "seminar", "rapat", "kantor", "keluarga",
          "family", "sekolah", "futsal", "renang", "kuliner", "mudik", "tahun baru", "imlek",
          "kondangan", "piknik", "study tour", "road trip", "honeymoon", "baby", "aqiqah")
PLACES = ("bali", "lombok", "jogja", "bandung", "surabaya", "jakarta", "malang", "bromo",
          "semarang", "medan", "makassar", "labuan bajo", "raja ampat", "toba", "dieng",
          "belitung", "ubud", "tokyo", "osaka", "kyoto", "singapore", "kuala lumpur", "bangkok",
          "seoul", "sydney", "amsterdam", "paris", "london", "penang", "hongkong")
PEOPLE = ("rina", "budi", "dinda", "andi", "sari", "putri", "agus", "dewi", "rizky", "nabila",
          "fajar", "intan", "bayu", "citra", "eko", "maya", "yusuf", "anisa", "dimas", "laras")
NAME_WORDS = ("sunset", "beach", "cake", "selfie", "family", "group", "makan", "pantai",
              "sunrise", "view", "kids", "anak", "mama", "papa", "bayi", "kucing", "cat", "dog",
              "anjing", "temple", "candi", "gunung", "mountain", "pool", "hotel", "bandara",
              "airport", "kereta", "train", "nasi", "kopi", "coffee", "pemandangan", "foto",
              "bersama", "panorama", "hdr", "portrait", "night", "malam", "pagi", "morning")
OCR_WORDS = ("total", "harga", "price", "rp", "tunai", "cash", "kembali", "change", "diskon",
             "discount", "jalan", "street", "exit", "keluar", "masuk", "entrance", "dilarang",
             "merokok", "smoking", "parkir", "parking", "toko", "shop", "buka", "open", "tutup",
             "closed", "selamat", "datang", "welcome", "terima", "kasih", "thank", "you",
             "menu", "ayam", "goreng", "fried", "chicken", "es", "teh", "tea", "jeruk",
             "orange", "mie", "noodle", "bakso", "sate", "soto", "air", "water", "gratis",
             "free", "promo", "sale", "jam", "hours", "senin", "monday", "minggu", "sunday",
             "kasir", "cashier", "struk", "receipt", "nomor", "number", "meja", "table",
             "tiket", "ticket", "kelas", "class", "gate", "pintu", "peron", "platform", "bus",
             "halte", "stop", "kota", "city", "pusat", "center", "rumah", "sakit", "hospital",
             "apotek", "pharmacy", "bank", "atm", "saldo", "balance", "transfer", "berhasil",
             "success", "pesan", "message", "balas", "reply", "baru", "new", "hari", "day",
             "minggu", "week", "bulan", "month", "kami", "we", "the", "and", "di", "yang",
             "untuk", "for", "dengan", "with", "ini", "this", "ke", "to", "dari", "from")
CAMERAS = (("Apple iPhone 13", 0.35), ("Samsung Galaxy S21", 0.25), ("Canon EOS R6", 0.12),
           ("Google Pixel 7", 0.15), ("Xiaomi Redmi Note 11", 0.13))
TOWNS_ID, TOWNS_ABROAD = 150, 150
ABROAD = ("Japan", "Singapore", "Malaysia", "Thailand", "Australia", "Netherlands", "France",
          "United Kingdom", "South Korea", "United States", "Saudi Arabia", "Vietnam")


# -- the library ---------------------------------------------------------------------------
def towns(rng: np.random.Generator) -> list[str]:
    """~300 place texts of GeoNames towns (mmsearch.places): half Indonesian, half abroad."""
    from mmsearch.places import Place, gazetteer

    rows = gazetteer().rows
    home = [r for r in rows if r[3] == "Indonesia"]
    away = [r for r in rows if r[3] in ABROAD]
    pick = lambda rs, n: [Place(*rs[i]).text for i in rng.choice(len(rs), n, replace=False)]  # noqa: E731
    return pick(home, TOWNS_ID) + pick(away, TOWNS_ABROAD)


def folder_names(rng: np.random.Generator, n: int) -> list[str]:
    """Year/event folders: "2019/Liburan Bali", "2022/Wedding Rina Budi", "2018/Camera Roll"."""
    out: set[str] = set()
    while len(out) < n:
        year = int(rng.integers(2012, 2026))
        kind = rng.random()
        event = EVENTS[rng.integers(len(EVENTS))].title()
        if kind < 0.45:
            name = f"{event} {PLACES[rng.integers(len(PLACES))].title()}"
        elif kind < 0.75:
            name = f"{event} {' '.join(p.title() for p in rng.choice(PEOPLE, 2, replace=False))}"
        elif kind < 0.9:
            name = f"{PLACES[rng.integers(len(PLACES))].title()} {year}"
        else:
            name = ("Camera Roll", "WhatsApp Images", "Download", "Screenshots")[rng.integers(4)]
        out.add(f"{year}/{name} {int(rng.integers(1, 40))}" if name in out else f"{year}/{name}")
    return sorted(out)


def library(n: int, seed: int = 7):
    """(paths, fields, vectors, the root) of `n` synthetic photos."""
    from mmsearch.photo_text import SIGNALS_VERSION, name_fields, words_of

    rng = np.random.default_rng(seed)
    root = Path(tempfile.gettempdir()) / "wordsbench" / "Pictures"
    root.mkdir(parents=True, exist_ok=True)  # name_fields reads the root's own name from it
    folders = folder_names(rng, 2000)
    sizes = rng.lognormal(0, 1.0, len(folders))
    counts = np.maximum(1, np.round(sizes / sizes.sum() * n)).astype(int)
    while counts.sum() > n:
        i = rng.integers(len(counts))
        counts[i] -= counts[i] > 1
    counts[0] += n - counts.sum()
    places = towns(rng)
    weights = np.r_[np.full(TOWNS_ID, 1.0), np.full(TOWNS_ABROAD, 1.5)]
    weights /= weights.sum()
    cams, shares = zip(*CAMERAS)
    centres = rng.normal(size=(400, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    paths, fields, labels = [], [], []
    for folder, count in zip(folders, counts):
        main, other = rng.choice(len(cams), 2, replace=False, p=shares)
        spots = rng.choice(len(places), int(rng.integers(1, 4)), p=weights)
        looks = rng.choice(len(centres), 3, replace=False)
        fwords = words_of(folder.split("/")[-1])
        for j in range(count):
            r = rng.random()
            if r < 0.65:
                stem = ("IMG_%04d" % rng.integers(10000), "DSC%05d" % rng.integers(100000),
                        "PXL_2023%04d_%06d" % (rng.integers(10000), rng.integers(10 ** 6)),
                        "2023%04d_%06d" % (rng.integers(10000), rng.integers(10 ** 6)))[j % 4]
            elif r < 0.72:
                stem = "Screenshot_2023-%02d-%02d-%02d" % tuple(rng.integers(1, 28, 3))
            elif r < 0.80:
                stem = "IMG-2023%04d-WA%04d" % (rng.integers(10000), rng.integers(10000))
            else:
                words = list(rng.choice(NAME_WORDS, int(rng.integers(1, 3)), replace=False))
                if fwords and rng.random() < 0.3:
                    words.insert(0, fwords[rng.integers(len(fwords))])
                stem = "-".join(words) + ("" if rng.random() < 0.5 else f" {rng.integers(99)}")
            path = str(root / folder / f"{stem}_{j}.jpg")
            f = {k: v for k, v in name_fields(path, str(root)).items() if v}
            f["camera"] = cams[other if rng.random() < 0.15 else main]
            if rng.random() < 0.5:
                f["lat"], f["lon"] = 0.0, 0.0  # the position is not what is measured here
                f["place"] = places[spots[rng.integers(len(spots))]]
            f["signals"] = SIGNALS_VERSION
            if rng.random() < (0.35 if stem.startswith("Screenshot") else 0.015):
                ocr = rng.zipf(1.3, int(rng.integers(5, 61))) % len(OCR_WORDS)
                f["words"] = " ".join(OCR_WORDS[i] for i in ocr)
            paths.append(path)
            fields.append(f)
            labels.append(looks[rng.integers(3)])
    v = centres[labels] + rng.normal(0, 0.6 / np.sqrt(DIM), (n, DIM)).astype(np.float32) * 1.5
    vectors = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return paths, fields, vectors, root


def items(paths, fields, vectors, lo: int, hi: int, salt: str = ""):
    from mmsearch.items import Item

    return [Item(path=paths[i], size=2_000_000 + i, mtime=1.6e9 + i, taken=1.6e9 + i,
                 hash=f"{i:031x}{salt or 0}", width=4032, height=3024, fields=fields[i],
                 image_vector=vectors[i]) for i in range(lo, hi)]


def describe(fields: list[dict]) -> dict:
    from mmsearch.items import item_text

    texts = [item_text("", "", f) for f in fields]
    share = lambda pred: round(sum(map(pred, fields)) / len(fields), 4)  # noqa: E731
    return {"photos": len(fields), "distinct_texts": len(set(texts)),
            "names_with_words": share(lambda f: "name" in f),
            "with_place": share(lambda f: "place" in f),
            "with_ocr": share(lambda f: "words" in f),
            "text_chars_mean": round(float(np.mean([len(t) for t in texts])), 1)}


def word_shares(fields: list[dict], key: str) -> Counter:
    """For each word of the field `key`: how many photos have it."""
    counts: Counter = Counter()
    for f in fields:
        counts.update(set(f.get(key, "").lower().replace(",", " ").split()))
    return counts


# -- the two arms --------------------------------------------------------------------------
def without_words() -> None:
    """From now on, in this process, an index opened or created gets no words collection
    (the `plain` arm): while Index._create runs, the words collection it looks for is the
    meta collection, which it has just made, so it makes none."""
    from mmsearch import index as index_module

    original = index_module.Index._create
    if getattr(original, "without_words", False):
        return

    def _create(self, vector_index=None):
        index_module.WORDS = index_module.META
        try:
            original(self, vector_index)
        finally:
            index_module.WORDS = WORDS

    from mmsearch.words import WORDS
    _create.without_words = True
    index_module.Index._create = _create


def open_arm(db: Path, arm: str, create: bool = False):
    from mmsearch.config import IndexLocation, ModelSpec
    from mmsearch.stores import open_index

    if arm == "plain":
        without_words()
    location = IndexLocation(db=db)
    if create:
        return open_index(location, create_model=ModelSpec.parse(MODEL), dim=DIM)
    return open_index(location)


class FixedEncoder:
    """The same unit vector for the same words in every arm, as a text encoder would give."""

    def warm(self):
        return self

    def encode_texts(self, texts):
        import zlib

        out = []
        for t in texts:
            rng = np.random.default_rng(zlib.crc32(t.encode()))
            v = rng.normal(size=DIM).astype(np.float32)
            out.append(v / np.linalg.norm(v))
        return np.stack(out)

    def encode_images(self, images):
        raise NotImplementedError


def child(args) -> None:
    """One fresh process: open an index, answer one query; print the times as JSON."""
    t0 = time.perf_counter()
    from pymilvus import MilvusClient

    from mmsearch.search import Query, Searcher  # noqa: F401 - what a search process imports

    loads: dict[str, float] = {}
    load_collection = MilvusClient.load_collection

    def timed(self, name, *a, **kw):
        t = time.perf_counter()
        load_collection(self, name, *a, **kw)
        loads[name] = loads.get(name, 0.0) + time.perf_counter() - t
    MilvusClient.load_collection = timed
    t1 = time.perf_counter()
    index = open_arm(Path(args.db), args.arm)
    t2 = time.perf_counter()
    Searcher(index, FixedEncoder()).search(Query.of(texts=[args.query]), K)
    t3 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "first_s": t3 - t2,
                      "in_process_s": t3 - t0, "has_words": index.has_words}
                     | {f"load_{name}_s": v for name, v in loads.items()}))
    index.close()


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def build(dbs: dict, lib, out: dict) -> None:
    """Write the library into both arms, page by page, taking turns (and swapping who goes
    first each page); then the indexer-sized batches, a rewrite and a delete."""
    from mmsearch.items import Item

    paths, fields, vectors, _ = lib
    n = len(paths)
    indexes = {arm: open_arm(db, arm, create=True) for arm, db in dbs.items()}
    spent = {arm: 0.0 for arm in dbs}
    tail = min(3200, n // 10 // 32 * 32)  # written afterwards in the indexer's batches of 32
    for page, lo in enumerate(range(0, n - tail, 1000)):
        batch = items(paths, fields, vectors, lo, min(n - tail, lo + 1000))
        for arm in (list(dbs) if page % 2 == 0 else list(dbs)[::-1]):
            t = time.perf_counter()
            indexes[arm].upsert(batch)
            spent[arm] += time.perf_counter() - t
    out["upsert_1000"] = {arm: round((n - tail) / s) for arm, s in spent.items()}
    out["load_after_import"] = load()
    small = {arm: 0.0 for arm in dbs}
    for step, lo in enumerate(range(n - tail, n, 32)):
        batch = items(paths, fields, vectors, lo, min(n, lo + 32))
        for arm in (list(dbs) if step % 2 == 0 else list(dbs)[::-1]):
            t = time.perf_counter()
            indexes[arm].upsert(batch)
            small[arm] += time.perf_counter() - t
    out["upsert_32"] = {arm: round(tail / s) for arm, s in small.items()}
    # 5,000 photos renamed (their words change, the old texts of some go), in pages of 1,000
    rng = np.random.default_rng(3)
    chosen = np.sort(rng.choice(n, 5000, replace=False))
    renamed = [dict(fields[i], name=f"{fields[i].get('name', '')} renamed {i % 97}".strip())
               for i in chosen]
    rewrite = {arm: 0.0 for arm in dbs}
    for step, lo in enumerate(range(0, len(chosen), 1000)):
        batch = [Item(path=paths[i], size=1, mtime=1.7e9, taken=1.6e9, hash=f"{i:032x}",
                      fields=renamed[j], image_vector=vectors[i])
                 for j, i in enumerate(chosen[lo:lo + 1000], lo)]
        for arm in (list(dbs) if step % 2 == 0 else list(dbs)[::-1]):
            t = time.perf_counter()
            indexes[arm].upsert(batch)
            rewrite[arm] += time.perf_counter() - t
    out["rewrite_5000_rows_per_s"] = {arm: round(5000 / s) for arm, s in rewrite.items()}
    gone = [paths[i] for i in rng.choice(n, 2000, replace=False)]
    dropped = {}
    for arm in dbs:
        t = time.perf_counter()
        indexes[arm].delete(gone)
        dropped[arm] = round(2000 / (time.perf_counter() - t))
    out["delete_2000_rows_per_s"] = dropped
    for arm, index in indexes.items():
        t = time.perf_counter()
        index.flush()
        out.setdefault("flush_s", {})[arm] = round(time.perf_counter() - t, 2)
        out.setdefault("rows", {})[arm] = index.count()
        if index.has_words:
            from mmsearch.words import WORDS
            index.client.flush(WORDS)
            out["words_rows"] = int(index.client.query(
                WORDS, filter="", output_fields=["count(*)"])[0]["count(*)"])
        index.close()


def fresh(dbs: dict, query: str, rounds: int) -> dict:
    times = {arm: [] for arm in dbs}
    for r in range(rounds):
        for arm in (list(dbs) if r % 2 == 0 else list(dbs)[::-1]):
            t = time.perf_counter()
            res = subprocess.run([sys.executable, __file__, "--child", "--db", str(dbs[arm]),
                                  "--arm", arm, "--query", query], capture_output=True,
                                 text=True, timeout=600, cwd=ROOT)
            if res.returncode:
                raise RuntimeError(res.stderr[-2000:])
            rec = json.loads(res.stdout.strip().splitlines()[-1])
            rec["process_s"] = time.perf_counter() - t
            times[arm].append(rec)
    return {arm: {k: round(statistics.median(r[k] for r in recs), 2)
                  for k in recs[0] if k.endswith("_s")}
            | {"has_words": recs[0]["has_words"]} for arm, recs in times.items()}


def steps(searcher, text: str, rounds: int) -> dict:
    """Where a words-arm query's time goes: each Index.ranked_keys / get call the search
    makes (fusion's probes and candidate lists), p50 ms over `rounds` searches."""
    from mmsearch.search import Query

    index, log = searcher.index, {}
    timed = {name: getattr(index, name) for name in ("ranked_keys", "get")}

    def wrap(name, label):
        def call(*a, **kw):
            t = time.perf_counter()
            out = timed[name](*a, **kw)
            log.setdefault(label(*a, **kw), []).append(time.perf_counter() - t)
            return out
        return call
    index.ranked_keys = wrap("ranked_keys", lambda field, data, limit, filter="", near=None:
                             f"ranked_keys {field}{' near' if near is not None else ''} {limit}")
    index.get = wrap("get", lambda keys, fields=(): f"get {len(list(keys))}")
    try:
        for _ in range(rounds):
            searcher.search(Query.of(texts=[text]), K)
    finally:
        for name in timed:
            del index.__dict__[name]
    return {label: round(statistics.median(v) * 1000, 1) for label, v in log.items()}


def queries(dbs: dict, kinds: dict, rounds: int) -> dict:
    from mmsearch import words as photo_words
    from mmsearch.search import Query, Searcher

    searchers = {arm: Searcher(open_arm(db, arm), FixedEncoder()) for arm, db in dbs.items()}
    times = {(kind, arm): [] for kind in kinds for arm in dbs}
    info = {}
    for kind, text in kinds.items():  # once untimed: the first answer after opening is slow
        for arm, s in searchers.items():
            hits = s.search(Query.of(texts=[text]), K)
            info.setdefault(kind, {"query": text})[arm + "_matched"] = dict(
                Counter(m for h in hits for m in h.matched))
        w = searchers["words"].index
        info[kind]["texts_bm25_found"] = len(photo_words.top_texts(w.client, text))
    for r in range(rounds):
        for kind, text in kinds.items():
            for arm in (list(dbs) if r % 2 == 0 else list(dbs)[::-1]):
                t = time.perf_counter()
                searchers[arm].search(Query.of(texts=[text]), K)
                times[kind, arm].append(time.perf_counter() - t)
    bm25 = {kind: [] for kind in kinds}
    w = searchers["words"].index
    for _ in range(rounds):
        for kind, text in kinds.items():
            t = time.perf_counter()
            photo_words.top_texts(w.client, text)
            bm25[kind].append(time.perf_counter() - t)
    for kind, text in kinds.items():
        info[kind]["words_steps_p50_ms"] = steps(searchers["words"], text, max(5, rounds // 3))
    for s in searchers.values():
        s.index.close()
    ms = lambda v, p: round(float(np.percentile(v, p)) * 1000, 1)  # noqa: E731
    return {kind: info[kind] | {f"{arm}_p50_ms": ms(times[kind, arm], 50) for arm in dbs}
            | {f"{arm}_p90_ms": ms(times[kind, arm], 90) for arm in dbs}
            | {"ratio_p50": round(ms(times[kind, "words"], 50) / ms(times[kind, "plain"], 50), 2),
               "bm25_top_texts_p50_ms": ms(bm25[kind], 50)} for kind in kinds}


def code_child(args) -> None:
    """Queries through the code in `args.code` (first on sys.path): times per kind as JSON."""
    sys.path.insert(0, args.code)
    import mmsearch
    from mmsearch.search import Query, Searcher

    assert mmsearch.__file__.startswith(args.code), mmsearch.__file__
    kinds = json.loads(args.query)
    searcher = Searcher(open_arm(Path(args.db), "words"), FixedEncoder())
    ask = {kind: Query.of(texts=[text]) for kind, text in kinds.items()}
    ask["picture_only"] = Query.of(texts=[kinds["folder_1pct"]], mode="picture")
    answers = {kind: [(h.key, h.score) for h in searcher.search(q, K)] for kind, q in ask.items()}
    times = {kind: [] for kind in ask}
    for _ in range(args.query_rounds):
        for kind, q in ask.items():
            t = time.perf_counter()
            searcher.search(q, K)
            times[kind].append(time.perf_counter() - t)
    searcher.index.close()
    print(json.dumps({"times": times, "answers": answers}))


def before_after(db: Path, before: str, kinds: dict, blocks: int, rounds: int) -> dict:
    """The queries through the older code and this code, fresh processes taking turns."""
    codes = {"before": str(Path(before).resolve()), "after": str(ROOT)}
    times = {arm: {} for arm in codes}
    answers = {}
    for b in range(blocks):
        for arm in (list(codes) if b % 2 == 0 else list(codes)[::-1]):
            res = subprocess.run([sys.executable, __file__, "--code-child", "--code", codes[arm],
                                  "--db", str(db), "--query", json.dumps(kinds),
                                  "--query-rounds", str(rounds)], capture_output=True, text=True,
                                 timeout=900, cwd=ROOT)
            if res.returncode:
                raise RuntimeError(res.stderr[-2000:])
            rec = json.loads(res.stdout.strip().splitlines()[-1])
            for kind, v in rec["times"].items():
                times[arm].setdefault(kind, []).extend(v)
            answers.setdefault(arm, rec["answers"])
    ms = lambda v, p: round(float(np.percentile(v, p)) * 1000, 1)  # noqa: E731
    out = {"blocks": blocks, "rounds_per_block": rounds, "same_answers": {
        kind: answers["before"][kind] == answers["after"][kind] for kind in answers["after"]}}
    for kind in times["after"]:
        row = {f"{arm}_p50_ms": ms(times[arm][kind], 50) for arm in codes}
        row |= {f"{arm}_p90_ms": ms(times[arm][kind], 90) for arm in codes}
        row["after_over_before_p50"] = round(row["after_p50_ms"] / row["before_p50_ms"], 2)
        for arm in codes:
            row[f"{arm}_over_picture_only_p50"] = round(
                row[f"{arm}_p50_ms"] / ms(times[arm]["picture_only"], 50), 2)
        out[kind] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5, help="fresh processes per arm")
    ap.add_argument("--query-rounds", type=int, default=30)
    ap.add_argument("--no-queries", action="store_true")
    ap.add_argument("--keep", help="build the two indexes in this folder and keep them")
    ap.add_argument("--label", help="the result's key in --out (default: the size)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/words.json"))
    ap.add_argument("--before", help="a checkout of older code: its queries against this code's")
    ap.add_argument("--blocks", type=int, default=6, help="processes per code for --before")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--code-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--code", help=argparse.SUPPRESS)
    ap.add_argument("--db"), ap.add_argument("--arm"), ap.add_argument("--query")
    args = ap.parse_args()
    if args.child:
        return child(args)
    if args.code_child:
        return code_child(args)
    from mmsearch.engine import _disk_bytes
    from mmsearch.config import IndexLocation

    started = time.perf_counter()
    code = os.popen(f"git -C {ROOT} log -1 --format=%h").read().strip()
    out: dict = {"size": args.size, "code": code, "uptime_before": os.popen("uptime").read().strip()}
    t = time.perf_counter()
    lib = library(args.size)
    out["library"] = describe(lib[1]) | {"generate_s": round(time.perf_counter() - t, 1)}
    folder = word_shares(lib[1], "folders")
    place = word_shares(lib[1], "place")
    n = args.size
    common = {"pictures"}  # the indexed folder's own name: in every photo
    one = min((w for w in folder if w not in common), key=lambda w: abs(folder[w] / n - 0.01))
    country = "indonesia"
    out["library"] |= {"folder_word": one, "folder_word_share": round(folder[one] / n, 4),
                       "country_word": country, "country_share": round(place[country] / n, 4)}
    kinds = {"no_match": "zebra quokka", "folder_1pct": one, "country_20pct": country,
             "mixed": f"a dog on the beach {one}"}
    with tempfile.TemporaryDirectory(prefix="wordsbench-") as d:
        d = args.keep or d
        Path(d).mkdir(parents=True, exist_ok=True)
        dbs = {"words": Path(d) / "words.db", "plain": Path(d) / "plain.db"}
        if args.before:
            if not dbs["words"].exists():
                build(dbs, lib, out)
            out["before_after"] = before_after(dbs["words"], args.before, kinds, args.blocks,
                                               args.query_rounds)
            out["uptime_after"] = os.popen("uptime").read().strip()
            return save(args, out, started)
        build(dbs, lib, out)
        out["disk_mb"] = {arm: round(_disk_bytes(IndexLocation(db=db)) / 1e6, 1)
                          for arm, db in dbs.items()}
        out["load_after_build"] = load()
        out["fresh_process"] = fresh(dbs, one, args.rounds)
        out["load_after_fresh"] = load()
        if not args.no_queries:
            out["queries"] = queries(dbs, kinds, args.query_rounds)
    out["uptime_after"] = os.popen("uptime").read().strip()
    save(args, out, started)


def save(args, out: dict, started: float) -> None:
    out["wall_s"] = round(time.perf_counter() - started, 1)
    path = Path(args.out)
    results = json.loads(path.read_text()) if path.exists() else {}
    results[args.label or str(args.size)] = out
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
